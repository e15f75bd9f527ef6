"""Work-order deadlines: one table (workorders.yaml) for the desktop, the KPI report and the callbacks;
the 95598 stages (acceptance -> dispatch -> reply in 2+1 working days for an ordinary order) with a
reminder at the warning stage and an escalation when overdue; a supervisor's reopen.

The engine is pure (fake clock values); the watch sends what it returns, once, as events.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ctiserver.app.cli import main
from ctiserver.clock import FakeClock
from ctiserver.events import Kind
from ctiserver.kpi.config import load_kpi_config
from ctiserver.outbound.model import load_outbound_config
from ctiserver.web.config import load_desktop_config
from ctiserver.web.workorder_watch import WorkorderWatch
from ctiserver.web.ws import SUPERVISOR, Hub, agent_stream
from ctiserver.workorders.deadlines import Alert, OrderClock, WorkorderTable, alerts, load_workorder_table

from .conftest import login, make_desk

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"
SH = ZoneInfo("Asia/Shanghai")


def at(m: int, d: int, h: int = 16, mi: int = 0, s: float = 0.0) -> float:
    return dt.datetime(2026, m, d, h, mi, tzinfo=SH).timestamp() + s


TABLE = load_workorder_table(CONFIG)


def test_one_table_read_by_the_desktop_the_kpi_report_and_the_callbacks() -> None:
    assert TABLE == WorkorderTable(calendar=TABLE.calendar)  # the shipped file is the built-in sample
    assert load_desktop_config(CONFIG).workorders == TABLE
    assert load_kpi_config(CONFIG).deadlines == TABLE
    assert load_outbound_config(CONFIG).workorders == TABLE
    # the disagreement this replaced: desktop fault_repair 24 h vs kpi.yaml 2 h
    assert TABLE.deadlines("fault_repair", at(11, 23, 9)).due_ts == at(11, 24, 9)


def test_an_ordinary_order_across_national_day_and_the_make_up_saturday() -> None:
    # accepted Wednesday 09-30 16:00: 10-01..10-07 off, Thursday 10-08 and Friday 10-09 are working days 1 and 2,
    # Saturday 10-10 is worked in lieu: working day 3
    d = TABLE.deadlines("inquiry", at(9, 30))
    assert d.dispatch_due_ts == at(9, 30, 18)  # dispatched within 2 hours (hours ignore the calendar)
    assert (d.warn_ts, d.due_ts) == (at(10, 9), at(10, 10))  # reminder after 2 working days, due after 2+1
    order = OrderClock(1, "open", d.dispatch_warn_ts, d.dispatch_due_ts, d.warn_ts, d.due_ts)

    assert alerts([order], at(9, 30, 17)) == ([], at(9, 30, 18))
    found, nxt = alerts([order], at(9, 30, 18, 0, 1))  # not dispatched in time: escalated
    assert found == [Alert(1, "dispatch", "escalation", at(9, 30, 18))] and nxt == at(10, 9)
    dispatched = OrderClock(1, "dispatched", d.dispatch_warn_ts, d.dispatch_due_ts, d.warn_ts, d.due_ts,
                            frozenset({"dispatch.escalation"}))
    assert alerts([dispatched], at(10, 8, 23)) == ([], at(10, 9))  # the holidays pass quietly
    found, nxt = alerts([dispatched], at(10, 9))
    assert found == [Alert(1, "reply", "reminder", at(10, 10))] and nxt == at(10, 10)
    reminded = OrderClock(1, "dispatched", d.dispatch_warn_ts, d.dispatch_due_ts, d.warn_ts, d.due_ts,
                          frozenset({"dispatch.escalation", "reply.reminder"}))
    assert alerts([reminded], at(10, 10)) == ([], at(10, 10))  # due at 16:00 Saturday: overdue after it
    assert alerts([reminded], at(10, 10, 16, 0, 1))[0] == [Alert(1, "reply", "escalation", at(10, 10))]
    done = OrderClock(1, "resolved", d.dispatch_warn_ts, d.dispatch_due_ts, d.warn_ts, d.due_ts)
    assert alerts([done], at(10, 20)) == ([], None)  # replied: nothing more


def test_a_late_order_gets_the_escalation_only_and_fault_repairs_count_minutes() -> None:
    d = TABLE.deadlines("fault_repair", at(10, 1, 3))  # a holiday night: fault repair runs around the clock
    assert (d.dispatch_warn_ts, d.dispatch_due_ts) == (at(10, 1, 3, 5), at(10, 1, 3, 10))
    assert (d.warn_ts, d.due_ts) == (at(10, 1, 23), at(10, 2, 3))
    order = OrderClock(7, "dispatched", d.dispatch_warn_ts, d.dispatch_due_ts, d.warn_ts, d.due_ts)
    assert alerts([order], at(10, 3)) == ([Alert(7, "reply", "escalation", at(10, 2, 3))], None)
    # the callback (回访) of an order closed on Friday 10-09 is due on the make-up Saturday
    assert TABLE.callback_due("complaint", at(10, 9, 11)) == at(10, 10, 11)


class RecordingHub(Hub):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    def publish(self, stream: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
        self.sent.append((stream, type_, data))
        return super().publish(stream, type_, data)


WO = {"call_id": "c9", "incoming_number": "13800138000", "category": "inquiry", "customer_name": "王小明",
      "content": "电价咨询", "customer_account": "3100012345"}


async def test_the_watch_reminds_then_escalates_once_each_and_a_reopen_starts_again(tmp_path: Path) -> None:
    clock = FakeClock(at(9, 30))
    desk = await make_desk(tmp_path, config=load_desktop_config(CONFIG), clock=clock)
    client: TestClient[Any, Any] = TestClient(TestServer(desk.app))
    await client.start_server()
    try:
        agent = await login(client, "1001")
        wo = await (await client.post("/api/workorders", headers=agent, json=WO)).json()
        assert (wo["warn_ts"], wo["due_ts"], wo["dispatch_due_ts"]) == (at(10, 9), at(10, 10), at(9, 30, 18))
        url = f"/api/workorders/{wo['id']}/status"
        r = await client.post(url, headers=agent, json={"status": "dispatched", "unit": "marketing"})
        assert r.status == 200

        hub = RecordingHub(clock)
        watch = WorkorderWatch(desk.engine, hub, desk.events.append, clock)

        def alerts_sent() -> list[tuple[str, str, float]]:
            return [(e.data["action"], e.data["stage"], e.ts) for e in desk.events
                    if e.kind == Kind.WORKORDER and e.data["action"] in ("reminder", "escalation")]

        assert await watch.check() == at(10, 9)
        clock.set(at(10, 8, 23, 59))  # the National Day holidays do not count
        assert await watch.check() == at(10, 9) and alerts_sent() == []
        clock.set(at(10, 9))
        assert await watch.check() == at(10, 10)
        assert alerts_sent() == [("reminder", "reply", at(10, 9))]
        assert hub.sent[-1][:2] == (agent_stream("1001"), "workorder_alert")  # to the agent who took it
        assert await watch.check() == at(10, 10)  # nothing twice
        clock.set(at(10, 10, 16, 0, 1))  # the make-up Saturday is a working day: overdue now
        assert await watch.check() is None
        assert alerts_sent()[1:] == [("escalation", "reply", at(10, 10, 16, 0, 1))]
        assert [s for s, t, _ in hub.sent[-2:]] == [agent_stream("1001"), SUPERVISOR]
        # a restarted server (a new watch on the same database) sends nothing again
        again = WorkorderWatch(desk.engine, RecordingHub(clock), desk.events.append, clock)
        await again.check()
        assert len(alerts_sent()) == 2

        # replied, closed, and the customer is not satisfied: a supervisor reopens it, deadlines start again
        agent = await login(client, "1001")  # a new shift
        for status in ("resolved", "closed"):
            assert (await client.post(url, headers=agent, json={"status": status})).status == 200
        supervisor = await login(client, "2001")
        r = await client.post(url, headers=supervisor, json={"status": "reopened", "note": "客户对答复不满意"})
        body = await r.json()
        assert r.status == 200 and body["reopen_count"] == 1
        now = clock.now()  # Saturday 10-10 (a make-up working day) 16:00: due 3 working days later, Wednesday
        assert (body["warn_ts"], body["due_ts"]) == (now + 3 * 86400, now + 4 * 86400)
        assert await watch.check() == body["dispatch_due_ts"]  # its alerts start afresh
    finally:
        await client.close()
        await desk.engine.dispose()


@pytest.mark.parametrize(("file", "old", "new", "words"), [
    ("desktop.yaml", "units:", "workorder_sla:\n  fault_repair: {hours: 24}\nunits:",
     "desktop.yaml:{line}: workorder_sla: work-order deadlines are defined once, in workorders.yaml"),
    ("kpi.yaml", "  reopened_actions: [reopened]\n", "  due_h: {default: 24}\n",
     "work-order deadlines are defined once, in workorders.yaml"),
    ("outbound.yaml", "  mode: agent\n", "  mode: agent\n  due_working_days: 1\n",
     "callback deadlines are defined once, in workorders.yaml"),
    ("workorders.yaml", "    reply: {warn: {working_days: 2}, due: {working_days: 3}}",
     "    reply: {warn: {working_days: 3}, due: {working_days: 2}}", "warn must come before due"),
    ("workorders.yaml", "  inquiry:", "  gossip:",
     "workorders.yaml names categories not in disposition_categories: ['gossip']"),
    ("workorders.yaml", "due: {hours: 24}", "due: {hours: 24, working_days: 1}",
     "give exactly one of minutes, hours or working_days"),
])
def test_check_rejects_a_second_deadline_table(tmp_path: Path, capsys: pytest.CaptureFixture[str], file: str,
                                               old: str, new: str, words: str) -> None:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    path = config / file
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    words = words.format(line=text[:text.index(old)].count("\n") + 1)  # where the new key lands
    assert main(["check", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err, err
