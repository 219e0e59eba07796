"""Storage: models, migrations and the repositories that map rows to records."""
