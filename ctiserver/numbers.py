"""Phone numbers: the one normaliser every part uses (contact lists, do-not-call, callbacks, caller ids).

A number is stored, compared and dialled in one form: Chinese national form in ASCII
digits (`13812345678`, `02151234567`). Full-width digits (a Chinese spreadsheet or
input method) are read as digits (NFKC); any other script's digits (Arabic-Indic,
Devanagari, ...) are refused, so a number cannot slip past the do-not-call list in a
form that only looks like a listed one.
"""

from __future__ import annotations

import re
import unicodedata

_SEPARATORS = re.compile(r"[\s\-()（）.]")
_ANGLE = re.compile(r"<([^>]*)>")


class NumberError(ValueError):
    """The text is not a dialable Chinese subscriber number; the message says why."""


def is_ascii_digits(text: str) -> bool:
    """Only the digits 0-9 (str.isdigit() also accepts other scripts' digits)."""
    return bool(text) and text.isascii() and text.isdigit()


def normalise_number(raw: str) -> str:
    """A Chinese mobile or landline number in dialable national form, or NumberError saying why."""
    text = unicodedata.normalize("NFKC", raw or "").strip()
    if not text:
        raise NumberError("phone number is empty")
    digits = _SEPARATORS.sub("", text)
    international = False
    if digits.startswith("+"):
        if not digits.startswith("+86"):
            raise NumberError(f"{raw!r} is not a Chinese number (+86)")
        digits, international = digits[3:], True
    elif digits.startswith("0086"):
        digits, international = digits[4:], True
    elif digits.startswith("86") and len(digits) == 13 and digits[2] == "1":
        digits = digits[2:]
    if not is_ascii_digits(digits):
        raise NumberError(f"{raw!r} contains characters that are not digits 0-9")
    if international and digits[0] not in "01":
        digits = "0" + digits  # +86 21 5123 4567: the trunk 0 of the area code is left out abroad
    if len(digits) == 12 and digits.startswith("01") and digits[2] in "3456789":
        digits = digits[1:]  # a mobile presented with a trunk 0 (calls from another area)
    if digits[0] == "1":
        if len(digits) == 11 and digits[1] in "3456789":
            return digits
        raise NumberError(f"{raw!r} is not a valid mobile number (11 digits, 13x-19x)")
    if digits[0] == "0" and len(digits) > 1:
        code_len = 3 if digits[1] in "12" else 4  # 010, 02x; else 0xxx
        subscriber = digits[code_len:]
        if digits[1] == "0" or len(subscriber) not in (7, 8) or subscriber[0] in "01" \
                or (code_len == 3 and len(subscriber) != 8):
            raise NumberError(f"{raw!r} is not a valid landline number (area code + 7-8 digits)")
        return digits
    if len(digits) in (7, 8):
        raise NumberError(f"{raw!r} is a landline number without its area code")
    raise NumberError(f"{raw!r} is not a subscriber phone number")


def caller_number(raw: str) -> str:
    """A caller id as Asterisk gives it (`13800000001`, `+8613800000001`, `"张三" <1380...>`,
    `anonymous`) in the same form as `normalise_number`, or "" when it is not a subscriber number."""
    m = _ANGLE.search(raw or "")
    try:
        return normalise_number(m.group(1) if m else raw or "")
    except NumberError:
        return ""
