"""Erlang B, Erlang C (M/M/N) and Erlang A (M/M/N+M, with caller patience) for staffing.

Why this shape: staffing a 95598 hotline means asking "how many agents for 80% in
20 s at this load?" for centres of 500+ agents. The textbook formula
a^N/N! overflows long before that, so everything here runs from the Erlang B
recursion B(n) = a·B(n-1) / (n + a·B(n-1)), which stays in [0, 1] for any N, and the
Erlang A tail is summed in log space. Pure functions of numbers; no IO.

Units: `rate` is calls per second, `aht_s` the mean handle time in seconds, so the
offered load a = rate · aht_s is in Erlangs. Service level means
P(wait <= threshold_s) over all callers offered to agents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class ErlangError(ValueError):
    """Inputs outside the model (negative load, no agents, unreachable target)."""


def _check_load(traffic: float) -> None:
    if not math.isfinite(traffic) or traffic < 0:
        raise ErlangError(f"offered load must be a finite number >= 0, got {traffic!r}")


def _check_agents(agents: int) -> None:
    if isinstance(agents, bool) or not isinstance(agents, int) or agents < 1:
        raise ErlangError(f"agents must be a whole number >= 1, got {agents!r}")


def erlang_b(agents: int, traffic: float) -> float:
    """Blocking probability of M/M/N/N (Erlang loss formula), by the stable recursion."""
    _check_load(traffic)
    if isinstance(agents, bool) or not isinstance(agents, int) or agents < 0:
        raise ErlangError(f"agents must be a whole number >= 0, got {agents!r}")
    b = 1.0
    for n in range(1, agents + 1):
        b = traffic * b / (n + traffic * b)
    return b


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that a caller has to wait (M/M/N, infinite patience). 1.0 when a >= N."""
    _check_agents(agents)
    _check_load(traffic)
    if traffic >= agents:
        return 1.0
    b = erlang_b(agents, traffic)
    return _c_from_b(agents, traffic, b)


def _c_from_b(agents: int, traffic: float, b: float) -> float:
    return agents * b / (agents - traffic * (1.0 - b))


def service_level(agents: int, rate: float, aht_s: float, threshold_s: float) -> float:
    """Erlang C P(wait <= threshold_s) = 1 - C·exp(-(N - a)·t / AHT). 0.0 when overloaded."""
    _check_rate(rate, aht_s)
    a = rate * aht_s
    _check_agents(agents)
    if a >= agents:
        return 0.0
    if threshold_s < 0:
        raise ErlangError("threshold_s must be >= 0")
    c = erlang_c(agents, a)
    return 1.0 - c * math.exp(-(agents - a) * threshold_s / aht_s)


def asa(agents: int, rate: float, aht_s: float) -> float:
    """Erlang C average speed of answer (mean wait of all callers): C·AHT / (N - a). inf if overloaded."""
    _check_rate(rate, aht_s)
    a = rate * aht_s
    _check_agents(agents)
    if a >= agents:
        return math.inf
    return erlang_c(agents, a) * aht_s / (agents - a)


def _check_rate(rate: float, aht_s: float) -> None:
    if not math.isfinite(rate) or rate < 0:
        raise ErlangError(f"arrival rate must be a finite number >= 0, got {rate!r}")
    if not math.isfinite(aht_s) or aht_s <= 0:
        raise ErlangError(f"handle time must be a finite number > 0, got {aht_s!r}")


def agents_needed(rate: float, aht_s: float, threshold_s: float, target: float,
                  *, max_agents: int = 100_000) -> int:
    """Fewest agents whose Erlang C service level reaches `target` (0 < target < 1).

    Walks N upwards from just above the load, updating Erlang B by one recursion
    step per N, so 5,000 agents cost 5,000 multiplications, not 5,000 formulas.
    """
    _check_rate(rate, aht_s)
    if not 0.0 < target < 1.0:
        raise ErlangError(f"target must be between 0 and 1 (exclusive), got {target!r}")
    if threshold_s < 0:
        raise ErlangError("threshold_s must be >= 0")
    a = rate * aht_s
    if a == 0:
        return 0
    b = 1.0
    n = 0
    while n < max_agents:
        n += 1
        b = a * b / (n + a * b)
        if n <= a:
            continue
        c = _c_from_b(n, a, b)
        if 1.0 - c * math.exp(-(n - a) * threshold_s / aht_s) >= target:
            return n
    raise ErlangError(f"more than {max_agents} agents needed for load {a:.1f} Erlangs")


@dataclass(frozen=True, slots=True)
class ErlangAResult:
    """Steady-state figures of M/M/N+M (Erlang A)."""

    p_wait: float  # P(an arrival finds all agents busy)
    p_abandon: float  # share of arrivals who hang up before an agent
    mean_wait_s: float  # mean time in queue over all arrivals (served or not)
    mean_queue: float  # mean number waiting
    answered_within: float  # share of all arrivals answered by an agent within threshold_s
    wait_le: float  # P(offered wait <= threshold_s): the wait a caller of infinite patience would have


