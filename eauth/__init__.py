"""Shared kernel: the domain error hierarchy and the settings."""
