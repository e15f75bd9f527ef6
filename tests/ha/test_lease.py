"""The lease state machine on a fake clock: who leads, under which epoch, and when a leader stops by itself."""

from __future__ import annotations

import pytest

from ctiserver.clock import FakeClock
from ctiserver.ha.lease import (
    EXPIRY_MARGIN_S,
    MIN_ATTEMPT_GAP_S,
    BecameLeader,
    Decision,
    LeaseMachine,
    LeaseRow,
    Role,
    SteppedDown,
    decide,
)


def row(holder: str | None, epoch: int, *, expires: float, now: float = 0.0) -> LeaseRow:
    return LeaseRow(holder, f"http://{holder}" if holder else "", epoch, now, expires, now)


def test_decide_takes_a_free_or_expired_lease_renews_its_own_and_leaves_the_others() -> None:
    assert decide(None, "a", None) is Decision.TAKE_OVER
    assert decide(row(None, 0, expires=50, now=100), "a", None) is Decision.TAKE_OVER
    assert decide(row("b", 3, expires=99.9, now=100), "a", None) is Decision.TAKE_OVER  # b's lease ran out
    assert decide(row("b", 3, expires=101, now=100), "a", None) is Decision.OBSERVE
    assert decide(row("a", 3, expires=101, now=100), "a", 3) is Decision.RENEW
    assert decide(row("a", 3, expires=101, now=100), "a", 2) is Decision.OBSERVE  # ours from an earlier term
    assert decide(row("a", 3, expires=101, now=100), "a", None) is Decision.OBSERVE  # a restarted process waits


def test_a_won_attempt_makes_a_leader_until_the_local_deadline_then_it_stops_by_itself() -> None:
    clock = FakeClock(10.0)
    m = LeaseMachine("a", 3.0, renew_s=1.0)
    assert m.local_s == 2.5  # TTL 3 s minus a guard of 0.5 s
    sent = clock.now()
    clock.jump(0.1)
    assert m.renewed(sent, clock.now(), row("a", 1, expires=103), Decision.TAKE_OVER) == [BecameLeader(1)]
    assert m.role is Role.LEADER and m.epoch == 1 and m.leader == "a" and m.leading(clock.now())
    assert m.attempt_epoch == 1
    assert m.next_wake(sent) == 11.0  # the next renewal, before the deadline (12.5)
    clock.jump(1.5)  # renewals fail: the database is away
    assert m.failed(clock.now(), "ConnectionRefusedError") == []
    assert m.leading(clock.now())
    clock.set(12.4)
    assert m.tick(clock.now()) == [] and m.leading(clock.now())
    clock.set(12.5)  # the deadline is counted from when the winning attempt was SENT
    changes = m.tick(clock.now())
    assert changes == [SteppedDown(1, "the lease was not renewed within 2.5 s (ConnectionRefusedError)")]
    assert m.role is Role.STANDBY and m.epoch is None and not m.leading(clock.now()) and m.leader is None
    assert m.attempt_epoch is None  # it does not renew epoch 1 any more


def test_renewals_move_the_deadline_on() -> None:
    clock = FakeClock(0.0)
    m = LeaseMachine("a", 3.0)
    m.renewed(0.0, 0.05, row("a", 4, expires=3), Decision.TAKE_OVER)
    for t in (1.0, 2.0, 3.0, 4.0):
        clock.set(t)
        assert m.tick(clock.now()) == []
        assert m.renewed(t, t + 0.05, row("a", 4, expires=t + 3), Decision.RENEW) == []
    assert m.deadline == 6.5 and m.leading(6.4) and not m.leading(6.5)


def test_an_answer_that_comes_back_after_the_deadline_does_not_count() -> None:
    m = LeaseMachine("a", 3.0)
    m.renewed(0.0, 0.1, row("a", 1, expires=3), Decision.TAKE_OVER)
    changes = m.renewed(1.0, 3.6, row("a", 1, expires=4), Decision.RENEW)  # sent at 1.0, deadline 3.5
    assert changes == [SteppedDown(1, "the lease renewal came back too late")]
    assert m.role is Role.STANDBY
    # a standby's too-late win does not make it lead either
    assert LeaseMachine("b", 3.0).renewed(0.0, 2.5, row("b", 2, expires=3), Decision.TAKE_OVER) == []
    # a stalled event loop: stepped down at the deadline, then its renewal comes back in time: the same epoch
    m = LeaseMachine("a", 3.0)
    m.renewed(0.0, 0.1, row("a", 1, expires=3), Decision.TAKE_OVER)
    assert m.tick(2.5) == [SteppedDown(1, "the lease was not renewed within 2.5 s")]
    assert m.renewed(1.0, 2.6, row("a", 1, expires=4), Decision.RENEW) == [BecameLeader(1)]
    assert m.epoch == 1 and m.deadline == 3.5


def test_a_leader_that_finds_another_holder_steps_down_and_follows_it() -> None:
    m = LeaseMachine("a", 3.0)
    m.renewed(0.0, 0.1, row("a", 1, expires=3), Decision.TAKE_OVER)
    changes = m.renewed(1.0, 1.1, row("b", 2, expires=4), Decision.OBSERVE)
    assert changes == [SteppedDown(1, "the lease is held by b (epoch 2)")]
    assert m.leader == "b" and m.leader_address == "http://b" and m.seen_epoch == 2


