"""Alembic environment for ctiserver.

Normally run through `ctiserver.store.engine.migrate(url)`, which hands us an
open connection in ``config.attributes["connection"]``. Running the ``alembic``
command directly also works: it reads the URL from ``sqlalchemy.url`` or the
``CTISERVER_DB_URL`` environment variable.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from ctiserver.store.schema import metadata

config = context.config
target_metadata = metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        # Our engines give SQLite a real BEGIN, so DDL is transactional on both backends.
        transactional_ddl=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_standalone(url: str) -> None:
    from ctiserver.store.engine import make_engine

    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("CTISERVER_DB_URL")
    if not url:
        raise SystemExit("no database URL: set sqlalchemy.url or CTISERVER_DB_URL")
    return url


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
    else:
        asyncio.run(_run_standalone(_url()))
