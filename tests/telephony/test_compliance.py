"""The compliance policy profile and the per-dial eligibility check (pure: no database, no clock)."""
from __future__ import annotations

import random
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from bot.core.errors import UserError
from telephony.compliance.eligibility import Attempt, DncState, check_eligibility
from telephony.compliance.policy import (PROFILES_DIR, default_policy, load_profile, parse_policy, read_document,
                                         sign_profile, tighten)

SH = ZoneInfo("Asia/Shanghai")
UTC = timezone.utc
POLICY = load_profile()


def sh(*args) -> datetime:
    """A moment given in Shanghai wall time."""
    return datetime(*args, tzinfo=SH)


def check(now, attempts=(), **kwargs):
    return check_eligibility(POLICY, now=now, attempts=attempts, **kwargs)


# ---- windows and the hard block ----------------------------------------------------------------------

@pytest.mark.parametrize("wall, allowed, reason, earliest", [
    ((2025, 3, 3, 10, 0), True, "ok", (2025, 3, 3, 10, 0)),
    ((2025, 3, 3, 9, 30), True, "ok", (2025, 3, 3, 9, 30)),            # window start is inclusive
    ((2025, 3, 3, 11, 59, 59), True, "ok", (2025, 3, 3, 11, 59, 59)),
    ((2025, 3, 3, 12, 0), False, "outside_window", (2025, 3, 3, 14, 0)),  # end is exclusive; lunch break
    ((2025, 3, 3, 13, 15), False, "outside_window", (2025, 3, 3, 14, 0)),
    ((2025, 3, 3, 19, 59), True, "ok", (2025, 3, 3, 19, 59)),
    ((2025, 3, 3, 20, 0), False, "outside_window", (2025, 3, 4, 9, 30)),
    ((2025, 3, 3, 20, 59), False, "outside_window", (2025, 3, 4, 9, 30)),
    ((2025, 3, 3, 21, 0), False, "hard_block", (2025, 3, 4, 9, 30)),
    ((2025, 3, 3, 23, 30), False, "hard_block", (2025, 3, 4, 9, 30)),
    ((2025, 3, 4, 3, 0), False, "hard_block", (2025, 3, 4, 9, 30)),
    ((2025, 3, 4, 8, 59), False, "hard_block", (2025, 3, 4, 9, 30)),
    ((2025, 3, 4, 9, 0), False, "outside_window", (2025, 3, 4, 9, 30)),
])
def test_windows_in_shanghai(wall, allowed, reason, earliest):
    result = check(sh(*wall))
    assert (result.allowed, result.reason, result.earliest) == (allowed, reason, sh(*earliest))


def test_earliest_is_returned_in_utc():
    result = check(sh(2025, 3, 3, 12, 30))
    assert result.earliest.tzinfo == UTC and result.earliest == datetime(2025, 3, 3, 6, 0, tzinfo=UTC)


def test_naive_now_is_refused():
    with pytest.raises(ValueError):
        check(datetime(2025, 3, 3, 10, 0))


# ---- holidays -------------------------------------------------------------------------------------------

def test_no_calls_on_a_holiday_by_default():
    holidays = {date(2025, 10, d) for d in range(1, 9)}  # National Day week
    result = check(sh(2025, 10, 3, 10, 0), holidays=holidays)
    assert (result.allowed, result.reason, result.earliest) == (False, "holiday", sh(2025, 10, 9, 9, 30))


def test_evening_before_a_holiday_skips_to_after_it():
    result = check(sh(2025, 9, 30, 20, 30), holidays={date(2025, 10, 1), date(2025, 10, 2)})
    assert result.earliest == sh(2025, 10, 3, 9, 30)


def test_holiday_calendar_is_in_the_callee_zone():
    # 2025-10-01 01:00 UTC is 09:00 in Shanghai (a holiday) but still 2025-09-30 in New York.
    holidays = {date(2025, 10, 1)}
    shanghai = check(datetime(2025, 10, 1, 2, 0, tzinfo=UTC), holidays=holidays)
    assert shanghai.reason == "holiday"
    new_york = check(datetime(2025, 9, 30, 14, 0, tzinfo=UTC), holidays=holidays, timezone_name="America/New_York")
    assert new_york.allowed  # 10:00 in New York on 30 September


