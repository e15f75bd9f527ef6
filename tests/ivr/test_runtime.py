"""The FastAGI runtime against a scripted caller: prompts, barge-in, lookups, the ACD handoff, events."""

from __future__ import annotations

import asyncio
import datetime as dt
import wave
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ctiserver.acd.config import load_acd_config
from ctiserver.clock import FakeClock
from ctiserver.customers.data import MemoryDataProvider, read_sample_data
from ctiserver.events import Event, Kind
from ctiserver.ivr.runtime import IvrRuntime, QueueRequest
from ctiserver.ivr.settings import IvrSettings
from ctiserver.ivr.tree import load_tree
from ctiserver.ivr.tts import Tts, TtsSettings

from .fakes import NamingTts, ScriptedCaller
from .helpers import SAMPLE_CONFIG, tree_from

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
TREE = load_tree(SAMPLE_CONFIG / "ivr" / "hotline.yaml")
ACD_RULES = load_acd_config(SAMPLE_CONFIG)  # the tier rules the ACD applies to what the IVR hands over


class Acd:
    """Records handoffs; the agent answers, talks, and hangs up first (so the rating follows)."""

    def __init__(self, agent: str = "1002", fail: bool = False) -> None:
        self.requests: list[QueueRequest] = []
        self.agent = agent
        self.fail = fail

    async def __call__(self, chan: Any, req: QueueRequest) -> str:
        self.requests.append(req)
        if self.fail:
            raise RuntimeError("ACD unavailable")
        return self.agent


def runtime(tts: Any = None, acd: Acd | None = None, data: Any = None, **settings: Any
            ) -> tuple[IvrRuntime, list[Event], Acd]:
    events: list[Event] = []
    acd = acd or Acd()
    rt = IvrRuntime({"hotline": TREE}, data or MemoryDataProvider(read_sample_data(SAMPLE_CONFIG, NOW)),
                    tts or NamingTts(), events.append, acd, IvrSettings(**settings), FakeClock(NOW))
    return rt, events, acd


def kinds(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e.kind == kind]


async def test_bill_query_then_agent_then_rating() -> None:
    tts = NamingTts()
    rt, events, acd = runtime(tts)
    # barge-in with 1 during the outage notice (picks Mandarin), 1 = bill, 0 = agent, then rate 5
    caller = ScriptedCaller(["!1", "1", "0", "5"])
    await rt.handle(caller)
    said = [t for t, _ in tts.said]
    assert said[0].startswith("尊敬的客户，您所在的城东区因10千伏线路故障停电，预计今天13点恢复供电")
    assert not any(t.startswith("欢迎致电95598") for t in said)  # skipped by the barge-in
    assert any("李秀英，您的户号9100000002，当前欠费金额为86.50元，缴费截止日期为2026-12-15" in t for t in said)
    assert said[-1] == "感谢您的评价，再见。"
    assert caller.commands[0] == "GET VARIABLE CHANNEL(linkedid)" and caller.commands[1] == "ANSWER"
    assert caller.commands[-1] == "HANGUP"
    assert all(c.endswith('"0123456789*#"') or c.endswith('""') for c in caller.commands if c.startswith("STREAM"))
    [req] = acd.requests
    # the tree names no tier: "" lets the ACD's tier rules classify the customer record
    assert (req.call_id, req.skill, req.tier, req.caller) == ("1700000000.42", "billing", "", "13800000002")
    assert ACD_RULES.classify(req.customer) == "normal"
    assert req.customer is not None and req.customer["account"] == "9100000002"
    assert req.ivr_path == ("who", "outage_check", "outage_branch", "outage_notice", "language", "main",
                            "bill_identity", "bill_query", "bill_read", "to_agent")
    assert all(e.call_id == "1700000000.42" for e in events)
    assert kinds(events, Kind.IVR_START)[0].data["version"] == TREE.version
    assert [e.data["digits"] for e in kinds(events, Kind.IVR_DTMF)] == ["1", "1", "0", "5"]
    [end] = kinds(events, Kind.IVR_END)
    assert end.data["outcome"] == "agent" and end.queue == "billing"
    [rating] = kinds(events, Kind.SURVEY_RATING)
    assert rating.data["rating"] == 5 and rating.agent_id == "1002"
    assert rt.active == 0 and rt.calls == 1


