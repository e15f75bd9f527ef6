"""Event store: an append-only log of every call event, on SQLite or PostgreSQL."""
