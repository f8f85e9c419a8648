"""How local the caller number looks to the callee, and what that does to pickup.

People pick up a call from their own city or province more often than one from far away
(the reason caller-number pools exist). The simulator models it modestly: with a caller
number from the callee's province the pack's answer probability is multiplied by
LOCAL_PICKUP_FACTOR, from another province by NON_LOCAL_PICKUP_FACTOR; without a caller
number (no pool: the trunk's default caller id) nothing changes. Both 归属地 come from
libphonenumber's geocoder ("江苏省连云港市"): the same text is the same city; the same first
two characters the same province (no two provinces share them: 黑龙江, 内蒙古 …).
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers import geocoder

LOCAL_PICKUP_FACTOR = 1.15
NON_LOCAL_PICKUP_FACTOR = 0.8

CITY, PROVINCE, OTHER = "city", "province", "other"


@lru_cache(maxsize=65536)
def _place(number: str) -> str:
    key = number[:7] + "0000" if number.startswith("1") and len(number) == 11 else number
    try:
        return geocoder.description_for_number(phonenumbers.parse(key, "CN"), "zh")
    except phonenumbers.NumberParseException:
        return ""


def locality(callee: str, caller: str | None) -> str | None:
    """city | province | other; None when there is no caller number or a place is unknown."""
    if not caller:
        return None
    callee_place, caller_place = _place(callee), _place(caller)
    if not callee_place or not caller_place:
        return None
    if callee_place == caller_place:
        return CITY
    return PROVINCE if callee_place[:2] == caller_place[:2] else OTHER


def pickup_factor(callee: str, caller: str | None) -> float:
    match = locality(callee, caller)
    if match is None:
        return 1.0
    return NON_LOCAL_PICKUP_FACTOR if match == OTHER else LOCAL_PICKUP_FACTOR