async def test_vip_unknown_and_hangup_mid_menu() -> None:
    rt, events, acd = runtime()
    caller = ScriptedCaller([None], headers_in={"agi_callerid": "unknown"}, linkedid=None)
    await rt.handle(caller)  # no exception: a hangup is a normal end
    assert events[0].call_id == "1700000000.43"  # fallback to agi_uniqueid
    [end] = kinds(events, Kind.IVR_END)
    assert end.data == {"outcome": "hangup", "node": "language"}
    assert not acd.requests
    # a VIP calling from a bound number goes to the agent with the vip tier
    rt, events, acd = runtime()
    await rt.handle(ScriptedCaller(["1", "0"], headers_in={"agi_callerid": "+86 13800000009"}))
    assert acd.requests[0].tier == "" and ACD_RULES.classify(acd.requests[0].customer) == "vip"


async def test_pin_identity_for_a_stranger_and_secret_digits() -> None:
    rt, events, acd = runtime()
    keys = ["1", "1", *"9100000003", "#", *"111111", "#", "0"]
    await rt.handle(ScriptedCaller(keys, headers_in={"agi_callerid": "02100000000"}))
    assert [e.data["digits"] for e in kinds(events, Kind.IVR_DTMF)] == ["1", "1", "9100000003", "******", "0"]
    nodes = [e.data["node"] for e in kinds(events, Kind.IVR_NODE)]
    assert nodes[-4:] == ["bill_query", "bill_read", "to_agent", "rating"]
    assert acd.requests[0].tier == "" and acd.requests[0].customer is None
    assert ACD_RULES.classify(None) == "normal"


class SlowData:
    async def lookup(self, provider: str, args: Any, now: float) -> dict[str, Any] | None:
        await asyncio.sleep(5)
        return None


async def test_slow_lookup_takes_on_error_path() -> None:
    rt, events, _acd = runtime(data=SlowData(), lookup_timeout_s=0.05)
    await rt.handle(ScriptedCaller([None]))
    errors = [e for e in kinds(events, Kind.IVR_NODE) if e.data["node_kind"] == "lookup_error"]
    assert "customer_by_caller took longer than 0.05s" in errors[0].data["error"]
    assert [e.data["node"] for e in kinds(events, Kind.IVR_NODE)][-1] == "language"


async def test_handoff_failure_logs_error_and_raises() -> None:
    rt, events, _acd = runtime(acd=Acd(fail=True))
    with pytest.raises(RuntimeError, match="ACD unavailable"):
        await rt.handle(ScriptedCaller(["1", "0"]))
    ends = kinds(events, Kind.IVR_END)
    assert [e.data["outcome"] for e in ends] == ["agent"]  # logged before the handoff; no second end
    assert rt.active == 0


async def test_failure_before_queue_logs_ivr_end_error() -> None:
    class Broken(ScriptedCaller):
        async def execute(self, command: str) -> Any:
            if command.startswith("WAIT FOR DIGIT"):
                raise TimeoutError("AGI WAIT got no reply within 30s")
            return await super().execute(command)

    rt, events, _ = runtime()
    with pytest.raises(TimeoutError):
        await rt.handle(Broken(["1"]))
    [end] = kinds(events, Kind.IVR_END)
    assert end.data["outcome"] == "error" and "TimeoutError" in end.data["error"]


async def test_missing_sound_file_does_not_stop_the_call() -> None:
    lt = tree_from("""
    start: p
    nodes:
      p: {kind: play, prompt: {file: custom/hello}, next: m}
      m: {kind: menu, prompt: "请选择", options: {"1": z}}
      z: {kind: hangup}
    """, name="custom")
    events: list[Event] = []
    rt = IvrRuntime({"custom": lt}, MemoryDataProvider(read_sample_data(SAMPLE_CONFIG, NOW)), NamingTts(),
                    events.append, Acd(), IvrSettings(default_tree="custom"), FakeClock(NOW))
    caller = ScriptedCaller(["1"], missing_sounds={"custom/hello"})
    await rt.handle(caller)
    assert "CHANNEL STATUS" in caller.commands
    assert kinds(events, Kind.IVR_END)[0].data["outcome"] == "self_service"