def test_a_leader_whose_own_lease_ran_out_in_the_database_starts_a_new_term() -> None:
    m = LeaseMachine("a", 3.0)
    m.renewed(0.0, 0.1, row("a", 1, expires=3), Decision.TAKE_OVER)
    changes = m.renewed(1.0, 1.1, row("a", 2, expires=4), Decision.TAKE_OVER)
    assert changes == [SteppedDown(1, "the lease is held by a (epoch 2)"), BecameLeader(2)]
    assert m.epoch == 2


def test_a_standby_follows_the_leader_it_sees() -> None:
    m = LeaseMachine("b", 3.0)
    assert m.renewed(0.0, 0.1, row("a", 7, expires=102, now=100), Decision.OBSERVE) == []
    assert m.role is Role.STANDBY and m.leader == "a" and m.seen_epoch == 7
    assert m.tick(100.0) == []
    assert m.renewed(1.0, 1.1, row("a", 7, expires=99, now=100), Decision.OBSERVE) == []  # expired: nobody leads
    assert m.leader is None


def test_release_steps_down_and_bad_timings_are_refused() -> None:
    m = LeaseMachine("a", 3.0)
    assert m.release() == []
    m.renewed(0.0, 0.1, row("a", 1, expires=3), Decision.TAKE_OVER)
    assert m.release() == [SteppedDown(1, "shutting down")]
    with pytest.raises(ValueError, match="renew_s"):
        LeaseMachine("a", 3.0, renew_s=2.5)
    with pytest.raises(ValueError, match="renew_s"):
        LeaseMachine("a", 3.0, guard_s=1.0, renew_s=2.0)
    with pytest.raises(ValueError, match="guard_s"):
        LeaseMachine("a", 3.0, guard_s=3.0)


def test_a_standby_tries_again_when_the_lease_it_saw_runs_out_not_a_renewal_period_later() -> None:
    m = LeaseMachine("b", 3.0, renew_s=1.0)
    # a's lease, renewed, has the whole TTL left (by the database's clock): the usual period
    m.renewed(10.0, 10.1, LeaseRow("a", "", 1, renewed_ts=500.0, expires_ts=503.0, db_now=500.0), Decision.OBSERVE)
    assert m.next_wake(10.0) == 11.0
    # a died 2.7 s ago: 0.3 s left, so the next attempt comes at the expiry (plus a margin), not at 11.0
    m.renewed(10.0, 10.1, LeaseRow("a", "", 1, renewed_ts=500.0, expires_ts=503.0, db_now=502.7), Decision.OBSERVE)
    assert m.next_wake(10.0) == pytest.approx(10.1 + 0.3 + EXPIRY_MARGIN_S)
    # never sooner than a moment after the last attempt, and a leader keeps its period
    m.renewed(10.0, 10.01, LeaseRow("a", "", 1, renewed_ts=500.0, expires_ts=503.0, db_now=502.99), Decision.OBSERVE)
    assert m.next_wake(10.0) == pytest.approx(10.0 + MIN_ATTEMPT_GAP_S)


def test_an_epoch_whose_holder_session_ended_is_taken_over_before_it_expires() -> None:
    live = row("a", 3, expires=101, now=100)
    assert decide(live, "b", None, orphaned=3) is Decision.TAKE_OVER  # a's session (its epoch's lock) is gone
    assert decide(live, "b", None, orphaned=2) is Decision.OBSERVE  # an older term's end says nothing of epoch 3
    assert decide(live, "a", 3, orphaned=3) is Decision.RENEW
    m = LeaseMachine("b", 3.0, renew_s=1.0)
    assert m.watch_epoch is None  # nobody leads: nothing to wait for
    m.renewed(10.0, 10.1, live, Decision.OBSERVE)
    assert m.watch_epoch == 3 and m.attempt_orphaned is None and m.next_wake(10.0) == 11.0
    m.holder_gone(3)
    assert m.attempt_orphaned == 3 and m.watch_epoch is None
    assert m.next_wake(10.0) == pytest.approx(10.0 + MIN_ATTEMPT_GAP_S)  # at once, not at the expiry
    assert m.renewed(10.2, 10.25, row("b", 4, expires=103.2), Decision.TAKE_OVER) == [BecameLeader(4)]
    assert m.attempt_orphaned is None and m.watch_epoch is None
    # an attempt that got no answer: not retried at once (the watch finds the lock free again)
    s = LeaseMachine("c", 3.0)
    s.renewed(0.0, 0.1, live, Decision.OBSERVE)
    s.holder_gone(3)
    s.failed(0.2, "ConnectionRefusedError")
    assert s.attempt_orphaned is None and s.watch_epoch == 3


def test_a_leader_whose_lease_session_ended_stops_at_once_and_never_leads_that_epoch_again() -> None:
    m = LeaseMachine("a", 3.0)
    assert m.session_lost("closed") == []  # a standby has nothing to stop
    m.renewed(0.0, 0.1, row("a", 1, expires=3), Decision.TAKE_OVER)
    assert m.session_lost("the connection to PostgreSQL closed") == [
        SteppedDown(1, "its lease session ended (the connection to PostgreSQL closed)")]
    assert m.role is Role.STANDBY and not m.leading(0.2) and m.attempt_epoch is None
    # a renewal sent before the session ended comes back afterwards: it does not make it lead again
    assert m.renewed(1.0, 1.05, row("a", 1, expires=4), Decision.RENEW) == []
    assert m.role is Role.STANDBY
    # a new epoch, taken with a new session, is led as usual
    assert m.renewed(4.0, 4.05, row("a", 2, expires=7), Decision.TAKE_OVER) == [BecameLeader(2)]