def test_holiday_windows_from_a_signed_profile(tmp_path):
    key = b"admin-signing-key"
    document = read_document(PROFILES_DIR / "CN_INSURANCE_DEFAULT.yml")
    document.update(profile="CN_HOLIDAY_MORNINGS", holiday_windows=["10:00-11:00"])
    path = tmp_path / "holiday.yml"
    path.write_text(yaml.safe_dump(sign_profile(document, key, "admin"), allow_unicode=True), encoding="utf-8")
    policy = load_profile(str(path), signing_key=key)
    result = check_eligibility(policy, now=sh(2025, 10, 1, 9, 45), holidays={date(2025, 10, 1)})
    assert (result.allowed, result.earliest) == (False, sh(2025, 10, 1, 10, 0))
    assert check_eligibility(policy, now=sh(2025, 10, 1, 10, 30), holidays={date(2025, 10, 1)}).allowed


# ---- time zones, DST and DST-free --------------------------------------------------------------------

def test_urumqi_local_time_is_used():
    # 10:00 in Beijing is 08:00 in Asia/Urumqi (UTC+6): hard block there.
    result = check(sh(2025, 3, 3, 10, 0), timezone_name="Asia/Urumqi")
    assert (result.allowed, result.reason) == (False, "hard_block")
    assert result.earliest == datetime(2025, 3, 3, 9, 30, tzinfo=ZoneInfo("Asia/Urumqi"))


def test_half_hour_offset_zone():
    kolkata = ZoneInfo("Asia/Kolkata")
    assert check(datetime(2025, 3, 3, 9, 30, tzinfo=kolkata), timezone_name="Asia/Kolkata").allowed
    assert check(datetime(2025, 3, 3, 9, 29, tzinfo=kolkata), timezone_name="Asia/Kolkata").earliest == \
        datetime(2025, 3, 3, 9, 30, tzinfo=kolkata)


def test_window_after_spring_forward():
    ny = ZoneInfo("America/New_York")
    # Saturday 21:30 EST; clocks jump at 02:00 Sunday; next opening is Sunday 09:30 EDT (13:30 UTC).
    result = check(datetime(2025, 3, 8, 21, 30, tzinfo=ny), timezone_name="America/New_York")
    assert result.earliest == datetime(2025, 3, 9, 13, 30, tzinfo=UTC)


def test_window_after_fall_back():
    ny = ZoneInfo("America/New_York")
    result = check(datetime(2025, 11, 1, 22, 0, tzinfo=ny), timezone_name="America/New_York")
    assert result.earliest == datetime(2025, 11, 2, 14, 30, tzinfo=UTC)  # 09:30 EST


def test_cap_expiry_across_a_dst_change_stays_24_hours_of_real_time():
    ny = ZoneInfo("America/New_York")
    attempt = Attempt(datetime(2025, 3, 8, 10, 0, tzinfo=ny), "no_answer")
    result = check(datetime(2025, 3, 9, 9, 45, tzinfo=ny), [attempt], timezone_name="America/New_York")
    # 24 h after 10:00 EST is 11:00 EDT (one wall-clock hour later).
    assert (result.reason, result.earliest) == ("cap_24h", datetime(2025, 3, 9, 11, 0, tzinfo=ny))


def test_lord_howe_half_hour_dst():
    zone = ZoneInfo("Australia/Lord_Howe")
    assert check(datetime(2025, 1, 6, 10, 0, tzinfo=zone), timezone_name="Australia/Lord_Howe").allowed
    assert not check(datetime(2025, 1, 6, 21, 15, tzinfo=zone), timezone_name="Australia/Lord_Howe").allowed


# ---- caps across campaigns --------------------------------------------------------------------------

def test_one_attempt_per_rolling_24_hours():
    first = Attempt(sh(2025, 3, 3, 10, 0), "no_answer", campaign="A")
    result = check(sh(2025, 3, 3, 15, 0), [first])
    assert (result.allowed, result.reason, result.earliest) == (False, "cap_24h", sh(2025, 3, 4, 10, 0))
    assert check(sh(2025, 3, 4, 10, 0), [first]).allowed  # exactly 24 h later the attempt has left the window


