"""Where a callee lives (province, city) and the time zone they live by.

Two sources, the upload's own column first (城市/省份/所在地 …: what the person or the CRM
said), else the number itself: libphonenumber's Chinese geocoder (the `phonenumbers`
package) knows the 归属地 of every mobile prefix and landline area code. The place names
the upload may write ("广东深圳", "深圳市", "广东省深圳市", "深圳") are matched against the
names that geocoder itself emits — no hand-kept city table — so a city the column names
and a city the number gives compare equal.

Time zone: China is officially one zone (Asia/Shanghai, and libphonenumber says so for
every Chinese number), but Xinjiang lives on Asia/Urumqi (UTC+6) — 09:30 in Beijing is
07:30 there. The dialer evaluates the legal window in Beijing time and the courtesy
window in the callee's own zone (telephony.compliance.eligibility.check_for_callee).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import geocoder

BEIJING_ZONE = "Asia/Shanghai"
# The one province whose people keep another clock than Beijing's (see the module docstring).
LOCAL_ZONES = {"新疆": "Asia/Urumqi"}

SOURCE_COLUMN = "column"
SOURCE_NUMBER = "number"
# A lead the back-fill (bot.leads.locate) looked up and the geocoder could not place: its
# region stays empty (Beijing time), marked so it is not decrypted again on every pass.
SOURCE_UNKNOWN = "unknown"

# Provinces that are not "…省": municipalities and autonomous regions, short name → full name
# as the geocoder writes them at the start of a description ("新疆乌鲁木齐市", "上海市").
_NON_PROVINCE_PREFIXES = (
    ("北京", ("北京市", "北京")),
    ("上海", ("上海市", "上海")),
    ("天津", ("天津市", "天津")),
    ("重庆", ("重庆市", "重庆")),
    ("内蒙古", ("内蒙古自治区", "内蒙古")),
    ("广西", ("广西壮族自治区", "广西")),
    ("新疆", ("新疆维吾尔自治区", "新疆")),
    ("宁夏", ("宁夏回族自治区", "宁夏")),
    ("西藏", ("西藏自治区", "西藏")),
)
MUNICIPALITIES = ("北京", "上海", "天津", "重庆")
_CITY_SUFFIX = re.compile(r"(市|地区|盟|自治州)$")


@dataclass(frozen=True)
class Region:
    province: str  # short name: 广东, 新疆, 上海
    city: str | None  # as the geocoder writes it: 深圳市, 乌鲁木齐市, 上海市; None if only the province is known
    source: str = SOURCE_NUMBER

    @property
    def timezone(self) -> str:
        return LOCAL_ZONES.get(self.province, BEIJING_ZONE)

    @property
    def label(self) -> str:
        """归属地 as shown: 广东 深圳市, 上海市, 新疆."""
        if self.province in MUNICIPALITIES:
            return self.city or f"{self.province}市"
        return f"{self.province} {self.city}" if self.city else self.province


def timezone_of(province: str | None) -> str:
    return LOCAL_ZONES.get(province or "", BEIJING_ZONE)


@dataclass(frozen=True)
class _Gazetteer:
    provinces: tuple[tuple[str, str], ...]  # (spelling, short name), longest spelling first
    cities: dict[str, tuple[str, ...]]  # short province → its cities (geocoder spelling)


def _split_province(text: str, provinces: tuple[tuple[str, str], ...]) -> tuple[str | None, str]:
    for spelling, short in provinces:
        if text.startswith(spelling):
            return short, text[len(spelling) :]
    return None, text


@lru_cache(maxsize=1)
def _gazetteer() -> _Gazetteer:
    """Every Chinese place the geocoder can name, split into (province, city)."""
    from phonenumbers.geodata import GEOCODE_DATA  # the package's own table: 382 Chinese places

    descriptions = {v["zh"] for k, v in GEOCODE_DATA.items() if k.startswith("86") and "zh" in v}
    spellings: dict[str, str] = {}
    for short, names in _NON_PROVINCE_PREFIXES:
        for name in names:
            spellings[name] = short
    for text in descriptions:
        head = text.split("省", 1)
        if len(head) == 2 and head[0] and not any(text.startswith(n) for n, _ in _NON_PROVINCE_PREFIXES):
            spellings[head[0] + "省"] = head[0]
            spellings[head[0]] = head[0]
    provinces = tuple(sorted(spellings.items(), key=lambda item: -len(item[0])))
    cities: dict[str, set[str]] = {}
    for text in descriptions:
        province, rest = _split_province(text, provinces)
        if province is None:
            continue
        if province in MUNICIPALITIES:
            rest = f"{province}市"
        rest = rest.split("、", 1)[0]
        if rest:
            cities.setdefault(province, set()).add(rest)
    # The longest spelling of a city first (乌兰察布市 before 乌兰察布): the canonical one.
    return _Gazetteer(provinces, {p: tuple(sorted(c, key=lambda s: (-len(s), s))) for p, c in cities.items()})


def _city_key(name: str) -> str:
    return _CITY_SUFFIX.sub("", name) or name


def _find_city(text: str, province: str | None, gazetteer: _Gazetteer) -> tuple[str, str] | None:
    """(province, city) for a city name alone or in its province; None if unknown or ambiguous."""
    key = _city_key(text)
    if len(key) < 2:
        return None
    pool = [province] if province else list(gazetteer.cities)
    found: dict[str, tuple[str, str]] = {}
    for short in pool:
        for city in gazetteer.cities.get(short, ()):
            if city == text or _city_key(city) == key or city.startswith(key):
                canonical = _canonical_city(short, city, gazetteer)
                found.setdefault(f"{short}/{canonical}", (short, canonical))
    if not found and text.endswith("州") and len(text) > 2:  # 大理州 for 大理白族自治州
        return _find_city(text[:-1], province, gazetteer)
    return next(iter(found.values())) if len(found) == 1 else None


def _canonical_city(province: str, city: str, gazetteer: _Gazetteer) -> str:
    key = _city_key(city)
    for other in gazetteer.cities[province]:  # longest first
        if _city_key(other) == key:
            return other
    return city


def _clean(text: object) -> str:
    value = unicodedata.normalize("NFKC", str(text or "")).strip()
    return re.sub(r"[\s·\-/,，]+", "", value)


def parse_place(province_text: object = None, city_text: object = None) -> Region | None:
    """The region an upload's columns name, or None when they name no place the geocoder knows
    (the caller falls back to the number and reports the row). Either column may hold the
    whole place ("广东深圳", "广东省深圳市"); a city alone is looked up across provinces."""
    gazetteer = _gazetteer()
    province_clean, city_clean = _clean(province_text), _clean(city_text)
    province: str | None = None
    if province_clean:
        province, rest = _split_province(province_clean, gazetteer.provinces)
        if province is None:
            if not city_clean:  # a 省份 column holding a city ("深圳")
                city_clean = province_clean
            else:
                return None
        elif rest and not city_clean:
            city_clean = rest
    if city_clean:
        named, rest = _split_province(city_clean, gazetteer.provinces)
        if named is not None:
            if province is not None and named != province:
                return None  # the two columns disagree: trust neither
            province = named
            if named in MUNICIPALITIES:
                return Region(named, f"{named}市", SOURCE_COLUMN)
            if not rest:
                return Region(named, None, SOURCE_COLUMN)
            city_clean = rest
        found = _find_city(city_clean, province, gazetteer)
        if found is None:
            return None
        return Region(found[0], found[1], SOURCE_COLUMN)
    if province is None:
        return None
    return Region(province, f"{province}市" if province in MUNICIPALITIES else None, SOURCE_COLUMN)


def region_of_number(number: str) -> Region | None:
    """The 归属地 of a national-form number (13812345678, 02161234567), from the geocoder.
    Mobiles are looked up by their first 7 digits (what the geocoder keys them on), cached."""
    if number.startswith("1") and len(number) == 11:
        return _region_of_prefix(number[:7])
    return _region_of_full(number)


@lru_cache(maxsize=8192)
def _region_of_prefix(prefix: str) -> Region | None:
    return _region_of_full(prefix + "0000")


def _region_of_full(number: str) -> Region | None:
    try:
        parsed = phonenumbers.parse(number, "CN")
    except phonenumbers.NumberParseException:
        return None
    description = geocoder.description_for_number(parsed, "zh")
    if not description:
        return None
    gazetteer = _gazetteer()
    province, rest = _split_province(description, gazetteer.provinces)
    if province is None:
        return None
    if province in MUNICIPALITIES:
        return Region(province, f"{province}市", SOURCE_NUMBER)
    rest = rest.split("、", 1)[0]
    return Region(province, _canonical_city(province, rest, gazetteer) if rest else None, SOURCE_NUMBER)


def resolve_region(number: str, province_text: object = None, city_text: object = None) -> tuple[Region | None, bool]:
    """The lead's region: its columns when they name a known place, else its number.
    Returns (region, column_unusable): the flag says a filled column named no known place,
    so the upload can report the row (its region then comes from the number)."""
    filled = bool(_clean(province_text) or _clean(city_text))
    if filled:
        region = parse_place(province_text, city_text)
        if region is not None:
            if region.city is None:  # the column gave the province only: the number may name the city
                from_number = region_of_number(number)
                if from_number is not None and from_number.province == region.province:
                    return Region(region.province, from_number.city, SOURCE_COLUMN), False
            return region, False
    return region_of_number(number), filled
