"""The pure IVR walker: every node kind, retries, exhaustion, the agent key, barge-in, templates, hours sets."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from ctiserver.calendar import Calendar, Hours
from ctiserver.events import Kind
from ctiserver.ivr.tree import load_tree
from ctiserver.ivr.walker import (
    Collect,
    Digits,
    Hangup,
    HungUp,
    IllegalInput,
    IvrWalker,
    Lookup,
    LookupResult,
    PlayFile,
    Queue,
    Queued,
    Record,
    Recorded,
    Say,
    Timeout,
)

from .helpers import SAMPLE_CONFIG, events, nodes, of, tree_from

SH = ZoneInfo("Asia/Shanghai")


def at(y: int, mo: int, d: int, h: int, mi: int = 0) -> float:
    return dt.datetime(y, mo, d, h, mi, tzinfo=SH).timestamp()


MENU = """
start: main
agent: {key: "0", skill: billing}
nodes:
  main:
    kind: menu
    prompt: {zh: "主菜单", en: "Main menu"}
    options:
      "1": one
      "2": {next: main, set: {lang: en}}
    no_input: "没听到"
    no_match: "输入有误"
    retries: 2
    on_exhausted: bye
  one:
    kind: hangup
    prompt: "一"
  bye:
    kind: hangup
    prompt: "再见"
    outcome: hangup
"""


OFFICE = Calendar(holidays=[dt.date(2026, 10, 5)], workdays=[dt.date(2026, 10, 10)],
                  hours={"office": Hours(on_working_days=["09:00-12:00"])})


def walker(text: str, now: float = 1_700_000_000.0, **data: object) -> IvrWalker:
    return IvrWalker(tree_from(text), {"call_id": "L1", "caller": "13800000001", **data}, now, OFFICE)


def test_menu_prompts_then_waits_for_one_key() -> None:
    w = walker(MENU)
    out = w.start()
    assert events(out, Kind.IVR_START)[0].data == {"tree": "t", "version": w.version, "caller": "13800000001"}
    assert of(out, Say) == [Say("主菜单", "zh", True)]
    assert out[-1] == Collect(1, 6.0, "")
    out = w.on_input(Digits("1"))
    assert events(out, Kind.IVR_DTMF)[0].data == {"node": "main", "digits": "1"}
    assert of(out, Say) == [Say("一", "zh", False)]
    assert isinstance(out[-1], Hangup)
    assert events(out, Kind.IVR_END)[0].data["outcome"] == "self_service"
    assert all(e.call_id == "L1" for e in events(out))


def test_no_input_then_no_match_then_exhausted() -> None:
    w = walker(MENU)
    w.start()
    out = w.on_input(Timeout())
    assert [s.text for s in of(out, Say)] == ["没听到", "主菜单"]
    assert isinstance(out[-1], Collect)
    out = w.on_input(Digits("7"))
    assert [s.text for s in of(out, Say)] == ["输入有误", "主菜单"]
    out = w.on_input(Digits("9"))  # third failure: retries (2) used up
    assert nodes(out) == ["bye"]
    assert [e.data.get("node_kind") for e in events(out, Kind.IVR_NODE)] == ["exhausted", "hangup"]
    assert events(out, Kind.IVR_END)[0].data["outcome"] == "hangup"
    assert isinstance(out[-1], Hangup)


def test_agent_key_from_any_menu_carries_tier() -> None:
    w = walker(MENU)
    w.start()
    w.data["customer"] = {"found": True, "tier": "vip"}
    out = w.on_input(Digits("0"))
    assert out[-1] == Queue("billing", "vip")
    end = events(out, Kind.IVR_END)[0]
    assert end.data["outcome"] == "agent" and end.queue == "billing" and end.tier == "vip"
    assert w.on_input(Queued("")) == []  # no after-node: the walk is over
    assert w.state == "done"


def test_unknown_caller_is_normal_tier() -> None:
    w = walker(MENU)
    w.start()
    assert w.on_input(Digits("0"))[-1] == Queue("billing", "normal")


def test_agent_key_can_be_disabled_per_node() -> None:
    w = walker(MENU.replace("    retries: 2\n", "    retries: 2\n    agent_key: false\n"))
    w.start()
    out = w.on_input(Digits("0"))
    assert [s.text for s in of(out, Say)] == ["输入有误", "主菜单"]
    assert not of(out, Queue)


def test_explicit_option_wins_over_agent_key() -> None:
    w = walker(MENU.replace('"1": one', '"1": one\n      "0": bye'))
    w.start()
    assert nodes(w.on_input(Digits("0"))) == ["bye"]


@pytest.mark.parametrize("keys", ["*", "#", "A", "d", "", "   ", "1" * 500, "\x00", "１"])
def test_odd_keys_are_no_match_or_no_input(keys: str) -> None:
    w = walker(MENU)
    w.start()
    out = w.on_input(Digits(keys))
    assert w.state == "keys"
    texts = [s.text for s in of(out, Say)]
    assert texts[-1] == "主菜单" and texts[0] in ("输入有误", "没听到")
    for ev in events(out, Kind.IVR_DTMF):
        assert len(ev.data["digits"]) <= 64


def test_language_choice_switches_prompts() -> None:
    w = walker(MENU)
    w.start()
    out = w.on_input(Digits("2"))
    assert of(out, Say) == [Say("Main menu", "en", True)]
    out = w.on_input(Digits("5"))
    # `no_match` has only `text`: used for every language
    assert [s.lang for s in of(out, Say)] == ["en", "en"]


def test_prompts_before_a_menu_allow_barge_in_but_hangup_notice_does_not() -> None:
    w = walker("""
    start: hello
    nodes:
      hello: {kind: play, prompt: "您好", next: m}
      legal: {kind: play, prompt: "本通话将被录音", next: m, barge_in: false}
      m: {kind: menu, prompt: "请选择", options: {"1": legal}}
    """)
    out = w.start()
    assert of(out, Say) == [Say("您好", "zh", True), Say("请选择", "zh", True)]
    out = w.on_input(Digits("1"))
    assert of(out, Say) == [Say("本通话将被录音", "zh", False), Say("请选择", "zh", True)]


COLLECT = """
start: acct
nodes:
  acct:
    kind: collect
    prompt: "请输入户号"
    var: account
    min_digits: 4
    max_digits: 6
    pattern: "9[0-9]+"
    retries: 1
    no_match: "户号有误"
    next: pin
  pin:
    kind: collect
    prompt: "请输入密码"
    var: pin
    min_digits: 4
    max_digits: 4
    secret: true
    next: done
  done: {kind: hangup, prompt: "户号{input.account}"}
