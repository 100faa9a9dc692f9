"""Persistence: models, sessions, migrations, and the repositories the domain packages declare."""