async def test_tree_chosen_by_agi_path() -> None:
    other = tree_from("start: z\nnodes:\n  z: {kind: hangup, prompt: bye}\n", name="english")
    events: list[Event] = []
    rt = IvrRuntime({"hotline": TREE, "english": other}, MemoryDataProvider(read_sample_data(SAMPLE_CONFIG, NOW)),
                    NamingTts(), events.append, Acd(), IvrSettings(), FakeClock(NOW))
    await rt.handle(ScriptedCaller([], path_in="ivr/english"))
    assert events[0].data["tree"] == "english"


async def test_record_complaint_command() -> None:
    rt, events, _ = runtime(recordings_dir="/var/spool/asterisk/monitor/")
    caller = ScriptedCaller(["1", "4", "1"])
    await rt.handle(caller)
    [rec] = [c for c in caller.commands if c.startswith("RECORD FILE")]
    assert rec == ('RECORD FILE /var/spool/asterisk/monitor/cti-complaint-1700000000.42-complaint_record wav "#" '
                   "120000 0 BEEP s=5")
    [end] = kinds(events, Kind.IVR_END)
    assert end.data["outcome"] == "self_service"
    assert end.data["recordings"]["complaint"].endswith("1700000000.42-complaint_record.wav")


async def test_arrears_prompt_is_rendered_to_a_real_8k_file(tmp_path: Path) -> None:
    """The acceptance path with real TTS: the arrears figure is spoken from an 8 kHz mono 16-bit file."""
    tts = Tts(TtsSettings(workers=1), tmp_path / "cti")
    try:
        rt, _events, acd = runtime(tts)
        caller = ScriptedCaller(["!1", "1", "0"])
        await rt.handle(caller)
        assert acd.requests[0].skill == "billing"
        text = next(t for t in _texts(TREE, "bill_read", {"name": "李秀英", "account": "9100000002",
                                                          "arrears": 86.5, "due_date": "2026-12-15"}))
        name = tts.cached(text, "zh")
        assert name is not None and f"STREAM FILE {name} \"0123456789*#\"" in caller.commands
        with wave.open(str(tmp_path / "cti" / f"{name[4:]}.wav"), "rb") as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
            assert w.getnframes() > 8000 * 3  # a long sentence, several seconds
    finally:
        await tts.close()


def _texts(lt: Any, node: str, account: dict[str, Any]) -> list[str]:
    from ctiserver.ivr.template import render

    prompt = lt.tree.nodes[node].prompt
    return [render(prompt.text_for("zh"), {"account": account})]


async def test_handoff_to_an_acd_runtime() -> None:
    from types import SimpleNamespace

    from ctiserver.ivr.runtime import handoff_to

    class FakeAcd:
        def __init__(self) -> None:
            self.calls: list[tuple[Any, ...]] = []
            self.langs: list[tuple[str, bool]] = []

        async def serve(self, chan: Any, call_id: str, skill: str, tier: str | None, caller: str,
                        customer: dict[str, Any] | None = None, *, lang: str = "",
                        route_by_language: bool = False) -> Any:
            self.calls.append((call_id, skill, tier, caller, customer))
            self.langs.append((lang, route_by_language))
            return SimpleNamespace(outcome="answered", agent_id="1007")  # as AcdRuntime's Served

    acd = FakeAcd()
    events: list[Event] = []
    rt = IvrRuntime({"hotline": TREE}, MemoryDataProvider(read_sample_data(SAMPLE_CONFIG, NOW)), NamingTts(),
                    events.append, handoff_to(acd), IvrSettings(), FakeClock(NOW))
    await rt.handle(ScriptedCaller(["1", "0", "3"], headers_in={"agi_callerid": "13800000013"}))
    [(call_id, skill, tier, caller, customer)] = acd.calls
    assert (call_id, skill, tier, caller) == ("1700000000.42", "billing", None, "13800000013")
    assert acd.langs == [("zh", True)]  # the caller's language goes along: the ACD may route on it
    assert ACD_RULES.classify(customer) == "vip"  # 马超: a government office
    assert customer is not None and customer["name"] == "马超"
    [rating] = kinds(events, Kind.SURVEY_RATING)
    assert rating.agent_id == "1007" and rating.data["rating"] == 3
    assert "planned_notice" in [e.data["node"] for e in kinds(events, Kind.IVR_NODE)]

    # pressing 2 at the language menu: the request says English
    await rt.handle(ScriptedCaller(["2", "0", "3"], headers_in={"agi_callerid": "13800000013"}))
    assert acd.langs[1] == ("en", True)
