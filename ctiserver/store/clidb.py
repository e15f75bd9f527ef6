"""The event store as the CLI commands open it: create what is needed, or say in one line what to run first.

A fresh checkout has no `var/` folder and no database. Commands that write
(`user add`, `campaign ...`) create the SQLite file (0600, in a 0700 folder) and
bring the schema up to date, as `serve` does at start. Commands that only read
(`report`, `campaign status`, `simulate --from-db`) create nothing: on a store that
does not exist yet they raise `CliError` naming the command that creates it.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine


class CliError(Exception):
    """A problem the user can fix; `ctiserver` prints str() as one line and exits 1."""


def db_url(config_dir: Path, override: str | None = None) -> str:
    """The database URL: `override` (a URL or a plain SQLite file path), else ctiserver.yaml's, made absolute."""
    from ..config import load_server_config, resolve_db_url

    if override:
        url = override if "://" in override else "sqlite+aiosqlite:///" + str(Path(override).resolve())
        return resolve_db_url(url, config_dir.resolve().parent)
    return resolve_db_url(load_server_config(config_dir).database.url, config_dir.resolve().parent)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for PostgreSQL or an in-memory database)."""
    try:
        parsed = make_url(url)
    except Exception:
        return None
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)  # sqlalchemy's DBAPIError wraps the driver's error
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


async def open_store(url: str, config_dir: Path, *, create: bool) -> AsyncEngine:
    """An engine on the event store, or CliError saying what to run first.

    `create` (commands that write): make the folder and the database, and bring the schema up to
    date as `serve` does. Otherwise nothing is created: a missing SQLite file or a database
    without the event tables is reported with the command that makes them.
    """
    from sqlalchemy import inspect

    from .engine import current_revision, head_revision, make_engine, migrate

    upgrade = f"ctiserver db upgrade --config {config_dir}"
    path = sqlite_file(url)
    where = str(path) if path is not None else make_url(url).render_as_string(hide_password=True)
    if path is not None and not create and not path.exists():
        raise CliError(f"no event store at {path} yet: start `ctiserver serve --config {config_dir}` "
                       f"(it records calls) or run `{upgrade}`")
    try:
        if create:
            if path is not None:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if await current_revision(url) != head_revision():
                await migrate(url)
            return make_engine(url)
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                ready = await conn.run_sync(lambda c: inspect(c).has_table("events"))
        except BaseException:
            await engine.dispose()
            raise
        if not ready:
            await engine.dispose()
            raise CliError(f"the event store {where} has no tables yet: run `{upgrade}`")
        return engine
    except CliError:
        raise
    except Exception as exc:
        raise CliError(f"cannot open the event store {where}: {_first_line(exc)}") from None
