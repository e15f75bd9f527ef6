"""Data providers: sample data validation, the SQL provider on SQLite and PostgreSQL, migration 0002."""

from __future__ import annotations

import datetime as dt
import importlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ctiserver.configfile import ConfigError
from ctiserver.customers.data import (
    MemoryDataProvider,
    SqlDataProvider,
    customer_phones,
    customers,
    load_sample_data,
    outages,
    read_sample_data,
)
from ctiserver.numbers import caller_number
from ctiserver.store.schema import metadata
from tests.ivr.helpers import SAMPLE_CONFIG

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
TABLES = [customers, customer_phones, outages]


def test_sample_data_has_every_tier_and_an_active_fault() -> None:
    sample = read_sample_data(SAMPLE_CONFIG, NOW)
    assert len(sample.customers) == 30
    assert {c.tier for c in sample.customers} == {"vip", "priority", "normal", "blacklist"}
    assert len({c.area for c in sample.customers}) == 5
    active = [o for o in sample.outages if o.kind == "fault" and o.start_ts <= NOW and
              (o.end_ts is None or o.end_ts > NOW)]
    assert [o.area for o in active] == ["城东区"]


def _copy_config(tmp_path: Path) -> Path:
    shutil.copytree(SAMPLE_CONFIG / "data", tmp_path / "data")
    return tmp_path


def test_bad_rows_are_all_reported_and_nothing_loads(tmp_path: Path) -> None:
    cfg = _copy_config(tmp_path)
    csv_path = cfg / "data" / "customers.csv"
    lines = csv_path.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace(",normal,", ",gold,")
    lines[3] = lines[3].replace("215.30", "abc")
    lines.append(lines[1])  # duplicate account
    lines.append("12,x,13800000099,normal,城东区,residential,0,,,,,")
    lines.append("9100000099,某人,not-a-phone,normal,城东区,residential,0,2026-13-01,,,12,maybe")
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (cfg / "data" / "outages.yaml").write_text(
        "outages:\n  - {area: 城东区, kind: flood, reason: x, start: -1h}\n"
        "  - {area: 城东区, kind: fault, reason: x, start: -1h, end: -2h}\n"
        "  - {area: 城东区, kind: fault, reason: x, start: yesterday}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        read_sample_data(cfg, NOW)
    text = str(err.value).splitlines()
    assert f"{csv_path}:3: tier 'gold' is not one of vip, priority, normal, blacklist" in text
    assert f"{csv_path}:4: arrears 'abc' is not a number" in text
    assert f"{csv_path}:32: account 9100000001 already on line 2" in text
    assert f"{csv_path}:33: account '12' must be 6 to 20 digits" in text
    assert f"{csv_path}:34: phone '' is not a phone number" in text or \
        any(line.startswith(f"{csv_path}:34: ") for line in text)
    opath = cfg / "data" / "outages.yaml"
    assert f"{opath}:2: kind 'flood' must be planned or fault" in text
    assert f"{opath}:3: end is not after start" in text
    assert f"{opath}:4: start 'yesterday' is not a time like 2026-11-23T14:00 or an offset like -2h" in text


def test_caller_number() -> None:
    assert caller_number("+86 138-0000-0001") == "13800000001"
    assert caller_number("008613800000001") == "13800000001"
    assert caller_number('"张建国" <13800000001>') == "13800000001"
    assert caller_number("02188880001") == "02188880001"
    assert caller_number("+862188880001") == "02188880001"
    assert caller_number("anonymous") == ""
    assert caller_number("١٣٨٠٠٠٠٠٠٠١") == ""  # Arabic-Indic digits are not a caller's number


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'ivr.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all, TABLES)
    yield engine
    await engine.dispose()


async def _provider_answers(engine: AsyncEngine) -> None:
    await load_sample_data(engine, SAMPLE_CONFIG, now=NOW)
    p = SqlDataProvider(engine)
    c = await p.lookup("customer_by_caller", {"number": "+8613800000001"}, NOW)
    assert c is not None and c["account"] == "9100000001" and c["tier"] == "vip" and c["verified"] is True
    assert c["phones"] == ["13800000001", "02188880001"] and c["important"] is True
    # a number bound to two accounts: the first by account number
    shared = await p.lookup("customer_by_caller", {"number": "13800000002"}, NOW)
    assert shared is not None and shared["account"] == "9100000002"
    assert await p.lookup("customer_by_caller", {"number": "13999999999"}, NOW) is None
    by_acct = await p.lookup("customer_by_account", {"account": "9100000003"}, NOW)
    assert by_acct is not None and by_acct["verified"] is False and by_acct["name"] == "王伟"
    acct = await p.lookup("account", {"account": "9100000003"}, NOW)
    assert acct is not None and acct["arrears"] == pytest.approx(215.30) and acct["overdue"] is True
    assert acct["due_date"] == "2026-11-15"
    out = await p.lookup("outages", {"area": "城东区"}, NOW)
    assert out is not None and out["active"] is True and out["kind"] == "fault"
    assert out["reason"] == "10千伏线路故障" and out["expected_restore"] == "今天13点"
    assert out["expected_restore_en"] == "today at 13:00"
    calm = await p.lookup("outages", {"area": "江北区"}, NOW)  # the fault there has ended
    assert calm is not None and calm["active"] is False and calm["planned"] is False
    planned = await p.lookup("outages", {"area": "高新区"}, NOW)
    assert planned is not None and planned["active"] is False and planned["planned"] is True
    assert planned["planned_start"] == "11月24日10点"
    assert planned["planned_end"] == "11月24日18点" and planned["planned_end_en"] == "24 Nov at 18:00"
    assert (await p.lookup("verify_pin", {"account": "9100000002", "pin": "123456"}, NOW) or {})["verified"]
    bad = await p.lookup("verify_pin", {"account": "9100000002", "pin": "000000"}, NOW)
    assert bad is not None and bad["verified"] is False and bad["attempts"] == 1
    for _ in range(4):
        await p.lookup("verify_pin", {"account": "9100000002", "pin": "000000"}, NOW)
    locked = await p.lookup("verify_pin", {"account": "9100000002", "pin": "123456"}, NOW + 60)
    assert locked is not None and locked["verified"] is False and locked["locked"] is True
    again = await p.lookup("verify_pin", {"account": "9100000002", "pin": "123456"}, NOW + 1000)
    assert again is not None and again["verified"] is True
    assert await p.lookup("verify_pin", {"account": "1", "pin": "1"}, NOW) is None
    async with engine.connect() as conn:
        pin_hash = (await conn.execute(sa.select(customers.c.pin_hash).limit(1))).scalar_one()
    assert pin_hash.startswith("$argon2")  # never the PIN itself
    # reloading replaces, not duplicates
    await load_sample_data(engine, SAMPLE_CONFIG, now=NOW)
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(customers))).scalar_one() == 30
        assert (await conn.execute(sa.select(sa.func.count()).select_from(outages))).scalar_one() == 3


async def test_sql_provider_on_sqlite(sqlite_engine: AsyncEngine) -> None:
    await _provider_answers(sqlite_engine)


async def _fresh_pg(name: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="postgres")
    try:
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = $1 AND pid <> pg_backend_pid()", name)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


@pytest.mark.postgres
async def test_sql_provider_on_postgresql() -> None:
    import asyncpg

    name = f"ctitest_ivr_{os.getpid()}"  # one per pytest process: sessions side by side never collide
    engine = create_async_engine(await _fresh_pg(name))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all, TABLES)
        await _provider_answers(engine)
    finally:
        await engine.dispose()
        conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="postgres")
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def test_memory_provider_gives_the_same_answers(sqlite_engine: AsyncEngine) -> None:
    await load_sample_data(sqlite_engine, SAMPLE_CONFIG, now=NOW)
    sql = SqlDataProvider(sqlite_engine)
    mem = MemoryDataProvider(read_sample_data(SAMPLE_CONFIG, NOW))
    for provider, args in [("customer_by_caller", {"number": "13800000013"}),
                           ("customer_by_account", {"account": "9100000019"}),
                           ("account", {"account": "9100000019"}),
                           ("outages", {"area": "城东区"}), ("outages", {"area": "高新区"}),
                           ("verify_pin", {"account": "9100000029", "pin": "041526"})]:
        assert await mem.lookup(provider, args, NOW) == await sql.lookup(provider, args, NOW), provider


def test_migration_0002_matches_the_tables(tmp_path: Path) -> None:
    mod = importlib.import_module("ctiserver.store.migrations.versions.0002_ivr_data")
    assert mod.down_revision == "0001"
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    with engine.begin() as conn:
        ctx = MigrationContext.configure(conn)
        with Operations.context(ctx):
            mod.upgrade()
        insp = sa.inspect(conn)
        later = {"outages": {"outage_id"}}  # added by migration 0009 (outages entered by dispatchers)
        for table in TABLES:
            assert {c["name"] for c in insp.get_columns(table.name)} == \
                {c.name for c in table.columns} - later.get(table.name, set())
        assert {i["name"] for i in insp.get_indexes("customer_phones")} == {"ux_customer_phones",
                                                                            "ix_customer_phones_phone"}
        with Operations.context(ctx):
            mod.downgrade()
        assert not set(sa.inspect(conn).get_table_names()) & {t.name for t in TABLES}


async def test_customer_records_are_answered_from_memory_until_edited_or_stale(sqlite_engine: AsyncEngine) -> None:
    """The IVR and the pop read the same caller within seconds: the second read is answered from memory. A
    rewrite of the tables by this process drops what was kept; an edit elsewhere is seen after the TTL;
    outages and PINs are always read from the tables."""
    from sqlalchemy import update

    from ctiserver.customers.data import RecordCache
    from ctiserver.customers.tables import customers

    await load_sample_data(sqlite_engine, SAMPLE_CONFIG, now=NOW)
    p = SqlDataProvider(sqlite_engine, records=RecordCache(ttl_s=10.0))
    first = await p.lookup("customer_by_caller", {"number": "13800000001"}, NOW)
    assert first is not None and first["name"] != "改名"
    assert await p.lookup("customer_by_caller", {"number": "13999999999"}, NOW) is None
    async with sqlite_engine.begin() as conn:  # an edit the process does not know of (the CRM, another node)
        await conn.execute(update(customers).where(customers.c.account == first["account"]).values(name="改名"))
    again = await p.lookup("customer_by_caller", {"number": "13800000001"}, NOW + 5)
    assert again == first  # from memory
    by_account = await p.lookup("customer_by_account", {"account": first["account"]}, NOW + 5)
    assert by_account is not None and by_account["name"] == first["name"]
    assert p.records.hits >= 2
    stale = await p.lookup("customer_by_caller", {"number": "13800000001"}, NOW + 10)
    assert stale is not None and stale["name"] == "改名"  # older than the TTL: read again
    await load_sample_data(sqlite_engine, SAMPLE_CONFIG, now=NOW)  # this process rewrites the tables
    reloaded = await p.lookup("customer_by_caller", {"number": "13800000001"}, NOW + 11)
    assert reloaded == first
    # an account the table did not have is found once it is added and the entry is stale
    async with sqlite_engine.begin() as conn:
        await conn.execute(customers.insert().values(account="9199999999", name="新户", area="城东区"))
    assert await p.lookup("account", {"account": "9199999999"}, NOW + 12) is not None