"""


def test_collect_validates_length_and_pattern() -> None:
    w = walker(COLLECT)
    assert w.start()[-1] == Collect(6, 6.0, "#")
    out = w.on_input(Digits("1234"))  # right length, fails the pattern
    assert [s.text for s in of(out, Say)] == ["户号有误", "请输入户号"]
    out = w.on_input(Digits("9123"))
    assert nodes(out) == ["pin"] and w.data["input"]["account"] == "9123"
    out = w.on_input(Digits("4321"))
    assert events(out, Kind.IVR_DTMF)[0].data["digits"] == "****"  # a PIN is never logged
    assert of(out, Say) == [Say("户号9123", "zh", False)]


def test_collect_rejects_keys_outside_digits_and_too_long() -> None:
    w = walker(COLLECT)
    w.start()
    w.on_input(Digits("9*12"))
    out = w.on_input(Digits("91234567"))
    assert nodes(out) == [] and events(out, Kind.IVR_END)[0].data["outcome"] == "agent"


def test_collect_agent_key_only_when_not_a_valid_entry() -> None:
    w = walker(COLLECT)
    w.start()
    assert isinstance(w.on_input(Digits("0"))[-1], Queue)


LOOKUP = """
start: who
nodes:
  who:
    kind: lookup
    provider: customer_by_caller
    args: {number: "{caller}"}
    next: bill
    on_not_found: stranger
    on_error: oops
  bill:
    kind: lookup
    provider: account
    args: {account: "{customer.account}"}
    next: read
    on_unverified: stranger
  read: {kind: hangup, prompt: "{customer.name}您好，您的欠费金额为{account.arrears:.2f}元，截止{account.due_date}"}
  stranger: {kind: hangup, prompt: "未找到"}
  oops: {kind: hangup, prompt: "系统忙", outcome: hangup}
"""


def test_lookup_template_and_identity_by_bound_number() -> None:
    w = walker(LOOKUP)
    out = w.start()
    assert out[-1] == Lookup("customer_by_caller", {"number": "13800000001"})
    out = w.on_input(LookupResult({"account": "9100000001", "name": "张三", "tier": "vip", "verified": True}))
    assert out[-1] == Lookup("account", {"account": "9100000001"})
    assert w.data["identity"]["method"] == "caller"
    out = w.on_input(LookupResult({"arrears": 123.4, "due_date": "2026-11-30"}))
    assert of(out, Say)[0].text == "张三您好，您的欠费金额为123.40元，截止2026-11-30"


def test_account_query_without_identity_goes_to_on_unverified() -> None:
    w = walker(LOOKUP)
    w.start()
    out = w.on_input(LookupResult({"account": "9100000001", "name": "张三", "verified": False}))
    assert nodes(out) == ["bill", "stranger"]
    assert not of(out, Lookup)


def test_lookup_not_found_and_error() -> None:
    w = walker(LOOKUP)
    w.start()
    assert nodes(w.on_input(LookupResult(None))) == ["stranger"]
    w = walker(LOOKUP)
    w.start()
    assert nodes(w.on_input(LookupResult({"found": False}))) == ["stranger"]
    w = walker(LOOKUP)
    w.start()
    out = w.on_input(LookupResult(error="database down"))
    assert nodes(out) == ["oops"]
    assert events(out, Kind.IVR_NODE)[0].data["node_kind"] == "lookup_error"


def test_lookup_with_an_empty_argument_is_not_asked() -> None:
    w = walker(LOOKUP, caller="")
    out = w.start()
    assert not of(out, Lookup) and nodes(out) == ["who", "stranger"]


def test_lookup_error_without_on_error_goes_to_agent() -> None:
    w = walker(LOOKUP.replace("    on_error: oops\n", ""))
    w.start()
    assert isinstance(w.on_input(LookupResult(error="timeout"))[-1], Queue)


BRANCH = """
start: b
nodes:
  b:
    kind: branch
    cases:
      - when: {field: customer.tier, op: eq, value: vip}
        next: vip
      - when: [{field: account.arrears, op: gt, value: 100}, {field: customer.important, op: false}]
        next: debt
      - when: {hours: office, state: open}
        next: open
      - when: {hours: office, state: holiday}
        next: holiday
    default: closed
  vip: {kind: hangup}
  debt: {kind: hangup}
  open: {kind: hangup}
  holiday: {kind: hangup}
  closed: {kind: hangup}
"""


@pytest.mark.parametrize(("data", "now", "expect"), [
    ({"customer": {"tier": "vip"}}, at(2026, 11, 23, 20), "vip"),
    ({"account": {"arrears": "250.5"}, "customer": {"important": False}}, at(2026, 11, 23, 20), "debt"),
    ({"account": {"arrears": 50}}, at(2026, 11, 23, 9), "open"),  # Monday 09:00
    ({}, at(2026, 11, 23, 13), "closed"),  # Monday 13:00
    ({}, at(2026, 10, 5, 9), "holiday"),  # a Monday that is a holiday
    ({}, at(2026, 10, 10, 9, 30), "open"),  # a Saturday make-up workday
    ({}, at(2026, 10, 10, 8, 30), "closed"),
    ({}, at(2026, 11, 22, 9), "closed"),  # Sunday
])
def test_branch_on_fields_and_calendar(data: dict[str, object], now: float, expect: str) -> None:
    w = walker(BRANCH, now=now, **data)
    assert nodes(w.start()) == ["b", expect]


def test_record_then_goodbye() -> None:
    w = walker("""
    start: r
    nodes:
      r: {kind: record, prompt: "请留言", var: complaint, max_s: 30, prefix: cti-complaint, next: bye}
      bye: {kind: hangup, prompt: "再见"}
    """, call_id="17000.1/x")
    out = w.start()
    assert of(out, Say) == [Say("请留言", "zh", False)]
    assert out[-1] == Record("cti-complaint-17000.1_x-r", 30, 5, True, "#")
    out = w.on_input(Recorded("/var/spool/asterisk/monitor/cti-complaint-17000.1_x-r.wav", 12.0))
    end = events(out, Kind.IVR_END)[0]
    assert end.data["recordings"] == {"complaint": "/var/spool/asterisk/monitor/cti-complaint-17000.1_x-r.wav"}


RATING = """
start: q
nodes:
  q: {kind: queue, skill: fault, prompt: "正在转接", after: rate}
  rate:
    kind: rating
    prompt: "请评价，1到5分"
    agent_key: false
    retries: 1
    thanks: "谢谢"
