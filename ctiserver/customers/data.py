"""Customer, account and outage data for IVR lookups: the provider interface and a SQL default.

The walker asks for data by provider name (`customer_by_caller`, `account`,
`outages`, `verify_pin`, ... see tree.PROVIDERS) and gets plain dicts back, so a
utility can plug in its CRM/billing system by implementing `DataProvider`. The
default reads three tables on the shared metadata (migration 0002):

    customers        one row per electricity account (tier, area, arrears, due date, PIN hash)
    customer_phones  numbers bound to an account (a caller from one is identified by number)
    outages          planned and fault outages per area, with expected restoration

PINs are stored as argon2 hashes and checked in a worker thread (argon2 is slow on
purpose); repeated wrong PINs lock the account's PIN check for a while.
Sample data for the demo hotline lives in `config/data/` (customers.csv, outages.yaml)
and is read by `read_sample_data`, which validates every row and loads nothing if any
row is bad (`file:line: message`).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    delete,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..calendar import DEFAULT_TIMEZONE, load_calendar
from ..configfile import ConfigError, ConfigProblem, load_data, node_line, read_text
from ..numbers import NumberError, caller_number, normalise_number
from ..store.schema import IdType, metadata

TIERS = ("vip", "priority", "normal", "blacklist")
OUTAGE_KINDS = ("planned", "fault")  # the sample file's; dispatchers also enter temporary and load_limit
ANNOUNCED = ("planned", "temporary")  # known ahead: the IVR tells callers of the next one

customers = Table(
    "customers",
    metadata,
    Column("account", String(20), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("tier", String(20), nullable=False, default="normal"),
    Column("area", String(60), nullable=False, index=True),
    Column("category", String(30), nullable=False, default="residential"),
    Column("arrears", Numeric(12, 2), nullable=False, default=0),
    Column("due_date", Date),
    Column("last_payment", Numeric(12, 2)),
    Column("last_payment_date", Date),
    Column("pin_hash", String(200)),
    Column("important", Boolean, nullable=False, default=False),
    Column("updated_ts", Float, nullable=False, default=0.0),
)

customer_phones = Table(
    "customer_phones",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("phone", String(20), nullable=False),
    Column("account", String(20), ForeignKey("customers.account", ondelete="CASCADE"), nullable=False),
    Index("ux_customer_phones", "phone", "account", unique=True),
    Index("ix_customer_phones_phone", "phone"),
)

outages = Table(
    "outages",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("area", String(60), nullable=False),
    Column("kind", String(10), nullable=False),  # planned | fault
    Column("reason", String(200), nullable=False),
    Column("start_ts", Float, nullable=False),
    Column("end_ts", Float),  # when power came back (None: not yet)
    Column("expected_restore_ts", Float),
    # the outage a dispatcher entered (ctiserver/outages/), NULL for the sample data's rows (migration 0009)
    Column("outage_id", Integer, index=True),
    Index("ix_outages_area_start", "area", "start_ts"),
)

class DataProvider(Protocol):
    """What the IVR runtime asks; returns a dict of the provider's fields, or None when not found."""

    async def lookup(self, provider: str, args: Mapping[str, str], now: float) -> dict[str, Any] | None: ...


class UnknownProvider(LookupError):
    pass


# --- pure shaping of rows into provider answers ------------------------------------------------
def _money(value: Any) -> float:
    return float(value) if value is not None else 0.0


def _day(value: Any) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value) if value else ""


def customer_answer(row: Mapping[str, Any], phones: Sequence[str], verified: bool) -> dict[str, Any]:
    return {"found": True, "account": row["account"], "name": row["name"], "tier": row["tier"],
            "area": row["area"], "category": row["category"], "important": bool(row["important"]),
            "verified": verified, "phones": list(phones), "arrears": _money(row["arrears"]),
            "due_date": _day(row["due_date"]), "last_payment": _money(row.get("last_payment")),
            "last_payment_date": _day(row.get("last_payment_date"))}


def account_answer(row: Mapping[str, Any], now: float, tz: ZoneInfo) -> dict[str, Any]:
    due = row["due_date"]
    today = dt.datetime.fromtimestamp(now, tz).date()
    arrears = _money(row["arrears"])
    return {"found": True, "account": row["account"], "name": row["name"], "arrears": arrears,
            "due_date": _day(due), "overdue": bool(arrears > 0 and isinstance(due, dt.date) and due < today),
            "last_payment": _money(row["last_payment"]), "last_payment_date": _day(row["last_payment_date"])}


