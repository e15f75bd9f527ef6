"""Migrations: revision 0001 matches schema.py, upgrades are idempotent, the revision chain is sound."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, insert, inspect, select
from sqlalchemy.engine import Connection

from ctiserver.store.engine import (
    MIGRATIONS_DIR,
    MigrationChainError,
    check_revisions,
    current_revision,
    head_revision,
    make_engine,
    migrate,
)
from ctiserver.store.schema import events

VERSIONS = MIGRATIONS_DIR / "versions"


def test_shipped_revisions_form_one_chain_from_0001() -> None:
    chain = check_revisions()
    assert chain[0] == "0001"
    assert chain == [f"{i:04d}" for i in range(1, len(chain) + 1)]


def _write(folder: Path, name: str, revision: str, down: str | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(f"revision: str = {revision!r}\ndown_revision = {down!r}\n")


def test_chain_check_accepts_a_straight_line(tmp_path: Path) -> None:
    _write(tmp_path, "0001_events.py", "0001", None)
    _write(tmp_path, "0002_ivr_data.py", "0002", "0001")
    (tmp_path / "__init__.py").write_text("")
    assert check_revisions(tmp_path) == ["0001", "0002"]


@pytest.mark.parametrize(("files", "message"), [
    ([("0001_a.py", "0001", None), ("0003_c.py", "0003", "0002")],
     "0003_c.py: down_revision is '0002', expected '0001' (revision '0002' is missing)"),
    ([("0001_a.py", "0001", None), ("0002_b.py", "0002", "0001"), ("0003_c.py", "0003", "0001")],
     "0003_c.py: down_revision is '0001', expected '0002'"),
    ([("0001_a.py", "0001", None), ("0002_b.py", "2", "0001")],
     "0002_b.py: must declare revision = '0002' (found '2')"),
    ([("0001_a.py", "0001", None), ("2_Bad-Name.py", "0002", "0001")],
     "2_Bad-Name.py: name revision files NNNN_what.py"),
])
def test_chain_check_names_the_file_at_fault(tmp_path: Path, files: list[tuple[str, str, str | None]],
                                             message: str) -> None:
    for name, rev, down in files:
        _write(tmp_path, name, rev, down)
    with pytest.raises(MigrationChainError) as err:
        check_revisions(tmp_path)
    assert message in str(err.value)


def test_chain_check_reports_a_syntax_error_with_its_line(tmp_path: Path) -> None:
    _write(tmp_path, "0001_a.py", "0001", None)
    (tmp_path / "0002_b.py").write_text('revision = "0002"\ndown_revision = "0001"\ndef upgrade(:\n')
    with pytest.raises(MigrationChainError, match=r"0002_b.py:3: "):
        check_revisions(tmp_path)


def test_migrations_ship_as_package_data() -> None:
    # An installed ctiserver must be able to migrate: the folders are packages (so setuptools
    # packs their .py files) and the template matches the package-data patterns.
    from setuptools import find_packages

    root = Path(__file__).parents[2]
    found = find_packages(str(root), include=["ctiserver*"])
    assert {"ctiserver.store.migrations", "ctiserver.store.migrations.versions"} <= set(found)
    assert (MIGRATIONS_DIR / "env.py").is_file() and (MIGRATIONS_DIR / "script.py.mako").is_file()
    pyproject = (root / "pyproject.toml").read_text()
    assert '"*.mako"' in pyproject and '"*.ini"' in pyproject


def _events_diff(conn: Connection) -> list[object]:
    only_events = MetaData()
    events.to_metadata(only_events)
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    diffs = compare_metadata(ctx, only_events)
    # Other features' tables are theirs to check; here only `events` matters.
    return [d for d in diffs if "events" in repr(d) and "remove_table" not in repr(d)[:20]]


async def test_revision_0001_builds_events_exactly_as_schema_py(db_url: str) -> None:
    assert await current_revision(db_url) is None
    await migrate(db_url, "0001")
    assert await current_revision(db_url) == "0001"
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_events_diff) == []
            names = await conn.run_sync(lambda c: {i["name"] for i in inspect(c).get_indexes("events")})
        assert {"ix_events_ts", "ix_events_call", "ix_events_kind_ts"} <= names
    finally:
        await engine.dispose()


async def test_migrating_twice_is_a_no_op_and_keeps_data(db_url: str) -> None:
    await migrate(db_url)
    head = await current_revision(db_url)
    engine = make_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(events), [{"ts": 1.0, "kind": "call.new", "data": {"x": "电费"}}])
        await migrate(db_url)
        assert await current_revision(db_url) == head
        async with engine.connect() as conn:
            rows = (await conn.execute(select(events.c.kind, events.c.data))).all()
        assert [(r.kind, r.data) for r in rows] == [("call.new", {"x": "电费"})]
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_two_servers_migrating_at_once_both_succeed(pg_database: str, db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        return  # SQLite has one writer at a time by construction; covered above
    await asyncio.gather(migrate(db_url), migrate(db_url), migrate(db_url))
    assert await current_revision(db_url) is not None


async def test_migrate_reports_an_unreachable_sqlite_path(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="unable to open database file"):
        await migrate(f"sqlite+aiosqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}")
    await asyncio.sleep(0.1)  # let aiosqlite's worker thread report before the test's loop closes


def test_a_cpython_ast_depth_mismatch_is_parsed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPython 3.11 (gh-106905) may fail an ast.parse with a SystemError while another thread builds an AST
    (3.11's traceback formatting does): the revision check parses again instead of failing a start."""
    import ast

    real, failures = ast.parse, iter([True, True])

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if next(failures, False):
            raise SystemError("AST constructor recursion depth mismatch (before=174, after=195)")
        return real(*args, **kwargs)

    monkeypatch.setattr(ast, "parse", flaky)
    assert check_revisions()[-1] == head_revision()