def test_caps_count_attempts_of_every_campaign():
    attempts = [Attempt(sh(2025, 3, d, 10, 0), "no_answer" if d % 2 else "answered", campaign=c)
                for d, c in ((1, "A"), (2, "B"), (4, "C"))]
    result = check(sh(2025, 3, 6, 10, 0), attempts)
    assert (result.reason, result.earliest) == ("cap_7d", sh(2025, 3, 8, 10, 0))


def test_thirty_day_cap():
    attempts = [Attempt(sh(2025, 3, 1, 10, 0) + timedelta(days=3 * i), "answered", campaign=f"c{i}")
                for i in range(6)]  # 1, 4, 7, 10, 13, 16 March
    result = check(sh(2025, 3, 25, 10, 0), attempts)
    assert (result.reason, result.earliest) == ("cap_30d", sh(2025, 3, 31, 10, 0))


def test_cap_that_frees_at_night_waits_for_the_window():
    attempt = Attempt(sh(2025, 3, 3, 20, 30), "answered")  # a callback the callee asked for
    result = check(sh(2025, 3, 4, 10, 0), [attempt])
    assert (result.reason, result.earliest) == ("cap_24h", sh(2025, 3, 5, 9, 30))


def test_history_order_does_not_matter():
    attempts = [Attempt(sh(2025, 3, d, 10, 0), "no_answer") for d in (5, 1, 3)]
    assert check(sh(2025, 3, 20, 10, 0), attempts) == check(sh(2025, 3, 20, 10, 0), sorted(attempts,
                                                                                               key=lambda a: a.at))


def test_a_campaign_can_be_stricter():
    stricter = tighten(POLICY, {"caps": {"rolling_7d": 2}, "windows": ["10:00-11:30"]}, campaign="spring")
    attempts = [Attempt(sh(2025, 3, 1, 10, 0), "answered"), Attempt(sh(2025, 3, 3, 10, 0), "answered")]
    result = check_eligibility(stricter, now=sh(2025, 3, 5, 10, 0), attempts=attempts)
    assert (result.reason, result.earliest) == ("cap_7d", sh(2025, 3, 8, 10, 0))
    assert check_eligibility(stricter, now=sh(2025, 3, 20, 9, 45)).earliest == sh(2025, 3, 20, 10, 0)


# ---- cool-downs, parking, opt-outs -------------------------------------------------------------------

def test_three_consecutive_no_answers_park_seven_days():
    attempts = [Attempt(sh(2025, 3, d, 10, 0), "no_answer") for d in (1, 3, 5)]
    result = check(sh(2025, 3, 7, 10, 0), attempts)
    assert (result.reason, result.earliest) == ("parked_no_answer", sh(2025, 3, 12, 10, 0))


def test_an_answered_call_resets_the_no_answer_run():
    attempts = [Attempt(sh(2025, 3, 1, 10, 0), "no_answer"), Attempt(sh(2025, 3, 3, 10, 0), "answered"),
                Attempt(sh(2025, 3, 9, 10, 0), "line_busy"), Attempt(sh(2025, 3, 11, 10, 0), "powered_off")]
    assert check(sh(2025, 3, 13, 10, 0), attempts).allowed


def test_hard_opt_out_on_a_call_is_permanent():
    attempts = [Attempt(sh(2024, 1, 1, 10, 0), "opt_out")]
    result = check(sh(2030, 1, 1, 10, 0), attempts)
    assert (result.allowed, result.reason, result.earliest) == (False, "opted_out_on_call", None)


def test_dnc_opt_out_is_permanent():
    result = check(sh(2025, 3, 3, 10, 0), dnc=DncState(opt_out=True))
    assert (result.allowed, result.reason, result.earliest) == (False, "dnc_opt_out", None)


def test_vacant_number_is_retired():
    assert check(sh(2025, 3, 3, 10, 0), [Attempt(sh(2025, 1, 3, 10, 0), "vacant_number")]).reason == "number_retired"


