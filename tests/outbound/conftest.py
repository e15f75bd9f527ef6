"""The outbound tables on SQLite and on the real PostgreSQL (tests/outbound_db.py)."""

from tests.outbound_db import _drop_pg_database, engine, store  # noqa: F401
