"""The SMS service on a fake clock and a scripted gateway: refusals retry on the configured delays and
end in the fallback call, do-not-call numbers are excluded, quiet hours delay, a bad request stores nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import pytest

from ctiserver.clock import FakeClock
from ctiserver.outbound.model import load_outbound_config
from ctiserver.sms.engine import SendRules, State
from ctiserver.sms.kannel import Outgoing, SubmitResult
from ctiserver.sms.model import load_sms_config
from ctiserver.sms.service import SmsError, SmsRequest, SmsService
from ctiserver.sms.store import SmsRow, SmsStore
from ctiserver.store.engine import make_engine

REPO = Path(__file__).resolve().parents[2]
CFG = load_sms_config(REPO / "config")
RULES = SendRules.of(CFG, load_outbound_config(REPO / "config"))
TEN_AM = CFG.calendar.at(__import__("datetime").date(2026, 12, 2), 600)


class ScriptedGateway:
    """Answers each submit with the next outcome of its script (the last repeats)."""

    def __init__(self, *outcomes: str) -> None:
        self.outcomes = list(outcomes)
        self.sent: list[Outgoing] = []

    async def submit(self, msg: Outgoing) -> SubmitResult:
        self.sent.append(msg)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        return SubmitResult(outcome, "scripted")

    async def aclose(self) -> None:
        return None


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SmsStore]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'sms.db'}")
    s = SmsStore(engine)
    await s.create_tables()
    yield s
    await engine.dispose()


def req(number: str = "13800000001", **kw: object) -> SmsRequest:
    fields = {"name": "王女士", "area": "城东", "restored_at": "15:20"}
    return SmsRequest("restored", number, fields, account="3100012345", area=str(kw.get("area", "城东")),
                      quiet=str(kw.get("quiet", "")))


async def test_refusals_retry_on_the_delays_then_fall_back_to_a_call(store: SmsStore) -> None:
    clock = FakeClock(TEN_AM)
    fell_back: list[SmsRow] = []

    async def fallback(row: SmsRow) -> None:
        fell_back.append(row)

    gw = ScriptedGateway("refused")
    svc = SmsService(CFG, store, gw, clock, RULES, fallback=fallback)
    msg_id = await svc.send(req())
    for delay in [0.0, *CFG.retry.delays_s[:CFG.retry.max_attempts - 1]]:
        clock.jump(delay)
        await svc.round()
    row = await store.get(msg_id)
    assert row is not None and row.msg.state == State.FALLBACK and row.msg.attempts == CFG.retry.max_attempts
    assert len(gw.sent) == CFG.retry.max_attempts and [r.id for r in fell_back] == [msg_id]


async def test_not_yet_due_messages_wait(store: SmsStore) -> None:
    clock = FakeClock(TEN_AM)
    gw = ScriptedGateway("refused", "accepted")
    svc = SmsService(CFG, store, gw, clock, RULES)
    await svc.send(req())
    await svc.round()
    clock.jump(CFG.retry.delays_s[0] - 1)
    await svc.round()
    assert len(gw.sent) == 1
    clock.jump(1)
    await svc.round()
    assert len(gw.sent) == 2


async def test_dnc_numbers_are_excluded_and_quiet_hours_delay(store: SmsStore) -> None:
    clock = FakeClock(TEN_AM)

    async def listed(numbers: Sequence[str]) -> Mapping[str, str]:
        return {n: "dnc" for n in numbers if n == "13800000009"}

    gw = ScriptedGateway("accepted")
    svc = SmsService(CFG, store, gw, clock, RULES, listed=listed)
    dnc = await svc.send(req("13800000009"))
    quiet = await svc.send(req("13800000002", quiet="09:00-11:00"))
    ok = await svc.send(req("13800000003"))
    await svc.round()
    states = {i: (await store.get(i)).msg.state for i in (dnc, quiet, ok)}  # type: ignore[union-attr]
    assert states == {dnc: State.EXCLUDED, quiet: State.QUEUED, ok: State.ACCEPTED}
    assert [m.number for m in gw.sent] == ["13800000003"]
    clock.jump(3600)
    await svc.round()
    assert [m.number for m in gw.sent] == ["13800000003", "13800000002"]


async def test_a_bad_request_stores_nothing(store: SmsStore) -> None:
    svc = SmsService(CFG, store, ScriptedGateway("accepted"), FakeClock(TEN_AM), RULES)
    with pytest.raises(SmsError, match="not"):
        await svc.send_many([req(), req("12345")])
    with pytest.raises(SmsError, match="parts long"):
        await svc.send(SmsRequest("restored", "13800000001", {"name": "长" * 500, "area": "x", "restored_at": "y"}))
    assert await store.listing() == []