def _when(ts: float | None, tz: ZoneInfo, now: float, lang: str) -> str:
    if ts is None:
        return "待定" if lang == "zh" else "to be announced"
    local = dt.datetime.fromtimestamp(ts, tz)
    today = dt.datetime.fromtimestamp(now, tz).date()
    if lang == "zh":
        day = "今天" if local.date() == today else f"{local.month}月{local.day}日"
        return f"{day}{local.hour}点{local.minute:02d}分" if local.minute else f"{day}{local.hour}点"
    day = "today" if local.date() == today else local.strftime("%d %b")
    return f"{day} at {local:%H:%M}"


def outage_answer(rows: Sequence[Mapping[str, Any]], area: str, now: float, tz: ZoneInfo,
                  planned_within_s: float = 7 * 86400) -> dict[str, Any]:
    """Active outage first (faults before planned works), then the next planned one."""
    active = [r for r in rows if r["start_ts"] <= now and (r["end_ts"] is None or now < r["end_ts"])]
    active.sort(key=lambda r: (r["kind"] != "fault", -r["start_ts"]))
    upcoming = sorted((r for r in rows if r["kind"] in ANNOUNCED and now < r["start_ts"] <= now + planned_within_s),
                      key=lambda r: r["start_ts"])
    out: dict[str, Any] = {"found": True, "area": area, "active": bool(active), "planned": bool(upcoming)}
    if active:
        r = active[0]
        out.update(outage_id=r.get("outage_id"), kind=r["kind"], reason=r["reason"],
                   start=_when(r["start_ts"], tz, now, "zh"),
                   expected_restore=_when(r["expected_restore_ts"], tz, now, "zh"),
                   expected_restore_en=_when(r["expected_restore_ts"], tz, now, "en"))
    if upcoming:
        r = upcoming[0]
        end = r["end_ts"] or r["expected_restore_ts"]
        out.update(planned_start=_when(r["start_ts"], tz, now, "zh"), planned_end=_when(end, tz, now, "zh"),
                   planned_start_en=_when(r["start_ts"], tz, now, "en"), planned_end_en=_when(end, tz, now, "en"),
                   planned_reason=r["reason"])
    return out


@dataclass
class PinGuard:
    """Wrong-PIN lockout per account: `limit` failures within `window_s` lock it for `window_s`."""

    limit: int = 5
    window_s: float = 900.0
    failures: dict[str, list[float]] = field(default_factory=dict)

    def locked(self, account: str, now: float) -> bool:
        recent = [t for t in self.failures.get(account, []) if now - t < self.window_s]
        self.failures[account] = recent
        return len(recent) >= self.limit

    def failed(self, account: str, now: float) -> int:
        self.failures.setdefault(account, []).append(now)
        return len(self.failures[account])

    def succeeded(self, account: str) -> None:
        self.failures.pop(account, None)


# A PIN is 4-8 digits: the hash keeps it out of sight in the database and backups; a memory-hard
# cost beyond this only slows every call's identity check without stopping an offline search.
_hasher = PasswordHasher(time_cost=2, memory_cost=8192, parallelism=1)


def hash_pin(pin: str) -> str:
    return _hasher.hash(pin)


def pin_matches(pin_hash: str | None, pin: str) -> bool:
    if not pin_hash:
        return False
    try:
        return _hasher.verify(pin_hash, pin)
    except (VerificationError, InvalidHashError):
        return False


async def _customer(conn: AsyncConnection, account: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(customers).where(customers.c.account == account.strip()))).first()
    return dict(row._mapping) if row else None


async def _phones(conn: AsyncConnection, account: str) -> list[str]:
    rows = await conn.execute(select(customer_phones.c.phone).where(customer_phones.c.account == account)
                              .order_by(customer_phones.c.id))
    return [r[0] for r in rows]