def test_soft_decline_cools_down_180_days():
    attempts = [Attempt(sh(2025, 3, 3, 10, 0), "soft_decline")]
    result = check(sh(2025, 6, 1, 10, 0), attempts)
    assert (result.reason, result.earliest) == ("cooldown_soft_decline", sh(2025, 8, 30, 10, 0))


def test_dnc_soft_decline_until_its_expiry():
    result = check(sh(2025, 3, 3, 10, 0), dnc=DncState(soft_until=sh(2025, 4, 1, 22, 0)))
    assert (result.reason, result.earliest) == ("dnc_soft_decline", sh(2025, 4, 2, 9, 30))
    assert check(sh(2025, 4, 2, 10, 0), dnc=DncState(soft_until=sh(2025, 4, 1, 22, 0))).allowed


def test_busy_cools_down_seven_days():
    result = check(sh(2025, 3, 4, 10, 0), [Attempt(sh(2025, 3, 3, 10, 0), "busy")])
    assert (result.reason, result.earliest) == ("cooldown_busy", sh(2025, 3, 10, 10, 0))


# ---- callbacks the callee asked for -------------------------------------------------------------------

def test_busy_with_a_named_time_is_called_back_then_even_at_lunch():
    attempt = Attempt(sh(2025, 3, 3, 10, 0), "busy", callback_at=sh(2025, 3, 4, 12, 30))
    before = check(sh(2025, 3, 4, 10, 0), [attempt])
    assert (before.allowed, before.reason, before.earliest) == (False, "callback_pending", sh(2025, 3, 4, 12, 30))
    due = check(sh(2025, 3, 4, 12, 30), [attempt])
    assert (due.allowed, due.reason) == (True, "ok_callback")


def test_callback_may_exceed_the_daily_cap_up_to_the_ceiling():
    attempt = Attempt(sh(2025, 3, 3, 10, 0), "answered", callback_at=sh(2025, 3, 3, 20, 30))
    assert check(sh(2025, 3, 3, 20, 30), [attempt]).allowed  # 20:30 is outside the windows but in the band
    three = [Attempt(sh(2025, 3, 3, h, 0), "answered") for h in (9, 10)] + [attempt.__class__(
        sh(2025, 3, 3, 11, 0), "answered", callback_at=sh(2025, 3, 3, 15, 0))]
    result = check(sh(2025, 3, 3, 15, 0), three)
    # Three attempts today: the callback ceiling is reached (and the weekly cap, which binds longer).
    assert (result.allowed, result.reason, result.earliest) == (False, "cap_7d", sh(2025, 3, 10, 9, 30))
    two = three[1:]
    assert check(sh(2025, 3, 3, 15, 0), two).reason == "ok_callback"


def test_callback_named_inside_the_hard_block_falls_back_to_the_next_window():
    attempt = Attempt(sh(2025, 3, 3, 10, 0), "answered", callback_at=sh(2025, 3, 4, 22, 0))
    result = check(sh(2025, 3, 4, 10, 0), [attempt])
    assert (result.allowed, result.reason, result.earliest) == (False, "callback_pending", sh(2025, 3, 5, 9, 30))


def test_a_lapsed_callback_returns_to_normal_rules():
    attempt = Attempt(sh(2025, 3, 3, 10, 0), "answered", callback_at=sh(2025, 3, 4, 12, 30))
    result = check(sh(2025, 3, 4, 15, 0), [attempt])  # grace is 2 h: lapsed at 14:30
    assert result.allowed and result.reason == "ok"


def test_soft_decline_beats_a_named_time():
    attempt = Attempt(sh(2025, 3, 3, 10, 0), "soft_decline", callback_at=sh(2025, 3, 4, 10, 0))
    assert check(sh(2025, 3, 4, 10, 0), [attempt]).reason == "cooldown_soft_decline"


# ---- the earliest time is really the earliest (randomised, seeded) -----------------------------------

OUTCOMES = ["answered", "no_answer", "line_busy", "busy", "soft_decline", "powered_off", "answered"]


