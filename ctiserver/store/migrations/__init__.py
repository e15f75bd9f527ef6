"""Alembic migrations for the ctiserver database (shipped inside the package; see README.md here)."""
