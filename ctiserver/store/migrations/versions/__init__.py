"""Alembic revisions, one file per schema change: ``NNNN_<what>.py`` with ``revision = "NNNN"``."""
