"""The words each contact hears: templates from config filled with the contact's data.

Pure: the dialer turns the text into a sound through the TTS pipeline it is given.
Arrears reminders compute the late fee to the day the call is made, so a
reminder repeated two days later quotes the right amount.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from .model import LANGS, CampaignSpec, OutboundConfig, spoken
from .rules import late_fee


class MessageError(ValueError):
    """A contact lacks data its campaign's message needs (caught at import; here as a last guard)."""


def _decimal(value: Any, what: str) -> Decimal:
    try:
        d = Decimal(str(value).replace(",", "").strip())
    except (InvalidOperation, ValueError):
        raise MessageError(f"{what} {value!r} is not a number") from None
    if not d.is_finite():
        raise MessageError(f"{what} {value!r} is not a number")
    return d


def arrears_fields(variables: dict[str, Any], today: date, cfg: OutboundConfig, lang: str) -> dict[str, str]:
    """billing_month, arrears, late fee (amount, days, rate, rule), total, due date, where to pay."""
    for key in ("billing_month", "arrears", "due_date"):
        if not str(variables.get(key, "")).strip():
            raise MessageError(f"arrears reminder needs '{key}'")
    arrears = _decimal(variables["arrears"], "arrears")
    try:
        due = date.fromisoformat(str(variables["due_date"]).strip())
    except ValueError:
        raise MessageError(f"due_date {variables['due_date']!r} is not YYYY-MM-DD") from None
    business = str(variables.get("customer_class", "residential")).strip().lower() in ("business", "非居民")
    fee = late_fee(arrears, due, today, business, cfg.late_fee)
    total = arrears + fee.amount
    return {
        "billing_month": str(variables["billing_month"]).strip(),
        "arrears": f"{arrears:.2f}",
        "late_fee": f"{fee.amount:.2f}",
        "late_fee_days": str(fee.days),
        "late_fee_rate": f"{(fee.rate_per_day * 1000).normalize()}‰",
        "late_fee_rule": fee.rule_zh if lang == "zh" else fee.rule_en,
        "total": f"{total:.2f}",
        "due_date": due.isoformat(),
        "pay_at": cfg.pay_at.zh if lang == "zh" else cfg.pay_at.en,
    }


def message_language(spec: CampaignSpec, variables: dict[str, Any]) -> str:
    """The contact's own language when their list gives one (column `language`), else the campaign's."""
    lang = str(variables.get("language") or "").strip().lower()
    return lang if lang in LANGS else spec.language


def render(spec: CampaignSpec, cfg: OutboundConfig, *, name: str, account: str, area: str,
           variables: dict[str, Any], today: date, lang: str | None = None) -> str:
    """The text of the message for one contact, in `lang` (default: `message_language`)."""
    tpl = cfg.templates.get(spec.kind)
    if tpl is None:
        raise MessageError(f"no message template for {spec.kind} in outbound.yaml")
    lang = lang or message_language(spec, variables)
    text = tpl.zh if lang == "zh" else tpl.en
    fields: dict[str, str] = {"name": name or ("客户" if lang == "zh" else "customer"), "account": account}
    if spec.kind == "outage_notice" and spec.outage is not None:
        o = spec.outage
        fields.update(area=area or "、".join(o.areas), start=spoken(o.start, lang), end=spoken(o.end, lang),
                      reason=spoken(o.reason, lang))
    elif spec.kind == "arrears_reminder":
        fields.update(arrears_fields(variables, today, cfg, lang))
    elif spec.kind == "restored" and spec.restored is not None:
        fields.update(area=area or "、".join(spec.restored.areas), restored_at=spoken(spec.restored.restored_at, lang))
    elif spec.kind == "survey":
        fields["topic"] = str(variables.get("topic") or (spoken(spec.survey.topic, lang) if spec.survey else ""))
    out = text.format_map(fields)
    if lang == "zh":  # YAML folding puts spaces between lines; Chinese has none
        out = _CJK_GAP.sub("", out)
    return out.strip()


_CJK_GAP = re.compile(r"(?<=[^\x00-\x7f])\s+(?=[^\x00-\x7f])")


def sound_name(text: str, lang: str) -> str:
    """Default name of the rendered prompt: `cti/<hash>` of language and text (same text, same file)."""
    return "cti/" + hashlib.sha256(f"{lang}\n{text}".encode()).hexdigest()[:20]
