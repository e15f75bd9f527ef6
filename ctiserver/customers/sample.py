"""The sample data of the demo hotline (`config/data/`: customers.csv, outages.yaml): every row validated
(`file:line: message`, nothing loaded if any row is bad), then loaded into the customer tables."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ..calendar import load_calendar
from ..configfile import ConfigError, ConfigProblem, load_data, node_line, read_text
from ..numbers import NumberError, normalise_number
from .pin import hash_pin
from .tables import OUTAGE_KINDS, TIERS, CustomerEdits, customer_phones, customers, outages


@dataclass(frozen=True)
class CustomerRow:
    account: str
    name: str
    phones: tuple[str, ...]
    tier: str
    area: str
    category: str
    arrears: Decimal
    due_date: dt.date | None
    last_payment: Decimal | None
    last_payment_date: dt.date | None
    pin: str
    important: bool


@dataclass(frozen=True)
class OutageRow:
    area: str
    kind: str
    reason: str
    start_ts: float
    end_ts: float | None
    expected_restore_ts: float | None


@dataclass(frozen=True)
class SampleData:
    customers: tuple[CustomerRow, ...]
    outages: tuple[OutageRow, ...]


CUSTOMER_COLUMNS = ("account", "name", "phones", "tier", "area", "category", "arrears", "due_date",
                    "last_payment", "last_payment_date", "pin", "important")
_REL = re.compile(r"^([+-])((?:\d+(?:\.\d+)?[mhd])+)$")
_REL_PART = re.compile(r"(\d+(?:\.\d+)?)([mhd])")


def _date(text: str, what: str) -> dt.date | None:
    if not text.strip():
        return None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a date like 2026-12-15") from None


def _decimal(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text.strip() or "0")
    except InvalidOperation:
        raise ValueError(f"{what} {text!r} is not a number") from None
    if not value.is_finite() or value < 0 or value >= Decimal("1e10"):
        raise ValueError(f"{what} {text!r} must be between 0 and 9999999999.99")
    return value.quantize(Decimal("0.01"))


def parse_customer(row: Mapping[str, str | None]) -> CustomerRow:
    """One CSV row -> CustomerRow, or ValueError saying what is wrong."""
    get = {k: (row.get(k) or "").strip() for k in CUSTOMER_COLUMNS}
    if not re.fullmatch(r"[0-9]{6,20}", get["account"]):
        raise ValueError(f"account {get['account']!r} must be 6 to 20 digits")
    if not get["name"] or len(get["name"]) > 100:
        raise ValueError("name is empty or longer than 100 characters")
    try:
        phones = tuple(normalise_number(p) for p in re.split(r"[;；,\s]+", get["phones"]) if p.strip())
    except NumberError as exc:
        raise ValueError(f"phones: {exc}") from None
    tier = get["tier"] or "normal"
    if tier not in TIERS:
        raise ValueError(f"tier {tier!r} is not one of {', '.join(TIERS)}")
    if not get["area"]:
        raise ValueError("area is empty")
    pin = get["pin"]
    if pin and not re.fullmatch(r"[0-9]{4,8}", pin):
        raise ValueError("pin must be 4 to 8 digits")
    important = get["important"].lower()
    if important not in ("", "0", "1", "true", "false", "yes", "no"):
        raise ValueError(f"important {get['important']!r} must be true or false")
    return CustomerRow(
        account=get["account"], name=get["name"], phones=phones, tier=tier, area=get["area"],
        category=get["category"] or "residential", arrears=_decimal(get["arrears"], "arrears"),
        due_date=_date(get["due_date"], "due_date"),
        last_payment=_decimal(get["last_payment"], "last_payment") if get["last_payment"] else None,
        last_payment_date=_date(get["last_payment_date"], "last_payment_date"),
        pin=pin, important=important in ("1", "true", "yes"))


def _time(value: Any, now: float, tz: ZoneInfo, what: str) -> float | None:
    """An ISO date-time (local time zone unless given), or an offset from now like -2h, +30m, +1d8h."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=tz)).timestamp()
    text = str(value).strip()
    m = _REL.match(text)
    if m:
        sign, parts = m.groups()
        seconds = sum(float(n) * {"m": 60, "h": 3600, "d": 86400}[u] for n, u in _REL_PART.findall(parts))
        return now + (seconds if sign == "+" else -seconds)
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a time like 2026-11-23T14:00 or an offset like -2h") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).timestamp()