def _random_case(rng: random.Random):
    now = sh(2025, 3, 1, 0, 0) + timedelta(minutes=rng.randrange(0, 60 * 24 * 60))
    attempts = []
    for _ in range(rng.randrange(0, 7)):
        at = now - timedelta(minutes=rng.randrange(1, 60 * 24 * 35))
        callback = at + timedelta(minutes=rng.randrange(30, 60 * 48)) if rng.random() < 0.15 else None
        attempts.append(Attempt(at, rng.choice(OUTCOMES), campaign=rng.choice("AB"), callback_at=callback))
    attempts.sort(key=lambda a: a.at)
    holidays = {(now + timedelta(days=d)).date() for d in range(-2, 10) if rng.random() < 0.2}
    zone = rng.choice(["Asia/Shanghai", "Asia/Urumqi", "America/New_York"])
    return now, attempts, holidays, zone


@pytest.mark.parametrize("seed", range(6))
def test_earliest_is_allowed_and_one_second_before_is_not(seed):
    rng = random.Random(seed)
    for _ in range(150):
        now, attempts, holidays, zone = _random_case(rng)
        result = check(now, attempts, holidays=holidays, timezone_name=zone)
        if result.allowed:
            assert result.earliest == now
            continue
        if result.earliest is None:
            continue
        assert result.earliest > now
        at_earliest = check(result.earliest, attempts, holidays=holidays, timezone_name=zone)
        assert at_earliest.allowed, (now, attempts, holidays, zone, result, at_earliest)
        just_before = check(result.earliest - timedelta(seconds=1), attempts, holidays=holidays, timezone_name=zone)
        assert not just_before.allowed, (now, attempts, result)
        # Nothing in between is allowed either (sampled every 37 minutes over up to three days).
        probe = now + timedelta(minutes=37)
        while probe < min(result.earliest, now + timedelta(days=3)):
            assert not check(probe, attempts, holidays=holidays, timezone_name=zone).allowed, (probe, result)
            probe += timedelta(minutes=37)


# ---- the profile: stricter only, signed looser profiles, hard limits ----------------------------------

def test_default_profile_matches_design():
    policy = default_policy()
    assert policy.name == "CN_INSURANCE_DEFAULT" and policy.version >= 1
    assert policy.windows == ((9 * 3600 + 1800, 12 * 3600), (14 * 3600, 20 * 3600))
    assert {name: cap for name, _, cap in policy.caps} == {"rolling_24h": 1, "rolling_7d": 3, "rolling_30d": 6}
    assert policy.callback_band == (9 * 3600, 21 * 3600) and policy.callback_max_attempts_24h == 3
    assert policy.cooldown_seconds["soft_decline"] == 180 * 86400 and policy.cooldown_seconds["busy"] == 7 * 86400
    assert (policy.park_after_no_answers, policy.park_seconds) == (3, 7 * 86400)
    assert set(policy.opening_line) == {"institution", "ai_label", "purpose", "recording", "opt_out"}


@pytest.mark.parametrize("overrides, field", [
    ({"caps": {"rolling_24h": 2}}, "caps.rolling_24h"),
    ({"caps": {"rolling_30d": 10}}, "caps.rolling_30d"),
    ({"windows": ["08:00-12:00"]}, "windows"),
    ({"windows": ["09:30-12:30"]}, "windows"),
    ({"cooldown_days": {"soft_decline": 90}}, "cooldown_days.soft_decline"),
    ({"cooldown_days": {"busy": 1}}, "cooldown_days.busy"),
    ({"no_answer": {"park_after": 5}}, "no_answer.park_after"),
    ({"no_answer": {"park_days": 2}}, "no_answer.park_days"),
    ({"callbacks": {"max_attempts_24h": 3, "grace_minutes": 600}}, "callbacks.grace_minutes"),
    ({"holiday_windows": ["10:00-11:00"]}, "holiday_windows"),
])
def test_a_looser_campaign_override_names_the_field(overrides, field):
    with pytest.raises(UserError) as error:
        tighten(POLICY, overrides, campaign="spring")
    assert field in str(error.value) and "stricter" in str(error.value)


@pytest.mark.parametrize("overrides", [{"timezone": "UTC"}, {"profile": "X"}, {"speed": 3}])
def test_fields_a_campaign_cannot_touch(overrides):
    with pytest.raises(UserError):
        tighten(POLICY, overrides)


