"""Alembic migrations of the pocwatch schema."""
