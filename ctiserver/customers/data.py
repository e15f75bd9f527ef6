"""Customer, account and outage data for IVR lookups: the provider interface and a SQL default.

The walker asks for data by provider name (`customer_by_caller`, `account`,
`outages`, `verify_pin`, ... see tree.PROVIDERS) and gets plain dicts back, so a
utility can plug in its CRM/billing system by implementing `DataProvider`. The
default reads three tables on the shared metadata (migration 0002, tables.py):

    customers        one row per electricity account (tier, area, arrears, due date, PIN hash)
    customer_phones  numbers bound to an account (a caller from one is identified by number)
    outages          planned and fault outages per area, with expected restoration

PINs (pin.py) are stored as argon2 hashes and checked in a worker thread (argon2 is slow on
purpose); repeated wrong PINs lock the account's PIN check for a while. Sample data for the demo
hotline (sample.py) lives in `config/data/` (customers.csv, outages.yaml) and is read by
`read_sample_data`, which validates every row and loads nothing if any row is bad (`file:line: message`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import (
    bindparam,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..calendar import DEFAULT_TIMEZONE
from ..numbers import caller_number
from ..store.engine import reading
from .pin import PinGuard, hash_pin, pin_matches
from .sample import CustomerRow, OutageRow, SampleData, load_sample_data, parse_customer, parse_outage, read_sample_data
from .tables import ANNOUNCED, OUTAGE_KINDS, TIERS, CustomerEdits, customer_phones, customers, outages

__all__ = ["ANNOUNCED", "OUTAGE_KINDS", "TIERS", "CustomerRow", "DataProvider", "MemoryDataProvider", "OutageRow",
           "PinGuard", "SampleData", "SqlDataProvider", "UnknownProvider", "account_answer", "customer_answer",
           "customer_phones", "customers", "hash_pin", "load_sample_data", "outage_answer", "outages",
           "parse_customer", "parse_outage", "pin_matches", "read_sample_data"]

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


async def _customer(conn: AsyncConnection, account: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(customers).where(customers.c.account == account.strip()))).first()
    return dict(row._mapping) if row else None


async def _phones(conn: AsyncConnection, account: str) -> list[str]:
    rows = await conn.execute(select(customer_phones.c.phone).where(customer_phones.c.account == account)
                              .order_by(customer_phones.c.id))
    return [r[0] for r in rows]


# --- the SQL provider ---------------------------------------------------------------------------
_BY_PHONE = (select(customers).join(customer_phones, customer_phones.c.account == customers.c.account)
             .where(customer_phones.c.phone == bindparam("phone"))
             .order_by(customers.c.important.desc(), customers.c.account).limit(1))
_BY_ACCOUNT = select(customers).where(customers.c.account == bindparam("account"))
_OUTAGES = (select(outages).where(outages.c.area == bindparam("area"))  # built once: once per caller
            .where((outages.c.end_ts.is_(None)) | (outages.c.end_ts > bindparam("now"))))
_PHONES = (select(customer_phones.c.phone).where(customer_phones.c.account == bindparam("account"))
           .order_by(customer_phones.c.id))
RECORD_TTL_S = 10.0  # how long a customer record read from the tables is answered from memory
RECORDS_KEPT = 20_000


class RecordCache:
    """Customer records (row and phones) recently read, by account and by caller number, for `ttl_s` seconds of
    the injected clock. The tables stay the one source: an entry is only a copy of what they held when read;
    a rewrite of them by this process (`CustomerEdits`) drops every entry, an edit elsewhere (the CRM, another
    node) is seen after at most `ttl_s`. Unknown numbers are kept too (most callers are not in the table)."""

    def __init__(self, ttl_s: float = RECORD_TTL_S, size: int = RECORDS_KEPT) -> None:
        self.ttl_s, self.size = ttl_s, size
        self._edits = CustomerEdits.count
        self._accounts: dict[str, tuple[float, dict[str, Any] | None, list[str]]] = {}
        self._phones: dict[str, tuple[float, str | None]] = {}
        self.hits = self.misses = 0

    def _fresh(self) -> None:
        if self._edits != CustomerEdits.count:
            self.clear()
            self._edits = CustomerEdits.count

    def clear(self) -> None:
        self._accounts.clear()
        self._phones.clear()

    def account(self, account: str, now: float) -> tuple[dict[str, Any] | None, list[str]] | None:
        """(row, phones) of `account` (row None: no such account), or None if not kept."""
        self._fresh()
        got = self._accounts.get(account)
        if got is None or now - got[0] >= self.ttl_s or now < got[0]:
            self.misses += 1
            return None
        self.hits += 1
        return got[1], got[2]

    def phone(self, phone: str, now: float) -> tuple[str | None] | None:
        """(account,) the number belongs to (None: nobody's), or None if not kept."""
        self._fresh()
        got = self._phones.get(phone)
        if got is None or now - got[0] >= self.ttl_s or now < got[0]:
            self.misses += 1
            return None
        self.hits += 1
        return (got[1],)

    def keep(self, now: float, account: str, row: dict[str, Any] | None, phones: list[str],
             phone: str | None = None) -> None:
        self._fresh()
        self._accounts[account] = (now, row, phones)
        if phone is not None:
            self._phones[phone] = (now, row["account"] if row else None)
        for kept in (self._accounts, self._phones):
            while len(kept) > self.size:
                del kept[next(iter(kept))]  # the oldest read


class SqlDataProvider:
    """The default provider over the customers/customer_phones/outages tables. Customer records are answered
    from a `RecordCache` for a few seconds (the IVR and the screen pop read the same caller within seconds);
    outages and PIN checks always read the tables (a dispatcher's outage is heard by the next caller)."""

    def __init__(self, engine: AsyncEngine, timezone: str = DEFAULT_TIMEZONE, pin_guard: PinGuard | None = None,
                 records: RecordCache | None = None) -> None:
        self.engine = engine
        self.tz = ZoneInfo(timezone)
        self.pins = pin_guard or PinGuard()
        self.records = records if records is not None else RecordCache()

    async def lookup(self, provider: str, args: Mapping[str, str], now: float) -> dict[str, Any] | None:
        if provider == "customer_by_caller":
            return await self._by_caller(args["number"], now)
        if provider == "customer_by_account":
            return await self._by_account(args["account"], now)
        if provider == "account":
            row, _phones = await self._record(args["account"].strip(), now)
            return account_answer(row, now, self.tz) if row else None
        if provider == "outages":
            return await self._outages(args["area"], now)
        if provider == "verify_pin":
            return await self._verify_pin(args["account"], args["pin"], now)
        raise UnknownProvider(f"no data provider {provider!r}")

    async def _customer_row(self, account: str) -> dict[str, Any] | None:
        async with reading(self.engine) as conn:
            return await _customer(conn, account)

    async def _record(self, account: str, now: float) -> tuple[dict[str, Any] | None, list[str]]:
        kept = self.records.account(account, now)
        if kept is not None:
            return kept
        async with reading(self.engine) as conn:
            first = (await conn.execute(_BY_ACCOUNT, {"account": account})).first()
            row = dict(first._mapping) if first else None
            phones = [r[0] for r in await conn.execute(_PHONES, {"account": account})] if row else []
        self.records.keep(now, account, row, phones)
        return row, phones

    async def _by_caller(self, number: str, now: float) -> dict[str, Any] | None:
        phone = caller_number(number)
        if not phone:
            return None
        kept_phone = self.records.phone(phone, now)
        if kept_phone is not None:
            if kept_phone[0] is None:
                return None
            kept = self.records.account(kept_phone[0], now)
            if kept is not None and kept[0] is not None:
                return customer_answer(kept[0], kept[1], verified=True)
        # one connection for both queries: each checkout costs a round trip of its own (the pool's pre-ping),
        # and the load test found these lookups among the CTI's largest costs per call
        async with reading(self.engine) as conn:
            first = (await conn.execute(_BY_PHONE, {"phone": phone})).first()
            if first is None:
                self.records.keep(now, "", None, [], phone=phone)
                return None
            data = dict(first._mapping)
            phones = [r[0] for r in await conn.execute(_PHONES, {"account": data["account"]})]
        self.records.keep(now, data["account"], data, phones, phone=phone)
        return customer_answer(data, phones, verified=True)

    async def _by_account(self, account: str, now: float) -> dict[str, Any] | None:
        row, phones = await self._record(account.strip(), now)
        return customer_answer(row, phones, verified=False) if row is not None else None

    async def _outages(self, area: str, now: float) -> dict[str, Any]:
        async with reading(self.engine) as conn:
            rows = [dict(r._mapping) for r in await conn.execute(_OUTAGES, {"area": area.strip(), "now": now})]
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
