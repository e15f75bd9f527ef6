"""Erlang B/C/A against published worked examples, exact rational arithmetic, and queueing identities."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctiserver.kpi import erlang
from ctiserver.kpi.erlang import ErlangError


def exact_erlang_c(n: int, a: int) -> Fraction:
    """Erlang C from its definition, in exact rationals (only feasible for a test)."""
    terms = [Fraction(a) ** k / math.factorial(k) for k in range(n)]
    top = Fraction(a) ** n / math.factorial(n) * Fraction(n, n - a)
    return top / (sum(terms) + top)


# Erlang B tables (e.g. any traffic-engineering handbook): B(5, 2 E) = 0.0367, B(10, 5 E) = 0.0184,
# B(10, 10 E) = 0.2146.
@pytest.mark.parametrize(("n", "a", "b"), [(5, 2.0, 0.0367), (10, 5.0, 0.0184), (10, 10.0, 0.2146)])
def test_erlang_b_table(n: int, a: float, b: float) -> None:
    assert erlang.erlang_b(n, a) == pytest.approx(b, abs=5e-5)


def test_worked_example_callcentrehelper() -> None:
    # The widely quoted worked example (callcentrehelper.com, "Erlang C formula - made simple"):
    # 100 calls in 30 minutes, AHT 180 s -> 10 Erlangs. Published for 11 agents: P(wait) 68.21%,
    # service level 39% in 20 s, ASA 122.8 s; and 14 agents needed for 80% in 20 s.
    # (13 agents -> 79.6% and 14 -> 88.8% are this formula's own values, pinned against drift.)
    rate, aht = 100 / 1800, 180.0
    assert erlang.erlang_c(11, 10.0) == pytest.approx(0.6821, abs=5e-5)
    assert erlang.service_level(11, rate, aht, 20) == pytest.approx(0.390, abs=5e-4)
    assert erlang.asa(11, rate, aht) == pytest.approx(122.8, abs=0.05)
    assert erlang.service_level(13, rate, aht, 20) == pytest.approx(0.796, abs=5e-4)
    assert erlang.service_level(14, rate, aht, 20) == pytest.approx(0.888, abs=5e-4)
    assert erlang.agents_needed(rate, aht, 20, 0.80) == 14


@pytest.mark.parametrize(("n", "a"), [(2, 1), (11, 10), (60, 50), (520, 500), (1100, 1000)])
def test_erlang_c_matches_exact_rationals_for_large_centres(n: int, a: int) -> None:
    assert erlang.erlang_c(n, float(a)) == pytest.approx(float(exact_erlang_c(n, a)), rel=1e-12)


def test_overloaded_and_edge_inputs() -> None:
    assert erlang.erlang_c(10, 10.0) == 1.0
    assert erlang.service_level(10, 10 / 180, 180.0, 20) == 0.0
    assert erlang.asa(10, 10 / 180, 180.0) == math.inf
    assert erlang.agents_needed(0.0, 180.0, 20, 0.8) == 0
    assert erlang.erlang_c(1, 0.0) == 0.0
    for bad in (lambda: erlang.erlang_c(0, 1.0), lambda: erlang.erlang_c(3, -1.0),
                lambda: erlang.erlang_c(3, math.nan), lambda: erlang.agents_needed(1.0, 0.0, 20, 0.8),
                lambda: erlang.agents_needed(1.0, 180.0, 20, 1.0), lambda: erlang.erlang_a(5, 1.0, 1.0, 0.0),
                lambda: erlang.service_level(True, 1.0, 1.0, 1.0)):  # type: ignore[arg-type]
        with pytest.raises(ErlangError):
            bad()


def test_large_centre_is_fast_and_sane() -> None:
    # 5,000 calls per half hour at 180 s AHT = 500 Erlangs: about 5% above the load is enough at this scale.
    n = erlang.agents_needed(5000 / 1800, 180.0, 20, 0.8)
    assert 500 < n < 530
    assert erlang.service_level(n, 5000 / 1800, 180.0, 20) >= 0.8 > erlang.service_level(n - 1, 5000 / 1800,
                                                                                         180.0, 20)
    # 10,000 agents: the recursion neither overflows nor underflows.
    assert 0.0 < erlang.erlang_c(10_000, 9_900.0) < 1.0


@settings(max_examples=60, deadline=None)
@given(a=st.floats(0.1, 400), extra=st.integers(1, 60), t=st.floats(0, 120))
def test_service_level_rises_with_agents(a: float, extra: int, t: float) -> None:
    n = math.floor(a) + extra
    lo = erlang.service_level(n, a / 180, 180.0, t)
    hi = erlang.service_level(n + 1, a / 180, 180.0, t)
    assert 0.0 <= lo <= hi <= 1.0
    assert erlang.erlang_c(n + 1, a) <= erlang.erlang_c(n, a)


def test_erlang_a_equals_poisson_when_patience_equals_handle_time() -> None:
    # With θ = μ every caller leaves at rate μ whether served or waiting: the number in the system is
    # Poisson(a) (M/M/∞), so P(wait) = P(X >= N) and E[queue] = E[(X - N)+].
    a, n, aht = 8.0, 10, 120.0
    pois = [math.exp(-a + k * math.log(a) - math.lgamma(k + 1)) for k in range(120)]
    p_wait = sum(pois[n:])
    e_q = sum((k - n) * p for k, p in enumerate(pois) if k > n)
    r = erlang.erlang_a(n, a / aht, aht, patience_s=aht, threshold_s=20)
    assert r.p_wait == pytest.approx(p_wait, rel=1e-9)
    assert r.mean_queue == pytest.approx(e_q, rel=1e-9)
    assert r.p_abandon == pytest.approx(e_q / a, rel=1e-9)  # θ E[Q] / λ with θ = μ
    assert r.mean_wait_s == pytest.approx(e_q / (a / aht), rel=1e-9)  # Little's law


def test_erlang_a_tends_to_erlang_c_with_endless_patience() -> None:
    rate, aht = 100 / 1800, 180.0
    r = erlang.erlang_a(11, rate, aht, patience_s=1e9, threshold_s=20)
    assert r.p_wait == pytest.approx(erlang.erlang_c(11, 10.0), rel=1e-5)
    assert r.wait_le == pytest.approx(erlang.service_level(11, rate, aht, 20), abs=1e-5)
    assert r.mean_wait_s == pytest.approx(erlang.asa(11, rate, aht), rel=1e-4)
    assert r.p_abandon < 1e-6


def test_erlang_a_handles_overload_and_500_agents() -> None:
    # Overloaded by 10% with 60 s mean patience: stable thanks to abandonment. At most 500 of the
    # 550 Erlangs can be served, so at least 1 - 500/550 = 9.09% must hang up.
    r = erlang.erlang_a(500, 550 / 180, 180.0, patience_s=60.0, threshold_s=20)
    assert 1 - 500 / 550 <= r.p_abandon < 0.12
    assert 0.0 < r.answered_within < r.wait_le <= 1.0
    assert r.p_wait > 0.85
    # Served + abandoned = everyone: answered-within-∞ approaches 1 - P(abandon).
    inf = erlang.erlang_a(500, 550 / 180, 180.0, patience_s=60.0, threshold_s=3600)
    assert inf.answered_within == pytest.approx(1 - inf.p_abandon, abs=1e-6)
    # Underloaded: almost nobody waits long, so abandons are tiny and SL is high.
    ok = erlang.erlang_a(500, 480 / 180, 180.0, patience_s=60.0, threshold_s=20)
    assert ok.p_abandon < 0.01 and ok.wait_le > 0.999


def test_staffing_for_one_interval() -> None:
    from ctiserver.kpi.staffing import staffing

    # The worked example as a half hour: 100 calls, AHT 180 s, 11.6 agents logged in on average.
    s = staffing(100, 1800, 180.0, 11.6, 20, 0.8)
    assert (s.load_erlangs, s.agents_needed, s.agents_logged_in) == (10.0, 14, 11.6)
    assert s.sl_with_logged_in == pytest.approx(0.3896, abs=1e-4)  # 11 whole agents
    assert staffing(0, 1800, 180.0, 3, 20, 0.8).sl_with_logged_in == 1.0
    assert staffing(5, 1800, 180.0, 0.4, 20, 0.8).sl_with_logged_in == 0.0
    unknown = staffing(5, 1800, None, 2, 20, 0.8)
    assert unknown.agents_needed is None and unknown.sl_with_logged_in is None
    with pytest.raises(ValueError):
        staffing(5, 0, 180.0, 2, 20, 0.8)
