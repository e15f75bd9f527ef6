"""Portable SQL pieces: the few expressions SQLite and PostgreSQL spell differently.

Why: the same report must give the same numbers on both databases. PostgreSQL's
CAST(float AS int) rounds while SQLite's truncates; PostgreSQL's round() on a double
is platform-defined at .5; a stray string in a JSON number would make PostgreSQL's
cast fail the whole report. Each construct here compiles to an expression with one
meaning on both: floors are floors, durations are integer milliseconds (so sums
are exact), and JSON values of the wrong type read as NULL instead of raising.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, String, case, cast, func, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from .facts import HALF_HOUR, Window


class FloorDiv(FunctionElement[int]):
    """floor(x / n) as an integer, n a positive integer constant."""

    type = BigInteger()
    inherit_cache = False  # `n` is not part of SQLAlchemy's cache key: never reuse compiled SQL
    name = "floor_div"

    def __init__(self, expr: ColumnElement[Any], n: int) -> None:
        if n <= 0:
            raise ValueError("divisor must be positive")
        self.n = int(n)
        super().__init__(expr)


@compiles(FloorDiv, "postgresql")
def _floor_div_pg(element: FloorDiv, compiler: Any, **kw: Any) -> str:
    (expr,) = element.clauses
    return f"CAST(floor(CAST({compiler.process(expr, **kw)} AS DOUBLE PRECISION) / {element.n}) AS BIGINT)"


@compiles(FloorDiv)
def _floor_div_sqlite(element: FloorDiv, compiler: Any, **kw: Any) -> str:
    (expr,) = element.clauses
    v = f"(({compiler.process(expr, **kw)}) * 1.0 / {element.n})"
    return f"(CAST({v} AS INTEGER) - ({v} < CAST({v} AS INTEGER)))"


def floor_div(expr: Any, n: int) -> FloorDiv:
    return FloorDiv(expr, n)


def round_ms(seconds: Any) -> FloorDiv:
    """Seconds (float) to whole milliseconds, rounding half up, identically on both databases."""
    return FloorDiv(seconds * 1000 + 0.5, 1)


class _JsonKey(FunctionElement[Any]):
    inherit_cache = False  # `key` is not part of SQLAlchemy's cache key: never reuse compiled SQL

    def __init__(self, column: ColumnElement[Any], key: str) -> None:
        if not key.replace("_", "").isalnum():
            raise ValueError(f"unsafe JSON key {key!r}")
        self.key = key
        super().__init__(column)


class JsonNum(_JsonKey):
    """A JSON number under `key`, else NULL (strings, booleans, missing)."""

    type = Float()
    name = "json_num"
    inherit_cache = False


class JsonStr(_JsonKey):
    """A JSON string or number under `key` as text, else NULL."""

    type = String()
    name = "json_str"
    inherit_cache = False


class JsonTrue(_JsonKey):
    """True when `key` holds the JSON literal true (not the string "true")."""

    type = Boolean()
    name = "json_true"
    inherit_cache = False


@compiles(JsonNum, "postgresql")
def _json_num_pg(element: JsonNum, compiler: Any, **kw: Any) -> str:
    (col,) = element.clauses
    c = compiler.process(col, **kw)
    k = element.key
    return (f"(CASE WHEN json_typeof(CAST({c} AS JSON) -> '{k}') = 'number' "
            f"THEN CAST(CAST({c} AS JSON) ->> '{k}' AS DOUBLE PRECISION) END)")


@compiles(JsonNum)
def _json_num_sqlite(element: JsonNum, compiler: Any, **kw: Any) -> str:
    (col,) = element.clauses
    c = compiler.process(col, **kw)
    k = element.key
    return (f"(CASE WHEN json_type({c}, '$.\"{k}\"') IN ('integer', 'real') "
            f"THEN json_extract({c}, '$.\"{k}\"') END)")


@compiles(JsonStr, "postgresql")
def _json_str_pg(element: JsonStr, compiler: Any, **kw: Any) -> str:
    (col,) = element.clauses
    c = compiler.process(col, **kw)
    k = element.key
    return (f"(CASE WHEN json_typeof(CAST({c} AS JSON) -> '{k}') IN ('string', 'number') "
            f"THEN CAST({c} AS JSON) ->> '{k}' END)")


@compiles(JsonStr)
def _json_str_sqlite(element: JsonStr, compiler: Any, **kw: Any) -> str:
    (col,) = element.clauses
    c = compiler.process(col, **kw)
    k = element.key
    return (f"(CASE WHEN json_type({c}, '$.\"{k}\"') IN ('text', 'integer', 'real') "
            f"THEN CAST(json_extract({c}, '$.\"{k}\"') AS TEXT) END)")


@compiles(JsonTrue, "postgresql")
def _json_true_pg(element: JsonTrue, compiler: Any, **kw: Any) -> str:
    (col,) = element.clauses
    c = compiler.process(col, **kw)
    return f"(COALESCE(CAST(CAST({c} AS JSON) -> '{element.key}' AS TEXT), '') = 'true')"


@compiles(JsonTrue)
def _json_true_sqlite(element: JsonTrue, compiler: Any, **kw: Any) -> str:
    (col,) = element.clauses
    c = compiler.process(col, **kw)
    return f"(COALESCE(json_type({c}, '$.\"{element.key}\"'), '') = 'true')"


def json_num(column: Any, key: str) -> JsonNum:
    return JsonNum(column, key)


def json_str(column: Any, key: str) -> JsonStr:
    return JsonStr(column, key)


def json_true(column: Any, key: str) -> JsonTrue:
    return JsonTrue(column, key)


class PaddedMs(FunctionElement[str]):
    """An epoch-seconds value as 15 zero-padded digits of milliseconds, so text order = time order.

    Used to take "the value at the earliest event" in one GROUP BY pass:
    MIN(padded_ms(ts) || value), then strip the first 15 characters.
    """

    type = String()
    inherit_cache = True
    name = "padded_ms"


@compiles(PaddedMs, "postgresql")
def _padded_pg(element: PaddedMs, compiler: Any, **kw: Any) -> str:
    (expr,) = element.clauses
    ms = f"CAST(floor(CAST({compiler.process(expr, **kw)} AS DOUBLE PRECISION) * 1000 + 0.5) AS BIGINT)"
    return f"lpad(CAST({ms} AS TEXT), 15, '0')"


@compiles(PaddedMs)
def _padded_sqlite(element: PaddedMs, compiler: Any, **kw: Any) -> str:
    (expr,) = element.clauses
    v = f"(({compiler.process(expr, **kw)}) * 1000 + 0.5)"
    return f"printf('%015d', CAST({v} AS INTEGER))"


PAD = 15


# --- the pieces every KPI family's SQL is written with (kpi/compute.py, kpi/callsql.py, kpi/factsql.py) ---

EPS = 1e-6  # float timestamps: "answered within 20 s" tolerates 1 µs of representation error


def utc_offset(ts: ColumnElement[Any] | Any, win: Window) -> Any:
    """The zone's UTC offset in whole seconds at `ts` (a literal, or an SQL CASE over its changes)."""
    if len(win.transitions) == 1:
        return literal(win.transitions[0][1])
    pairs = zip(win.transitions[1:], win.transitions[:-1], strict=True)
    whens = [(ts < since, prev) for (since, _o), (_s, prev) in pairs]
    return case(*whens, else_=win.transitions[-1][1])


