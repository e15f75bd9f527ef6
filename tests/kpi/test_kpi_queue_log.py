"""`ctiserver export queue-log`: the golden day's ACD events in Asterisk's queue_log format, read back by a
small parser that follows the layout Asterisk 22's app_queue writes (epoch|callid|queue|agent|event|data...;
tests/kpi/test_kpi_queue_log_asterisk.py holds it against a queue_log written by a real Queue())."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ctiserver.events import Event, Kind
from ctiserver.kpi.queuelog import queue_log

from .test_kpi_cli import REPO_CONFIG, run, store  # noqa: F401  (the fixture)
from .test_kpi_golden import D0, golden_day

# app_queue's queue_log events and their data fields, as its ast_queue_log() calls write them (Asterisk 22)
FIELDS = {
    "ENTERQUEUE": ("url", "callerid", "position"),
    "CONNECT": ("holdtime", "bridgedchanneluniqueid", "ringtime"),  # ring time in whole seconds
    "COMPLETECALLER": ("holdtime", "calltime", "origposition"),
    "COMPLETEAGENT": ("holdtime", "calltime", "origposition"),
    "ABANDON": ("position", "origposition", "waittime"),
    "EXITWITHTIMEOUT": ("position", "origposition", "waittime"),
    "EXITWITHKEY": ("key", "position", "origposition", "waittime"),
    "RINGNOANSWER": ("ringtime_ms",),
    "RINGCANCELED": ("ringtime_ms",),
    "BLINDTRANSFER": ("extension", "context", "holdtime", "calltime", "origposition"),
    "ATTENDEDTRANSFER": ("method", "data", "holdtime", "calltime", "origposition"),  # method BRIDGE or APP
    "ADDMEMBER": ("paused",), "REMOVEMEMBER": ("",),  # paused: "PAUSED" or ""
    "PAUSE": ("reason",), "UNPAUSE": ("reason",), "PAUSEALL": ("reason",), "UNPAUSEALL": ("reason",),
}
INTS = {"holdtime", "ringtime", "ringtime_ms", "calltime", "waittime", "position", "origposition"}


def parse(line: str) -> dict[str, Any]:
    """One queue_log line -> {time, callid, queue, agent, event, <field>: value}; raises on a bad line."""
    parts = line.rstrip("\n").split("|")
    assert len(parts) >= 5, line
    ts, callid, queue, agent, event, *data = parts
    names = FIELDS[event]
    assert len(data) == len(names), (event, data)
    row: dict[str, Any] = {"time": int(ts), "callid": callid, "queue": queue, "agent": agent, "event": event}
    for name, value in zip(names, data, strict=True):
        row[name] = int(value) if name in INTS else value
    return row


def test_the_golden_day_as_queue_log() -> None:
    rows = [parse(line) for line in queue_log(golden_day())]
    by_call: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_call.setdefault(r["callid"], []).append(r)
    assert [r["event"] for r in by_call["C1"]] == ["ENTERQUEUE", "CONNECT", "COMPLETECALLER"]
    c1 = by_call["C1"]
    assert c1[0]["queue"] == "billing" and c1[1]["agent"] == "Agent/a1"
    assert c1[1]["holdtime"] == 10 and c1[1]["ringtime"] == 8  # wait 10 s, rang 8 s
    assert c1[2]["calltime"] == 180  # talk 170 + hold 10
    assert by_call["C3"][-1]["event"] == "ABANDON" and by_call["C3"][-1]["waittime"] == 3
    assert by_call["C12"][-1]["event"] == "EXITWITHTIMEOUT" and by_call["C12"][-1]["waittime"] == 120
    c4 = by_call["C4"]
    assert [r["event"] for r in c4] == ["ENTERQUEUE", "RINGNOANSWER", "CONNECT", "COMPLETECALLER"]
    assert (c4[1]["agent"], c4[1]["ringtime_ms"], c4[2]["holdtime"], c4[2]["ringtime"]) == ("Agent/a1", 12000, 20, 6)
    # a transfer ends the stay (no COMPLETE line after it); back in a queue, a new stay with its own hold time
    c5 = by_call["C5"]
    assert [r["event"] for r in c5] == ["ENTERQUEUE", "CONNECT", "BLINDTRANSFER", "ENTERQUEUE", "CONNECT",
                                        "COMPLETECALLER"]
    assert (c5[2]["extension"], c5[2]["holdtime"], c5[2]["calltime"]) == ("queue:tech", 35, 120)
    assert (c5[3]["queue"], c5[4]["holdtime"], c5[5]["holdtime"], c5[5]["calltime"]) == ("tech", 10, 10, 240)
    assert all(r["time"] >= int(D0) - 86400 for r in rows)
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)


def test_agent_states_become_members_and_pauses() -> None:
    def st(t: float, state: str, prev: str, reason: str | None = None, prev_reason: str | None = None) -> Event:
        return Event(Kind.AGENT_STATE, D0 + t, None, "1001",
                     data={"state": state, "previous": prev, "reason": reason, "previous_reason": prev_reason})

    lines = list(queue_log([st(0, "not_ready", "logged_out", "login"), st(10, "available", "not_ready", None, "login"),
                            st(20, "not_ready", "available", "lunch"),
                            st(25, "not_ready", "not_ready", "meeting", "lunch"),  # another reason
                            st(30, "available", "not_ready", None, "meeting"), st(40, "logged_out", "available")]))
    rows = [parse(line) for line in lines]
    # as Asterisk logs QueueAdd(Paused) / QueuePause without a queue / QueueRemove over AMI
    assert [(r["event"], r["callid"], r.get("reason", r.get("paused"))) for r in rows] == [
        ("ADDMEMBER", "MANAGER", "PAUSED"), ("UNPAUSEALL", "NONE", "login"), ("PAUSEALL", "NONE", "lunch"),
        ("PAUSEALL", "NONE", "meeting"), ("UNPAUSEALL", "NONE", "meeting"), ("REMOVEMEMBER", "MANAGER", None)]
    assert {r["agent"] for r in rows} == {"Agent/1001"} and {r["queue"] for r in rows} == {"NONE"}


def test_export_command_writes_the_file(store: str, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "queue_log"
    assert run(["export", "queue-log", "--config", str(REPO_CONFIG), "--url", store, "--from", "2026-11-23",
                "--to", "2026-11-24", "-o", str(out)]) == 0
    rows = [parse(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sum(r["event"] == "ENTERQUEUE" for r in rows) >= 10
    assert {r["event"] for r in rows} >= {"ENTERQUEUE", "CONNECT", "COMPLETECALLER", "ABANDON", "EXITWITHTIMEOUT"}