def test_stricter_override_keeps_everything_else():
    stricter = tighten(POLICY, {"cooldown_days": {"busy": 14}, "permanent": {"complaint": "opted_out_on_call"}})
    assert stricter.cooldown_seconds["busy"] == 14 * 86400 and stricter.cooldown_seconds["soft_decline"] == 180 * 86400
    assert check_eligibility(stricter, now=sh(2025, 3, 3, 10, 0),
                             attempts=[Attempt(sh(2025, 1, 1, 10, 0), "complaint")]).earliest is None


def _profile(tmp_path: Path, **changes) -> Path:
    document = read_document(PROFILES_DIR / "CN_INSURANCE_DEFAULT.yml")
    document.update(profile="CN_LOOSER", **changes)
    path = tmp_path / "looser.yml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


def test_looser_profile_needs_an_admin_signature(tmp_path):
    path = _profile(tmp_path, windows=["09:00-12:00", "13:30-20:30"])
    with pytest.raises(UserError, match="without a valid admin signature"):
        load_profile(str(path), signing_key=b"k" * 32)
    signed = sign_profile(read_document(path), b"k" * 32, "root")
    path.write_text(yaml.safe_dump(signed, allow_unicode=True), encoding="utf-8")
    assert load_profile(str(path), signing_key=b"k" * 32).windows[0] == (9 * 3600, 12 * 3600)
    with pytest.raises(UserError, match="signature"):
        load_profile(str(path), signing_key=b"x" * 32)  # someone else's key


def test_tampering_after_signing_is_detected(tmp_path):
    path = _profile(tmp_path, windows=["09:00-12:00", "13:30-20:30"])
    signed = sign_profile(read_document(path), b"k" * 32, "root")
    signed["caps"]["rolling_7d"] = 5
    path.write_text(yaml.safe_dump(signed, allow_unicode=True), encoding="utf-8")
    with pytest.raises(UserError, match="signature"):
        load_profile(str(path), signing_key=b"k" * 32)


@pytest.mark.parametrize("changes, text", [
    ({"windows": ["09:30-12:00", "14:00-21:30"]}, "hard block"),
    ({"windows": ["08:30-12:00"]}, "hard block"),
    ({"caps": {"rolling_24h": 4, "rolling_7d": 3, "rolling_30d": 6}}, "caps.rolling_24h"),
    ({"cooldown_days": {"soft_decline": 30, "busy": 7}}, "soft_decline"),
    ({"permanent": {"vacant_number": "number_retired"}}, "opt_out"),
])
def test_hard_limits_hold_even_for_a_signed_profile(tmp_path, changes, text):
    path = _profile(tmp_path, **changes)
    signed = sign_profile(read_document(path), b"k" * 32, "root")
    path.write_text(yaml.safe_dump(signed, allow_unicode=True), encoding="utf-8")
    with pytest.raises(UserError, match=text):
        load_profile(str(path), signing_key=b"k" * 32)


@pytest.mark.parametrize("document, text", [
    ({"windows": ["9:30 to 12"]}, "time span"),
    ({"windows": ["12:00-09:00"]}, "ends before"),
    ({"windows": ["09:30-12:00", "11:00-13:00"]}, "overlap"),
    ({"timezone": "Mars/Olympus"}, "time zone"),
    ({"caps": {"rolling_1h": 1}}, "unknown"),
])
def test_broken_profiles_say_what_is_wrong(document, text):
    base = read_document(PROFILES_DIR / "CN_INSURANCE_DEFAULT.yml")
    base.update(document)
    with pytest.raises(UserError, match=text):
        parse_policy(base, "test.yml")


def test_unknown_profile_lists_the_built_in_ones():
    with pytest.raises(UserError) as error:
        load_profile("NO_SUCH_PROFILE")
    assert "CN_INSURANCE_DEFAULT" in " ".join(error.value.details)


def test_telephony_compliance_does_not_import_the_cli_or_database():
    code = ("import sys, telephony.compliance; "
            "bad = [m for m in sys.modules if m.startswith(('bot.cli', 'bot.core.db', 'bot.leads', 'sqlalchemy'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stdout + result.stderr
