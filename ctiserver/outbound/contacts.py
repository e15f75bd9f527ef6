"""Contact lists: CSV files and customer-table targets, validated row by row, pure.

Every bad row is reported with its row number (the line in the file, header = 1)
and the reason; the import is all-or-nothing unless the caller asks to skip bad
rows. Numbers on the do-not-call list or the blacklist are excluded and listed,
which is not an error. Files from Chinese Excel often come as GB18030, not UTF-8:
both are read.

Columns (English or the usual Chinese headers): number (required), name, account,
area, priority (0-100), important (yes/no), tier, quiet ("12:00-14:00;21:00-08:00");
any other column becomes a message variable. Arrears reminders need account,
billing_month, arrears, due_date (YYYY-MM-DD); customer_class may be residential
or business; language (zh or en) is the contact's own, else the campaign's is used.
Surveys may carry call_id, agent_id and queue to rate against.
"""

from __future__ import annotations

import csv
import io
import math
import random
import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Protocol

from ..numbers import normalise_number
from .model import LANGS, ContactIn, TimeRange, parse_ranges

MAX_ROWS = 500_000
IMPORTANT_PRIORITY = 10

ALIASES = {
    "number": "number", "phone": "number", "mobile": "number", "tel": "number", "电话": "number",
    "号码": "number", "联系电话": "number", "手机": "number", "手机号": "number",
    "name": "name", "姓名": "name", "户名": "name", "客户名称": "name",
    "account": "account", "户号": "account", "用户编号": "account",
    "area": "area", "区域": "area", "台区": "area", "供电区域": "area",
    "priority": "priority", "优先级": "priority",
    "important": "important", "vip": "important", "重要客户": "important", "重要": "important",
    "tier": "tier", "等级": "tier", "客户等级": "tier",
    "quiet": "quiet", "quiet_hours": "quiet", "免打扰": "quiet", "免打扰时段": "quiet",
    "billing_month": "billing_month", "账期": "billing_month", "电费年月": "billing_month",
    "arrears": "arrears", "欠费金额": "arrears", "欠费": "arrears",
    "due_date": "due_date", "缴费截止日": "due_date", "交费截止日期": "due_date",
    "customer_class": "customer_class", "用户类别": "customer_class",
    "language": "language", "lang": "language", "语言": "language", "语种": "language",
}
REQUIRED = {"arrears_reminder": ("account", "billing_month", "arrears", "due_date")}
_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")
_TIER = re.compile(r"^[A-Za-z0-9_-]{0,20}$")
_YES = {"1", "y", "yes", "true", "是", "√", "重要", "vip"}
_NO = {"", "0", "n", "no", "false", "否"}


@dataclass(frozen=True, slots=True)
class RowProblem:
    row: int
    reason: str
    number: str = ""

    def __str__(self) -> str:
        return f"row {self.row}: {self.reason}"


@dataclass(slots=True)
class ImportReport:
    accepted: list[ContactIn] = field(default_factory=list)
    excluded: list[RowProblem] = field(default_factory=list)  # do-not-call / blacklist: left out on purpose
    errors: list[RowProblem] = field(default_factory=list)
    rows: int = 0


class ImportRejected(Exception):
    """The list had bad rows and skipping them was not asked for: nothing was imported."""

    error_id = "import_rejected"

    def __init__(self, report: ImportReport, shown: int = 50) -> None:
        self.report = report
        lines = [str(p) for p in report.errors[:shown]]
        if len(report.errors) > shown:
            lines.append(f"... and {len(report.errors) - shown} more")
        super().__init__(f"{len(report.errors)} bad row(s), nothing imported:\n" + "\n".join(lines))


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM) or GB18030, as spreadsheets in China save CSV."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise ValueError("the file is neither UTF-8 nor GB18030 text") from None


def _decimal(value: str, what: str) -> Decimal:
    try:
        d = Decimal(value.replace(",", "").replace("元", "").strip())
    except InvalidOperation:
        raise ValueError(f"{what} {value!r} is not an amount") from None
    if not d.is_finite() or d < 0:
        raise ValueError(f"{what} {value!r} must be a non-negative amount")
    return d


def control_character(value: str) -> str | None:
    """The first control character in `value` (C0, DEL, C1 such as a terminal escape, or a line or
    paragraph separator), or None. No column may hold one: they break exports, logs and terminals."""
    for ch in value:
        if unicodedata.category(ch) == "Cc" or ch in "\u2028\u2029":
            return ch
    return None


