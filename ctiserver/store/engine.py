"""Database engines and schema migrations for the event store.

Two backends, one code path: SQLite (a file, for a single box or a lab) and
PostgreSQL (production). The knobs here are the ones that decide how the server
behaves when the database misbehaves:

* SQLite runs in WAL mode (readers never block the writer), waits `busy_timeout`
  for a lock instead of failing at once, enforces foreign keys, and gets a real
  ``BEGIN`` so DDL in migrations is transactional.
* PostgreSQL replaces pooled connections found closed, pings those idle for a while
  before use, and bounds connect and statement time, so a dead or half-open server
  shows up as an error in seconds, not after the kernel's TCP timeouts (minutes).

`migrate(url)` brings any database to the newest schema with Alembic, from inside
a running event loop, using the revisions shipped in ``ctiserver/store/migrations``.
"""

from __future__ import annotations

import ast
import os
import re
import select
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from . import jsontext

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# Any 64-bit constant: all ctiserver processes serialise their migrations on it.
_PG_MIGRATION_LOCK = 0x63746973_746F7265  # "ctistore"

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


class UnsupportedDatabase(ValueError):
    """The URL names a database or driver the event store does not support."""


def normalise_url(url: str) -> str:
    """Return `url` with the async driver we use (``sqlite://`` -> ``sqlite+aiosqlite://``, ...)."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse message
        raise UnsupportedDatabase(f"not a database URL: {url!r} ({exc})") from exc
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise UnsupportedDatabase(
            f"unsupported database {parsed.drivername!r} in {parsed.render_as_string(hide_password=True)!r}; "
            "use sqlite+aiosqlite:///path/to/file.db or postgresql+asyncpg://user@host:port/db")
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def prepare_sqlite_file(path: Path) -> None:
    """Create the SQLite file 0600 if it is missing (the event store holds callers' numbers and names).

    SQLite creates its -wal and -shm files with the main file's mode, so they are 0600 too.
    A missing folder is left missing: for the server that is an outage (a volume not mounted
    yet), not something to paper over with an empty folder. The CLI creates folders itself.
    """
    if not path.parent.is_dir():
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return  # exists already, or cannot be created: SQLite's own error says which when it opens it
    os.close(fd)


def _json_dumps(value: Any) -> str:
    # Odd values become text rather than failing a batch (see jsontext). NaN and
    # Infinity are refused on both backends alike (PostgreSQL's json has no NaN;
    # SQLite would store it): a ValueError the event store treats as a bad row.
    return jsontext.dumps(value, allow_nan=False)


class _SqliteConnection(Connection):
    """Tells a write transaction from a read on SQLite.

    `engine.begin()` (the store's way to write) begins explicitly: `BEGIN IMMEDIATE` takes the write lock
    at once, waiting up to busy_timeout for it. A deferred `BEGIN` that reads and then writes fails at
    once with "database is locked" when another connection committed in between (SQLite cannot upgrade
    a stale read snapshot, and busy_timeout does not apply). A read (`engine.connect()` then execute)
    begins implicitly (autobegin): a deferred `BEGIN`, which in WAL mode never blocks the writer."""

    write_intent = False

    def begin(self) -> Any:
        if not self._autobegin_running and self._transaction is None:
            self.write_intent = True
        try:
            return super().begin()
        finally:
            self.write_intent = False

    _autobegin_running = False

    def _autobegin(self) -> None:
        self._autobegin_running = True
        try:
            super()._autobegin()
        finally:
            self._autobegin_running = False


def make_engine(url: str, *, connect_timeout_s: float = 5.0, statement_timeout_s: float | None = 30.0,
                busy_timeout_s: float = 5.0, pool_size: int = 5) -> AsyncEngine:
    """Create an AsyncEngine for SQLite (aiosqlite) or PostgreSQL (asyncpg) with fail-fast settings.

    `connect_timeout_s` bounds establishing a PostgreSQL connection (TCP + auth),
    `statement_timeout_s` bounds any single statement on PostgreSQL (client side,
    so a half-open socket is noticed too; None for no bound), `busy_timeout_s` is how long SQLite waits
    for another writer's lock.
    """
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.drivername == "sqlite+aiosqlite":
        if parsed.database not in (None, "", ":memory:") and not parsed.database.startswith("file:"):
            prepare_sqlite_file(Path(parsed.database))
        engine = create_async_engine(
            url,
            json_serializer=_json_dumps,
            connect_args={"timeout": busy_timeout_s},
        )
        busy_ms = int(busy_timeout_s * 1000)
        in_memory = parsed.database in (None, "", ":memory:")

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            try:
                if not in_memory:
                    cur.execute("PRAGMA journal_mode=WAL")
                    # WAL + NORMAL: durable across process crashes, fsync at checkpoints.
                    cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute(f"PRAGMA busy_timeout={busy_ms}")
                cur.execute("PRAGMA foreign_keys=ON")
            finally:
                cur.close()

        engine.sync_engine._connection_cls = _SqliteConnection  # (private hook; see the class)

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if getattr(conn, "write_intent", False) else "BEGIN")

        return engine

    engine = create_async_engine(
        url,
        json_serializer=_json_dumps,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=connect_timeout_s * 2,
        pool_recycle=1800,
        connect_args={
            "timeout": connect_timeout_s,
            "command_timeout": statement_timeout_s,
            "server_settings": {"application_name": "ctiserver"},
        },
    )
    _check_on_checkout(engine)
    return engine


def _quiet(driver: Any) -> bool:
    """Nothing waits to be read on an idle connection's socket. The server sends nothing to a connection at
    rest, so what does wait is its goodbye (a closed socket, a shutdown notice) that the event loop has not
    read yet: then the connection is pinged, which reads it. One poll(2), no round trip."""
    transport = getattr(driver, "_transport", None)  # asyncpg keeps its transport here (no public accessor)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return False
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)
    return not poller.poll(0)


PING_AFTER_IDLE_S = 5.0  # a pooled PostgreSQL connection unused this long is pinged before use


def _check_on_checkout(engine: AsyncEngine) -> None:
    """SQLAlchemy's pre-ping, for less: a pooled connection the driver knows to be closed (the server
    restarted or went away: its socket closed) is replaced, and one unused for `PING_AFTER_IDLE_S` is pinged
    first (a link a firewall dropped in silence); a connection that was in use a moment ago is taken as it is.

    `pool_pre_ping` pinged before every use, three round trips each time on asyncpg (BEGIN, a query,
    ROLLBACK): a third of the CTI's round trips to the database under the load test. The ping here is one
    round trip, outside any transaction. A failed check raises DisconnectionError: the pool then connects
    afresh, as pre-ping does. A half-open link is caught, as before, by the statement timeout."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(dbapi_conn: Any, record: Any) -> None:
        if dbapi_conn is not None:
            record.info["ctiserver_last_use"] = (dbapi_conn, time.monotonic())

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        driver = dbapi_conn.driver_connection
        if driver.is_closed():
            raise exc.DisconnectionError("the pooled connection was closed")
        last = record.info.get("ctiserver_last_use")
        if last is None:
            record.info["ctiserver_last_use"] = (dbapi_conn, time.monotonic())
            return  # just connected: as fresh as a ping would show
        if last[0] is dbapi_conn and time.monotonic() - last[1] < PING_AFTER_IDLE_S and _quiet(driver):
            return
        try:
            dbapi_conn.run_async(lambda conn: conn.execute("SELECT 1"))
        except Exception as error:
            raise exc.DisconnectionError(f"the pooled connection failed its ping: {error!r}") from error


@asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection for reads only (`async with reading(engine) as conn:`).

    On PostgreSQL it runs in autocommit: no BEGIN before the first statement and no ROLLBACK when it goes
    back to the pool, one round trip per statement instead of three for a lone SELECT. What the reads see
    is the same: under READ COMMITTED (PostgreSQL's default, ours) each statement takes its own snapshot
    inside a transaction too. Anything written on it would be committed at once: reads only. On SQLite it
    is `engine.connect()` (a deferred read transaction, which never blocks the writer in WAL mode)."""
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


def alembic_config() -> Config:
    """Alembic configuration pointing at the migrations shipped inside the package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(MIGRATIONS_DIR / "versions"))
    return cfg


class MigrationChainError(RuntimeError):
    """The revision files do not form one straight line ``0001 -> 0002 -> ...``."""


_REV_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.py$")


def _assigned(tree: ast.Module, name: str) -> tuple[bool, object]:
    for node in tree.body:
        value: ast.expr | None
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name
                                                for t in node.targets):
            value = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            value = node.value
        else:
            continue
        try:
            return True, ast.literal_eval(value) if value is not None else None
        except ValueError:
            return True, ast.unparse(value) if value is not None else None
    return False, None