def erlang_a(agents: int, rate: float, aht_s: float, patience_s: float,
             threshold_s: float = 20.0) -> ErlangAResult:
    """Erlang A: Poisson arrivals, exponential service, exponential patience (mean `patience_s`).

    The stationary distribution of the birth-death chain (death rate min(n,N)·μ +
    max(n-N,0)·θ) is summed in log space until terms drop below 1e-17 of the total,
    so it is exact to double precision for any N. Waiting-time figures come from
    the tagged caller's race to the head of the queue, solved by uniformisation.
    """
    _check_agents(agents)
    _check_rate(rate, aht_s)
    if not (patience_s > 0):
        raise ErlangError(f"patience_s must be > 0, got {patience_s!r}")
    if threshold_s < 0:
        raise ErlangError("threshold_s must be >= 0")
    lam = rate
    mu = 1.0 / aht_s
    theta = 1.0 / patience_s
    a = lam / mu
    if lam == 0:
        return ErlangAResult(0.0, 0.0, 0.0, 0.0, 1.0, 1.0)
    n_mu = agents * mu
    # log of pi_{N+k}/pi_N for k >= 0; pi_n/pi_N summed for n <= N is 1/B(N, a).
    log_low = -math.log(erlang_b(agents, a))  # log(sum_{n<=N} pi_n / pi_N)
    logs = [0.0]
    acc = 0.0
    peak = 0.0
    k = 0
    while True:
        k += 1
        acc += math.log(lam) - math.log(n_mu + k * theta)
        logs.append(acc)
        peak = max(peak, acc)
        if n_mu + k * theta > lam and acc < peak - 40.0 and k > 10:
            break
        if k > 2_000_000:
            raise ErlangError("queue tail does not converge")
    hi = max(log_low, peak)
    low_w = math.exp(log_low - hi)
    tail = [math.exp(v - hi) for v in logs]  # index k -> pi_{N+k} scaled
    total = low_w + sum(tail[1:])
    p_wait = sum(tail) / total
    mean_queue = sum(k * w for k, w in enumerate(tail)) / total
    p_abandon = theta * mean_queue / lam
    mean_wait = mean_queue / lam
    # Arrival (PASTA) finding N+k in system waits behind k callers; those with n < N start at once.
    start = [w / total for w in tail]  # start[k] = P(arrival finds k waiting ahead, all agents busy)
    served_by_t = _served_within(start, n_mu, theta, threshold_s, own_patience=True)
    offered_by_t = _served_within(start, n_mu, theta, threshold_s, own_patience=False)
    p_immediate = 1.0 - p_wait
    return ErlangAResult(
        p_wait=p_wait,
        p_abandon=p_abandon,
        mean_wait_s=mean_wait,
        mean_queue=mean_queue,
        answered_within=min(1.0, p_immediate + served_by_t),
        wait_le=min(1.0, p_immediate + offered_by_t),
    )


def _served_within(start: list[float], n_mu: float, theta: float, t: float, *,
                   own_patience: bool) -> float:
    """Probability mass that reaches an agent within t, starting k places from the head.

    With j callers ahead, the tagged caller moves up at rate N·μ + j·θ (an agent frees
    up or someone ahead hangs up) and, if `own_patience`, leaves at rate θ.
    Uniformisation: p(t) = sum_m Poisson(m; Λt)·P^m p(0), with Λ the largest total rate.
    """
    if t == 0:
        return 0.0
    kmax = len(start) - 1
    own = theta if own_patience else 0.0
    lam_u = n_mu + kmax * theta + own
    probs = list(start)
    served = 0.0
    x = lam_u * t
    # Poisson weights computed iteratively in log space; stop when the rest is negligible.
    m = 0
    log_w = -x
    cum_w = 0.0
    mass_served_after = 0.0  # served mass after m jumps
    limit = int(x + 12.0 * math.sqrt(x) + 50)
    result = 0.0
    while m <= limit:
        w = math.exp(log_w)
        result += w * mass_served_after
        cum_w += w
        # one jump of the uniformised chain
        new = [0.0] * (kmax + 1)
        for j in range(kmax + 1):
            p = probs[j]
            if p == 0.0:
                continue
            up = (n_mu + j * theta) / lam_u
            leave = own / lam_u
            stay = 1.0 - up - leave
            new[j] += p * stay
            if j == 0:
                served += p * up
            else:
                new[j - 1] += p * up
        probs = new
        mass_served_after = served
        m += 1
        log_w += math.log(x) - math.log(m)
    # Remaining Poisson weight: at least as much served as after `limit` jumps.
    result += (1.0 - cum_w) * mass_served_after
    return result