def _contact(fields: Mapping[str, str], kind: str) -> ContactIn:
    """One row's fields (canonical names) to a contact; ValueError with the reason if bad."""
    if "__error__" in fields:  # the CSV reader could not split this row
        raise ValueError(fields["__error__"])
    for key, value in fields.items():
        bad = control_character(value)
        if bad is not None:
            what = "a line break" if bad in "\r\n\u2028\u2029" else f"a control character (U+{ord(bad):04X})"
            raise ValueError(f"'{key}' contains {what}")
    number = normalise_number(fields.get("number", ""))
    for key in REQUIRED.get(kind, ()):
        if not fields.get(key, "").strip():
            raise ValueError(f"'{key}' is required for a {kind} campaign")
    priority_text = fields.get("priority", "").strip()
    try:
        priority = int(priority_text) if priority_text else 0
    except ValueError:
        raise ValueError(f"priority {priority_text!r} is not a whole number") from None
    if not 0 <= priority <= 100:
        raise ValueError(f"priority {priority} is outside 0-100")
    important = fields.get("important", "").strip().lower()
    if important in _YES:
        priority = max(priority, IMPORTANT_PRIORITY)
    elif important not in _NO:
        raise ValueError(f"important {fields['important']!r} is not yes/no")
    tier = fields.get("tier", "").strip()
    if not _TIER.match(tier):
        raise ValueError(f"tier {tier!r} may hold only letters, digits, _ and -")
    quiet = fields.get("quiet", "").strip()
    parse_ranges(quiet)
    variables: dict[str, str] = {}
    for key, value in fields.items():
        if key in ("number", "name", "account", "area", "priority", "important", "tier", "quiet"):
            continue
        value = value.strip()
        if len(value) > 200:
            raise ValueError(f"'{key}' is longer than 200 characters")
        if value:
            variables[key] = value
    if "arrears" in variables:
        variables["arrears"] = str(_decimal(variables["arrears"], "arrears").quantize(Decimal("0.01")))
    if "due_date" in variables:
        try:
            variables["due_date"] = date.fromisoformat(variables["due_date"]).isoformat()
        except ValueError:
            raise ValueError(f"due_date {variables['due_date']!r} is not a date (YYYY-MM-DD)") from None
    if "language" in variables:  # the contact hears their message (and an agent) in this language
        variables["language"] = variables["language"].lower()
        if variables["language"] not in LANGS:
            raise ValueError(f"language {variables['language']!r} is not one of {', '.join(LANGS)}")
    classes = ("residential", "business", "居民", "非居民")
    if variables.get("customer_class", "residential").lower() not in classes:
        raise ValueError(f"customer_class {variables['customer_class']!r} is not residential or business")
    name, account, area = (fields.get(k, "").strip() for k in ("name", "account", "area"))
    for what, value, limit in (("name", name, 100), ("account", account, 40), ("area", area, 60)):
        if len(value) > limit:
            raise ValueError(f"{what} is longer than {limit} characters")
    return ContactIn(number, name, account, area, priority, tier, quiet, variables)


def validate_rows(rows: Iterable[tuple[int, Mapping[str, str]]], kind: str, *,
                  excluded: Mapping[str, str] | None = None, existing: Collection[str] = (),
                  skip_bad: bool = False) -> ImportReport:
    """Validate (row number, fields) pairs; raise ImportRejected unless clean or `skip_bad`."""
    excluded = excluded or {}
    report = ImportReport()
    seen: dict[str, int] = {}
    existing_set = set(existing)
    for row_no, fields in rows:
        report.rows += 1
        if report.rows > MAX_ROWS:
            report.errors.append(RowProblem(row_no, f"more than {MAX_ROWS} rows; split the file"))
            break
        try:
            contact = _contact(fields, kind)
        except ValueError as exc:
            report.errors.append(RowProblem(row_no, str(exc), fields.get("number", "")))
            continue
        if contact.number in seen:
            report.errors.append(RowProblem(row_no, f"duplicate of row {seen[contact.number]} "
                                                    f"({contact.number})", contact.number))
            continue
        seen[contact.number] = row_no
        if contact.number in existing_set:
            report.errors.append(RowProblem(row_no, f"{contact.number} is already in this campaign",
                                            contact.number))
            continue
        if contact.number in excluded:
            why = "blacklisted" if excluded[contact.number] == "blacklist" else "on the do-not-call list"
            report.excluded.append(RowProblem(row_no, f"{contact.number} is {why}", contact.number))
            continue
        if contact.tier.lower() == "blacklist":
            report.excluded.append(RowProblem(row_no, f"{contact.number} belongs to a blacklisted customer",
                                              contact.number))
            continue
        report.accepted.append(contact)
    if report.errors and not skip_bad:
        raise ImportRejected(report)
    return report


