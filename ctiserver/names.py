"""Display names: what people see instead of internal ids, in each UI language.

Queues, tiers, reasons, categories, units, IVR nodes and KPI metrics have ids that the code and the
event log use (`billing`, `rona`, `fault_repair`). People see a name per UI language instead; the
desktop, wallboard and reports pages pick the one of the language each person chose.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .configfile import Strict

UI_LANGS = ("zh", "en")

_Name = Annotated[str, Field(min_length=1, max_length=80)]


class DisplayName(Strict):
    """`{zh: 电费查询, en: Billing}`: both are required (check rejects one that lacks a language)."""

    zh: _Name
    en: _Name

    def get(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh
