"""How a text travels as SMS: GSM 7-bit when every character is in the GSM default alphabet, else UCS-2
(Chinese always is), and in how many parts (a concatenated message loses room to its header).

Kannel splits and concatenates (its sendsms user's `max-messages` and `concatenation`); we count the
parts ourselves to refuse a text longer than `max_parts` before it costs anything, and to report them.
"""

from __future__ import annotations

from dataclasses import dataclass

# GSM 03.38 default alphabet, and the extension table (each of those costs two septets).
_GSM = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
           "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM_EXT = set("^{}\\[~]|€\f")

GSM7 = 0  # Kannel's coding=0
UCS2 = 2  # Kannel's coding=2


@dataclass(frozen=True, slots=True)
class Encoded:
    coding: int  # GSM7 or UCS2
    units: int   # septets (GSM 7-bit) or UTF-16 code units (UCS-2)
    parts: int


def encode(text: str) -> Encoded:
    """The coding and part count of `text` (single: 160 septets / 70 UCS-2 units; each part of a
    concatenated one: 153 / 67)."""
    if all(c in _GSM or c in _GSM_EXT for c in text):
        units = sum(2 if c in _GSM_EXT else 1 for c in text)
        single, per_part, coding = 160, 153, GSM7
    else:
        units = len(text.encode("utf-16-be")) // 2
        single, per_part, coding = 70, 67, UCS2
    parts = 1 if units <= single else -(-units // per_part)
    return Encoded(coding, units, parts)