def csv_rows(text: str) -> Iterable[tuple[int, dict[str, str]]]:
    """(row number, {canonical column: value}) per data row; a malformed row yields its error text.

    The reader is strict: a stray quote is an error, and so is a record that runs over
    several lines (a quote left open swallows the rows after it; no column may hold a
    line break), reported at the row where it starts with the rows it took.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError("the file is empty") from None
    except csv.Error as exc:
        raise ValueError(f"row 1: unreadable header ({exc})") from None
    columns: list[str] = []
    for i, raw in enumerate(header, start=1):
        name = unicodedata.normalize("NFKC", raw).strip()
        canon = ALIASES.get(name.lower(), ALIASES.get(name))
        if canon is None:
            if not _VAR.match(name):
                raise ValueError(f"row 1: column {i} header {raw!r} is not a known column or a plain name")
            canon = name
        if canon in columns:
            raise ValueError(f"row 1: column {raw!r} appears twice")
        columns.append(canon)
    if "number" not in columns:
        raise ValueError("row 1: no phone number column (number / 电话 / 号码)")
    line = reader.line_num
    while True:
        start = line + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if reader.line_num == line:
                return
            end, line = reader.line_num, reader.line_num
            if "end of data" in str(exc):
                yield start, {"__error__": f"a quote opened in this row is never closed: rows {start}-{end} "
                                           "(to the end of the file) could not be read"}
                return
            yield start, {"__error__": f"unreadable CSV ({exc})"}
            continue
        end, line = reader.line_num, reader.line_num
        if end > start:
            yield start, {"__error__": f"a quoted field runs over rows {start}-{end} (a quote not closed?); "
                                       "no column may hold a line break"}
            continue
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(columns):
            yield start, {"__error__": f"{len(values)} fields, the header has {len(columns)}"}
            continue
        yield start, dict(zip(columns, values, strict=True))


def parse_csv(data: bytes | str, kind: str, *, excluded: Mapping[str, str] | None = None,
              existing: Collection[str] = (), skip_bad: bool = False) -> ImportReport:
    """Validate a whole CSV file. Raises ImportRejected (bad rows) or ValueError (unreadable file)."""
    text = decode(data) if isinstance(data, bytes) else data
    if "\x00" in text:
        raise ValueError("the file contains NUL bytes: not a CSV text file")
    return validate_rows(csv_rows(text), kind, excluded=excluded, existing=existing,
                         skip_bad=skip_bad)


def apply_class_windows(people: Sequence[ContactIn], class_windows: Mapping[str, str]) -> list[ContactIn]:
    """Give each contact the quiet hours outside its customer class's calling range.

    A range "17:00-22:00" for residential customers becomes quiet hours "22:00-17:00"
    (added to any the customer has), so the scheduler rolls a call to the next day
    after 22:00 like any other quiet time.
    """
    if not class_windows:
        return list(people)
    out = []
    for p in people:
        klass = p.variables.get("customer_class", "residential").lower()
        klass = "business" if klass in ("business", "非居民") else "residential"
        window = class_windows.get(klass)
        if window is None:
            out.append(p)
            continue
        r = TimeRange.parse(window)
        outside = f"{r.end // 60:02d}:{r.end % 60:02d}-{r.start // 60:02d}:{r.start % 60:02d}"
        if r.end == 1440:
            outside = f"00:00-{r.start // 60:02d}:{r.start % 60:02d}"
        quiet = ";".join(q for q in (p.quiet, outside) if q)
        out.append(replace(p, quiet=quiet))
    return out


def stratified_sample(people: Sequence[ContactIn], fraction: float, *, seed: int = 0) -> list[ContactIn]:
    """At least `fraction` of the contacts, drawn from every area in proportion (at least one each).

    For fault-repair callbacks: "a sample of at least 5% of the customers who reported
    the fault, spread across the outage area". Deterministic for a given seed.
    """
    if not 0 < fraction <= 1:
        raise ValueError("the sample fraction must be in (0, 1]")
    by_area: dict[str, list[ContactIn]] = {}
    for p in people:
        by_area.setdefault(p.area, []).append(p)
    rng = random.Random(seed)
    picked: list[ContactIn] = []
    for area in sorted(by_area):
        group = by_area[area]
        n = max(1, math.ceil(len(group) * fraction))
        picked += rng.sample(group, n)
    order = {id(p): i for i, p in enumerate(people)}
    return sorted(picked, key=lambda p: order[id(p)])


# --- targets from the customer tables ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomerTarget:
    """What outbound needs to know about a customer (the IVR's customer data provides it)."""

    account: str
    name: str
    phone: str
    area: str = ""
    important: bool = False
    tier: str = ""
    customer_class: str = "residential"
    billing_month: str = ""
    arrears: Decimal | None = None
    due_date: date | None = None


class CustomerSource(Protocol):
    """The small interface outbound depends on; the customer/outage tables implement it."""

    async def customers_in_areas(self, areas: Sequence[str]) -> Sequence[CustomerTarget]: ...

    async def customers_in_arrears(self, min_amount: Decimal, as_of: date) -> Sequence[CustomerTarget]: ...


def targets_to_contacts(targets: Sequence[CustomerTarget], kind: str, *,
                        excluded: Mapping[str, str] | None = None, existing: Collection[str] = (),
                        skip_bad: bool = True) -> ImportReport:
    """Customer records through the same validation as a CSV; 'row' is the record's position (1-based)."""
    def rows() -> Iterable[tuple[int, Mapping[str, str]]]:
        for i, t in enumerate(targets, start=1):
            fields = {"number": t.phone, "name": t.name, "account": t.account, "area": t.area,
                      "important": "yes" if t.important else "no", "tier": t.tier}
            if kind == "arrears_reminder":
                fields.update(billing_month=t.billing_month, customer_class=t.customer_class,
                              arrears="" if t.arrears is None else str(t.arrears),
                              due_date="" if t.due_date is None else t.due_date.isoformat())
            yield i, fields

    return validate_rows(rows(), kind, excluded=excluded, existing=existing, skip_bad=skip_bad)