"""


def test_queue_then_rating_after_the_agent_hangs_up() -> None:
    w = walker(RATING)
    out = w.start()
    assert of(out, Say) == [Say("正在转接", "zh", False)] and out[-1] == Queue("fault", "normal")
    out = w.on_input(Queued("1003"))
    assert nodes(out) == ["rate"] and isinstance(out[-1], Collect)
    out = w.on_input(Digits("6"))  # out of scale
    assert isinstance(out[-1], Collect)
    out = w.on_input(Digits("4"))
    rating = events(out, Kind.SURVEY_RATING)[0]
    assert rating.data["rating"] == 4 and rating.agent_id == "1003" and rating.call_id == "L1"
    assert rating.queue == "fault"  # the queue the rated agent served the call in (issue 12 item 15)
    assert not events(out, Kind.IVR_END)  # ivr.end (agent) was logged once, at the queue
    assert isinstance(out[-1], Hangup)


def test_rating_exhausted_ends_quietly() -> None:
    w = walker(RATING)
    w.start()
    w.on_input(Queued("1003"))
    w.on_input(Timeout())
    out = w.on_input(Timeout())
    assert isinstance(out[-1], Hangup) and not events(out, Kind.SURVEY_RATING) and not of(out, Queue)


def test_goto_and_file_prompt() -> None:
    w = walker("""
    start: g
    nodes:
      g: {kind: goto, next: p}
      p: {kind: play, prompt: {file: "cti-custom/{lang}/welcome"}, next: h}
      h: {kind: hangup}
    """)
    out = w.start()
    assert nodes(out) == ["g", "p", "h"]
    assert of(out, PlayFile) == [PlayFile("cti-custom/zh/welcome", True)]


def test_a_loop_with_no_input_ends_with_an_error_not_a_hang() -> None:
    w = walker("""
    start: a
    nodes:
      a: {kind: goto, next: b}
      b: {kind: goto, next: a}
    """)
    out = w.start()
    assert isinstance(out[-1], Hangup)
    assert events(out, Kind.IVR_END)[0].data["outcome"] == "error"


def test_hangup_any_time_and_illegal_inputs() -> None:
    w = walker(MENU)
    w.start()
    with pytest.raises(IllegalInput, match="keys got LookupResult"):
        w.on_input(LookupResult({}))
    out = w.on_input(HungUp())
    assert events(out, Kind.IVR_END)[0].data == {"outcome": "hangup", "node": "main"}
    assert w.on_input(HungUp()) == []
    with pytest.raises(IllegalInput):
        w.on_input(Digits("1"))


def test_calls_keep_their_tree_version() -> None:
    tree = load_tree(SAMPLE_CONFIG / "ivr" / "hotline.yaml")
    w = IvrWalker(tree, {"call_id": "x", "caller": "1"}, 0.0)
    assert events(w.start(), Kind.IVR_START)[0].data["version"] == tree.version != ""


def test_sample_tree_bill_query_with_pin() -> None:
    """Unknown number: language, main menu 1, account + PIN, arrears read out, then 0 to an agent."""
    tree = load_tree(SAMPLE_CONFIG / "ivr" / "hotline.yaml")
    w = IvrWalker(tree, {"call_id": "L9", "caller": "02100000000"}, at(2026, 11, 23, 10))
    out = w.start()
    assert out[-1] == Lookup("customer_by_caller", {"number": "02100000000"})
    out = w.on_input(LookupResult(None))
    assert nodes(out) == ["language"]
    out = w.on_input(Digits("1"))
    assert nodes(out) == ["main"]
    out = w.on_input(Digits("1"))
    assert nodes(out) == ["bill_identity", "ask_account"]
    out = w.on_input(Digits("9100000001"))
    out = w.on_input(Digits("123456"))
    assert out[-1] == Lookup("verify_pin", {"account": "9100000001", "pin": "123456"})
    out = w.on_input(LookupResult({"verified": True}))
    assert out[-1] == Lookup("account", {"account": "9100000001"})
    out = w.on_input(LookupResult({"account": "9100000001", "name": "李四", "arrears": 86.5,
                                   "due_date": "2026-12-15"}))
    assert "当前欠费金额为86.50元" in of(out, Say)[0].text
    out = w.on_input(Digits("0"))
    assert out[-1] == Queue("billing", "normal")
    assert w.path[:3] == ["who", "language", "main"]


def test_sample_tree_outage_notice_before_the_menu() -> None:
    tree = load_tree(SAMPLE_CONFIG / "ivr" / "hotline.yaml")
    w = IvrWalker(tree, {"call_id": "L8", "caller": "13800000001"}, at(2026, 11, 23, 10))
    w.start()
    out = w.on_input(LookupResult({"account": "9100000001", "area": "城东区", "tier": "vip", "verified": True}))
    assert out[-1] == Lookup("outages", {"area": "城东区"})
    out = w.on_input(LookupResult({"active": True, "area": "城东区", "reason": "线路故障",
                                   "expected_restore": "18:00"}))
    assert nodes(out) == ["outage_branch", "outage_notice", "language"]
    says = of(out, Say)
    assert "城东区因线路故障停电" in says[0].text and "18:00恢复供电" in says[0].text
    assert says[1].text.startswith("欢迎致电95598")
    out = w.on_input(Digits("1"))
    out = w.on_input(Digits("1"))  # bound number: no PIN asked
    assert nodes(out) == ["bill_identity", "bill_query"] and out[-1] == Lookup("account",
                                                                                {"account": "9100000001"})


def test_sample_rating_without_an_answer_hangs_up_not_requeues() -> None:
    tree = load_tree(SAMPLE_CONFIG / "ivr" / "hotline.yaml")
    w = IvrWalker(tree, {"call_id": "L7", "caller": ""}, at(2026, 11, 23, 10))
    w.start()
    w.on_input(Digits("1"))
    assert isinstance(w.on_input(Digits("0"))[-1], Queue)
    assert nodes(w.on_input(Queued("1004"))) == ["rating"]
    w.on_input(Timeout())
    out = w.on_input(Timeout())
    assert isinstance(out[-1], Hangup) and not of(out, Queue) and not events(out, Kind.SURVEY_RATING)
    assert w.outcome == "agent"


def test_a_tier_named_by_the_tree_is_explicit_else_the_acd_classifies() -> None:
    w = walker("""
start: q
nodes:
  q: {kind: queue, skill: fault, prompt: "紧急", tier: vip}
""")
    out = w.start()
    assert out[-1] == Queue("fault", "vip", explicit=True)
    w = walker(MENU)
    w.start()
    w.data["customer"] = {"found": True, "tier": "priority"}
    assert w.on_input(Digits("0"))[-1] == Queue("billing", "priority", explicit=False)


def test_a_titled_node_names_itself_in_its_ivr_node_event() -> None:
    """The screen-pop shows the caller's IVR path by the nodes' names (tree `title`), not their ids."""
    w = walker(MENU.replace("  main:\n    kind: menu\n", "  main:\n    kind: menu\n"
                                                       "    title: {zh: 主菜单, en: Main menu}\n"))
    first = w.start()
    assert [e.data.get("title") for e in events(first) if e.kind == Kind.IVR_NODE] == [
        {"zh": "主菜单", "en": "Main menu"}]
    out = w.on_input(Digits("1"), 1_700_000_001.0)
    logged = [(e.data["node"], e.data.get("title")) for e in events(out) if e.kind == Kind.IVR_NODE]
    assert logged == [("one", None)]  # no title: none in the event
    sample = load_tree(SAMPLE_CONFIG / "ivr" / "hotline.yaml").tree.nodes
    assert all(n.title is not None for n in sample.values() if n.kind not in ("lookup", "branch"))