def local_seconds(ts: ColumnElement[Any] | Any, win: Window) -> ColumnElement[Any]:
    """Epoch seconds shifted to local wall-clock seconds."""
    if len(win.transitions) == 1:
        return ts + win.transitions[0][1]
    return ts + utc_offset(ts, win)


def half_hour_of(ts: Any, win: Window) -> ColumnElement[int]:
    """The local half hour (its number since the epoch) `ts` falls in."""
    return floor_div(local_seconds(ts, win), HALF_HOUR)


def count_if(cond: ColumnElement[bool]) -> ColumnElement[Any]:
    """How many rows meet `cond` (a BIGINT sum, 0 for none)."""
    return int_sum(case((cond, 1), else_=0))


def sum_if(cond: ColumnElement[bool], value: Any) -> ColumnElement[Any]:
    """The sum of `value` over the rows that meet `cond` (BIGINT)."""
    return int_sum(case((cond, value), else_=0))


def int_sum(value: Any) -> ColumnElement[Any]:
    """SUM of integers as BIGINT (PostgreSQL would widen SUM(bigint) to NUMERIC)."""
    return cast(func.sum(value), BigInteger)


def dim_cols(mapping: Mapping[str, ColumnElement[Any]], dims: Sequence[str]) -> list[ColumnElement[Any]]:
    """The entity dimensions asked for, labelled d_<name> as the report reads them."""
    return [mapping[d].label(f"d_{d}") for d in dims]