def _parse(source: str, filename: str) -> ast.Module:
    """ast.parse, again if CPython 3.11 says "AST constructor recursion depth mismatch": its converter keeps
    one depth counter per process, and another thread building an AST at the same moment (3.11's traceback
    formatting parses the failing line to place its carets) upsets the count (CPython gh-106905, fixed in
    3.12). The source is fine; the next try succeeds."""
    for _ in range(4):
        try:
            return ast.parse(source, filename)
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc):
                raise
    return ast.parse(source, filename)


def check_revisions(versions_dir: Path | None = None) -> list[str]:
    """Return revision ids oldest first, or raise MigrationChainError naming the file at fault.

    Our convention: ``versions/NNNN_what.py`` declares ``revision = "NNNN"`` and
    ``down_revision = "<the previous NNNN>"`` (None for 0001): one line, no branches.
    The files are parsed, not imported, so a broken one cannot run code here.
    """
    folder = versions_dir or MIGRATIONS_DIR / "versions"
    down_of: dict[str, object] = {}
    files: dict[str, Path] = {}
    problems: list[str] = []
    for path in sorted(folder.glob("*.py")):
        if path.name == "__init__.py":
            continue
        m = _REV_FILE.match(path.name)
        if not m:
            problems.append(f"{path}: name revision files NNNN_what.py (four digits, lower-case words)")
            continue
        try:
            tree = _parse(path.read_text(encoding="utf-8"), str(path))
        except SyntaxError as exc:
            problems.append(f"{path}:{exc.lineno}: {exc.msg}")
            continue
        has_rev, rev = _assigned(tree, "revision")
        has_down, down = _assigned(tree, "down_revision")
        if not has_rev or rev != m.group(1):
            problems.append(f"{path}: must declare revision = {m.group(1)!r} (found {rev!r})")
            continue
        if not has_down:
            problems.append(f"{path}: must declare down_revision")
            continue
        down_of[m.group(1)] = down
        files[m.group(1)] = path
    chain: list[str] = []
    previous: str | None = None
    for rev in sorted(down_of):
        if down_of[rev] != previous:
            problems.append(f"{files[rev]}: down_revision is {down_of[rev]!r}, expected {previous!r}"
                            + ("" if down_of[rev] in down_of or down_of[rev] is None
                               else f" (revision {down_of[rev]!r} is missing)"))
        chain.append(rev)
        previous = rev
    if problems:
        raise MigrationChainError("migration revisions are inconsistent:\n" + "\n".join(problems))
    return chain


def _upgrade(conn: Connection, cfg: Config, target: str) -> None:
    if conn.dialect.name == "postgresql":
        # Two servers starting at once must not both create the same tables.
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, target)


def _current(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


async def migrate(url: str, target: str = "head") -> None:
    """Upgrade the database at `url` to `target` (default: the newest revision). Safe to repeat.

    Runs inside the caller's event loop: Alembic works on a sync facade of one
    async connection, all in one transaction (PostgreSQL and, thanks to our
    explicit BEGIN, SQLite too), so a failed migration leaves the schema as it was.
    """
    check_revisions()
    # No statement bound here: building an index on a big table may take a while.
    engine = make_engine(url, statement_timeout_s=None)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade, alembic_config(), target)
    finally:
        await engine.dispose()


def head_revision() -> str:
    """The newest revision shipped with this ctiserver."""
    return check_revisions()[-1]


async def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at (None if it was never migrated)."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_current)
    finally:
        await engine.dispose()
