"""Mainland China phone numbers as they arrive from CRMs and Excel, normalised or refused with a reason.

Accepted: mobiles `1[3-9]` + 9 digits, and landlines with their area code (flagged, since
outbound robots mostly reach mobiles). Everything else gets a reason code a person can act on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MOBILE = "mobile"
LANDLINE = "landline"

# Full-width digits and the separators people type around numbers.
_TRANSLATE = str.maketrans(
    {
        **{chr(0xFF10 + i): str(i) for i in range(10)},
        "＋": "+",
        "（": "(",
        "）": ")",
        "－": "-",
        "—": "-",
        "–": "-",
        "　": " ",
    }
)
_LIST_SEPARATORS = re.compile(r"[,;，；、|/]")
_SEPARATORS = re.compile(r"[\s\-().·]+")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
# 010 and 02X are followed by 8 digits; other area codes (0XXX) by 7 or 8.
_LANDLINE = re.compile(r"0(?:10|2[0-9])[0-9]{8}|0[3-9][0-9]{2}[0-9]{7,8}")
_SCIENTIFIC = re.compile(r"^([0-9]+)(?:\.([0-9]+))?[eE]\+?([0-9]+)$")
_EXCEL_FLOAT = re.compile(r"^([0-9]+)\.0+$")
_SERVICE = re.compile(r"(?:400|800)[0-9]{7}|95[0-9]{3,6}|1[0-2][0-9]{3}")


@dataclass(frozen=True)
class Phone:
    number: str  # digits only, national form: 13812345678 or 01088886666
    line_type: str  # mobile | landline


@dataclass(frozen=True)
class PhoneProblem:
    reason: str  # a stable code for reports: phone_missing, phone_invalid, …
    message: str  # what is wrong and what to do (the caller masks digits before showing it)


def normalise_phone(raw: object) -> Phone | PhoneProblem:
    """The number in `raw` (a cell: text, int or float) in national form, or why there is none."""
    if raw is None:
        return PhoneProblem("phone_missing", "the phone cell is empty")
    if isinstance(raw, str) and len(raw) == 11 and _MOBILE.fullmatch(raw):
        return Phone(raw, MOBILE)  # the common clean case, kept cheap for million-row files
    if isinstance(raw, float):
        if not raw.is_integer():
            return PhoneProblem("phone_invalid", "the phone cell holds a fraction, not a number")
        raw = str(int(raw))
    elif isinstance(raw, int):
        raw = str(raw)
    text = str(raw).translate(_TRANSLATE).strip()
    if not text:
        return PhoneProblem("phone_missing", "the phone cell is empty")
    # Excel: "13812345678.0" (a number column exported as text) and "1.38123E+10".
    float_match = _EXCEL_FLOAT.match(text)
    if float_match:
        text = float_match.group(1)
    sci = _SCIENTIFIC.match(text)
    if sci:
        return _from_scientific(text, sci)
    if text.startswith("'"):  # Excel's "keep as text" apostrophe
        text = text[1:]
    if len([part for part in _LIST_SEPARATORS.split(text) if sum(ch.isdigit() for ch in part) >= 7]) > 1:
        return PhoneProblem("phone_multiple", "the phone cell holds more than one number; put one number per row")
    digits = _SEPARATORS.sub("", text)
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13 and _MOBILE.fullmatch(digits[2:]):
        digits = digits[2:]  # +86 lost its "+" (a number column in Excel)
    if digits.startswith("+"):
        return PhoneProblem("phone_foreign", "a non-mainland country code; only +86 numbers can be called")
    if not (digits.isascii() and digits.isdigit()):
        return PhoneProblem(
            "phone_invalid",
            "the phone cell contains letters or symbols (extension? note?); keep only the number in this column",
        )
    return _classify_digits(digits)


def _classify_digits(digits: str) -> Phone | PhoneProblem:
    if _MOBILE.fullmatch(digits):
        return Phone(digits, MOBILE)
    if _LANDLINE.fullmatch(digits):
        return Phone(digits, LANDLINE)
    if _SERVICE.fullmatch(digits):
        return PhoneProblem("phone_service_number", "a service/hotline number (400/800/95xxx), not a person")
    if digits[0] != "0" and _LANDLINE.fullmatch("0" + digits):
        return PhoneProblem(
            "phone_leading_zero_lost",
            "looks like a landline whose leading 0 was dropped "
            "(Excel number column); format the column as text and re-export",
        )
    if digits.startswith("1") and len(digits) == 11:
        return PhoneProblem("phone_invalid", "11 digits but not a mainland mobile prefix (13x-19x)")
    return PhoneProblem(
        "phone_invalid",
        f"{len(digits)} digits: neither a mobile (11 digits, 1[3-9]…) nor a landline with area code (0…)",
    )


def _from_scientific(text: str, match: re.Match) -> Phone | PhoneProblem:
    whole, fraction, exponent = match.group(1), match.group(2) or "", int(match.group(3))
    if len(fraction) > exponent:
        return PhoneProblem("phone_invalid", f"{text!r} is not a whole number")
    if exponent > len(fraction):
        # 1.38E+10: the digits after the shown ones were replaced by zeros and cannot be recovered.
        return PhoneProblem(
            "phone_scientific_notation",
            f"Excel turned the number into {text}, the last digits are "
            "lost; format the column as text in Excel and export again",
        )
    digits = whole + fraction
    return _classify_digits(digits)