def parse_outage(item: Any, now: float, tz: ZoneInfo) -> OutageRow:
    if not isinstance(item, dict):
        raise ValueError("each outage is a mapping with area, kind, reason, start")
    unknown = set(item) - {"area", "kind", "reason", "start", "end", "expected_restore"}
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    area, kind, reason = (str(item.get(k) or "").strip() for k in ("area", "kind", "reason"))
    if not area or not reason:
        raise ValueError("area and reason are required")
    if kind not in OUTAGE_KINDS:
        raise ValueError(f"kind {kind!r} must be planned or fault")
    start = _time(item.get("start"), now, tz, "start")
    if start is None:
        raise ValueError("start is required")
    end = _time(item.get("end"), now, tz, "end")
    if end is not None and end <= start:
        raise ValueError("end is not after start")
    return OutageRow(area, kind, reason, start, end, _time(item.get("expected_restore"), now, tz, "expected_restore"))


def read_sample_data(config_dir: str | Path, now: float, timezone: str | None = None) -> SampleData:
    """Read `config_dir/data/customers.csv` and `outages.yaml`; raise ConfigError listing every bad row.
    Local times in them are in `timezone` (default: calendar.yaml's)."""
    folder = Path(config_dir) / "data"
    tz = ZoneInfo(timezone) if timezone is not None else load_calendar(config_dir).zone
    problems: list[ConfigProblem] = []
    rows: list[CustomerRow] = []
    path = folder / "customers.csv"
    text = read_text(path, encoding="utf-8-sig")
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in ("account", "name", "phones", "tier", "area") if c not in (reader.fieldnames or [])]
    if missing:
        raise ConfigError.at(path, 1, f"header lacks column(s): {', '.join(missing)}")
    seen_accounts: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        if None in record:
            problems.append(ConfigProblem(str(path), line, "more fields than the header has"))
            continue
        try:
            c = parse_customer(record)
        except ValueError as exc:
            problems.append(ConfigProblem(str(path), line, str(exc)))
            continue
        if c.account in seen_accounts:
            problems.append(ConfigProblem(str(path), line,
                                          f"account {c.account} already on line {seen_accounts[c.account]}"))
            continue
        seen_accounts[c.account] = line
        rows.append(c)
    found: list[OutageRow] = []
    opath = folder / "outages.yaml"
    if opath.exists():
        data, root = load_data(opath)
        items = (data or {}).get("outages", []) if isinstance(data, dict) else None
        if not isinstance(items, list):
            problems.append(ConfigProblem(str(opath), 1, "expected `outages:` with a list of outages"))
        else:
            for i, item in enumerate(items):
                try:
                    found.append(parse_outage(item, now, tz))
                except ValueError as exc:
                    problems.append(ConfigProblem(str(opath), node_line(root, ["outages", i]), str(exc)))
    if problems:
        raise ConfigError(problems)
    return SampleData(tuple(rows), tuple(found))


async def load_sample_data(engine: AsyncEngine, config_dir: str | Path, now: float,
                           timezone: str | None = None) -> SampleData:
    """Replace the customers/outages tables' contents with the sample data, in one transaction.

    Offsets in the data (`-2h`) count from `now`. Bad rows raise ConfigError before anything is written.
    PINs are hashed in a thread.
    """
    sample = read_sample_data(config_dir, now, timezone)
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="pin-hash") as pool:  # argon2 releases the GIL
        hashes = await asyncio.gather(*(loop.run_in_executor(pool, hash_pin, c.pin) if c.pin
                                        else asyncio.sleep(0, None) for c in sample.customers))
    async with engine.begin() as conn:
        await conn.execute(delete(customer_phones))
        await conn.execute(delete(customers))
        await conn.execute(delete(outages).where(outages.c.outage_id.is_(None)))  # entered outages stay
        if sample.customers:
            await conn.execute(insert(customers), [
                {"account": c.account, "name": c.name, "tier": c.tier, "area": c.area, "category": c.category,
                 "arrears": c.arrears, "due_date": c.due_date, "last_payment": c.last_payment,
                 "last_payment_date": c.last_payment_date, "pin_hash": h, "important": c.important,
                 "updated_ts": now} for c, h in zip(sample.customers, hashes, strict=True)])
            phones = [{"phone": p, "account": c.account} for c in sample.customers for p in dict.fromkeys(c.phones)]
            if phones:
                await conn.execute(insert(customer_phones), phones)
        if sample.outages:
            await conn.execute(insert(outages), [
                {"area": o.area, "kind": o.kind, "reason": o.reason, "start_ts": o.start_ts, "end_ts": o.end_ts,
                 "expected_restore_ts": o.expected_restore_ts} for o in sample.outages])
    CustomerEdits.edited()
    return sample
