"""Entry points: HTTP, command line. Translates to domain calls; no domain logic here."""
