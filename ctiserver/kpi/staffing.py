"""Staffing for one interval: Erlang C agents needed and the service level of the agents on hand.

One pure function shared by the report (per half hour, from history) and the wallboard
(live, from the current half hour's arrivals and AHT), so both say the same thing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from . import erlang


@dataclass(frozen=True, slots=True)
class Staffing:
    arrivals: int  # calls offered to agents in the interval
    aht_s: float | None  # mean handle time (talk + hold + after-call work)
    load_erlangs: float | None  # arrivals / interval * AHT
    agents_needed: int | None  # fewest agents reaching the SL target (Erlang C)
    agents_logged_in: float  # average agents logged in over the interval
    sl_with_logged_in: float | None  # Erlang C SL with the whole agents on hand (floor of the average)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def staffing(arrivals: int, interval_s: float, aht_s: float | None, agents_logged_in: float,
             threshold_s: float, target: float) -> Staffing:
    """Erlang C staffing for `arrivals` calls in `interval_s` seconds handled in `aht_s` each.

    SL with the logged-in agents is 1.0 when nobody called, 0.0 when calls came and nobody was
    logged in; figures are None when the handle time is unknown.
    """
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    if arrivals < 0 or agents_logged_in < 0:
        raise ValueError("arrivals and agents must not be negative")
    if not aht_s or aht_s <= 0 or not math.isfinite(aht_s):
        return Staffing(arrivals, aht_s, None, None, round(agents_logged_in, 2), None)
    rate = arrivals / interval_s
    needed = erlang.agents_needed(rate, aht_s, threshold_s, target)
    n = math.floor(agents_logged_in + 1e-9)
    if arrivals == 0:
        sl: float = 1.0
    elif n >= 1:
        sl = round(erlang.service_level(n, rate, aht_s, threshold_s), 6)
    else:
        sl = 0.0
    return Staffing(arrivals, aht_s, round(rate * aht_s, 3), needed, round(agents_logged_in, 2), sl)