# --- the SQL provider ---------------------------------------------------------------------------
class SqlDataProvider:
    """The default provider over the customers/customer_phones/outages tables."""

    def __init__(self, engine: AsyncEngine, timezone: str = DEFAULT_TIMEZONE, pin_guard: PinGuard | None = None
                 ) -> None:
        self.engine = engine
        self.tz = ZoneInfo(timezone)
        self.pins = pin_guard or PinGuard()

    async def lookup(self, provider: str, args: Mapping[str, str], now: float) -> dict[str, Any] | None:
        if provider == "customer_by_caller":
            return await self._by_caller(args["number"])
        if provider == "customer_by_account":
            return await self._by_account(args["account"])
        if provider == "account":
            row = await self._customer_row(args["account"])
            return account_answer(row, now, self.tz) if row else None
        if provider == "outages":
            return await self._outages(args["area"], now)
        if provider == "verify_pin":
            return await self._verify_pin(args["account"], args["pin"], now)
        raise UnknownProvider(f"no data provider {provider!r}")

    async def _customer_row(self, account: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            return await _customer(conn, account)

    async def _by_caller(self, number: str) -> dict[str, Any] | None:
        phone = caller_number(number)
        if not phone:
            return None
        # one connection for both queries: each checkout costs a round trip of its own (the pool's pre-ping),
        # and the load test found these lookups among the CTI's largest costs per call
        async with self.engine.connect() as conn:
            row = (await conn.execute(
                select(customers).join(customer_phones, customer_phones.c.account == customers.c.account)
                .where(customer_phones.c.phone == phone)
                .order_by(customers.c.important.desc(), customers.c.account).limit(1))).first()
            if row is None:
                return None
            data = dict(row._mapping)
            return customer_answer(data, await _phones(conn, data["account"]), verified=True)

    async def _by_account(self, account: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = await _customer(conn, account)
            if row is None:
                return None
            return customer_answer(row, await _phones(conn, row["account"]), verified=False)

    async def _outages(self, area: str, now: float) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in await conn.execute(
                select(outages).where(outages.c.area == area.strip())
                .where((outages.c.end_ts.is_(None)) | (outages.c.end_ts > now)))]
        return outage_answer(rows, area, now, self.tz)

    async def _verify_pin(self, account: str, pin: str, now: float) -> dict[str, Any] | None:
        row = await self._customer_row(account)
        if row is None:
            return None
        if self.pins.locked(account, now):
            return {"found": True, "verified": False, "method": "pin", "locked": True, "attempts": self.pins.limit}
        ok = await asyncio.to_thread(pin_matches, row["pin_hash"], pin)
        if ok:
            self.pins.succeeded(account)
            return {"found": True, "verified": True, "method": "pin", "attempts": 0}
        return {"found": True, "verified": False, "method": "pin", "attempts": self.pins.failed(account, now)}


# --- sample data ---------------------------------------------------------------------------------
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
    return sample


class MemoryDataProvider:
    """The same answers from sample data held in memory (for `ivr try`, benchmarks and tests)."""

    def __init__(self, sample: SampleData, timezone: str = DEFAULT_TIMEZONE) -> None:
        self.sample = sample
        self.tz = ZoneInfo(timezone)
        self.pins = PinGuard()
        self._by_account = {c.account: c for c in sample.customers}

    @staticmethod
    def _row(c: CustomerRow) -> dict[str, Any]:
        return {"account": c.account, "name": c.name, "tier": c.tier, "area": c.area, "category": c.category,
                "arrears": c.arrears, "due_date": c.due_date, "last_payment": c.last_payment,
                "last_payment_date": c.last_payment_date, "important": c.important}

    async def lookup(self, provider: str, args: Mapping[str, str], now: float) -> dict[str, Any] | None:
        if provider == "customer_by_caller":
            phone = caller_number(args["number"])
            hits = sorted((c for c in self.sample.customers if phone and phone in c.phones),
                          key=lambda c: (not c.important, c.account))
            return customer_answer(self._row(hits[0]), hits[0].phones, True) if hits else None
        c = self._by_account.get(args.get("account", "").strip())
        if provider == "customer_by_account":
            return customer_answer(self._row(c), c.phones, False) if c else None
        if provider == "account":
            return account_answer(self._row(c), now, self.tz) if c else None
        if provider == "verify_pin":
            if c is None:
                return None
            if self.pins.locked(c.account, now):
                return {"found": True, "verified": False, "method": "pin", "locked": True}
            if c.pin and c.pin == args["pin"]:
                self.pins.succeeded(c.account)
                return {"found": True, "verified": True, "method": "pin", "attempts": 0}
            return {"found": True, "verified": False, "method": "pin", "attempts": self.pins.failed(c.account, now)}
        if provider == "outages":
            area = args["area"].strip()
            rows = [{"area": o.area, "kind": o.kind, "reason": o.reason, "start_ts": o.start_ts, "end_ts": o.end_ts,
                     "expected_restore_ts": o.expected_restore_ts} for o in self.sample.outages if o.area == area]
            return outage_answer(rows, area, now, self.tz)
        raise UnknownProvider(f"no data provider {provider!r}")
