"""Phone normalisation and PII handling (no database)."""
from __future__ import annotations

import os
import stat

import pytest

from bot.core.errors import UserError
from bot.core.phone import Phone, PhoneProblem, normalise_phone
from bot.core.pii import PhoneKeyring, load_secret, mask_digit_runs, mask_phone


@pytest.mark.parametrize("raw, number, line_type", [
    ("13812345678", "13812345678", "mobile"),
    (" +86 138-1234-5678 ", "13812345678", "mobile"),
    ("0086 138 1234 5678", "13812345678", "mobile"),
    ("８６１３８１２３４５６７８", "13812345678", "mobile"),
    ("１３８１２３４５６７８", "13812345678", "mobile"),
    ("＋８６　１３８－１２３４－５６７８", "13812345678", "mobile"),
    ("(138)1234.5678", "13812345678", "mobile"),
    ("'13812345678", "13812345678", "mobile"),
    (13812345678, "13812345678", "mobile"),
    (13812345678.0, "13812345678", "mobile"),
    ("13812345678.0", "13812345678", "mobile"),
    ("1.3812345678E+10", "13812345678", "mobile"),
    (8613812345678, "13812345678", "mobile"),
    ("19912345678", "19912345678", "mobile"),
    ("010-88886666", "01088886666", "landline"),
    ("(021) 6234 5678", "02162345678", "landline"),
    ("0755-1234567", "07551234567", "landline"),
])
def test_numbers_that_normalise(raw, number, line_type):
    assert normalise_phone(raw) == Phone(number, line_type)


@pytest.mark.parametrize("raw, reason", [
    (None, "phone_missing"), ("  ", "phone_missing"),
    ("1.38E+10", "phone_scientific_notation"), ("1.38123E+10", "phone_scientific_notation"),
    ("75512345678", "phone_leading_zero_lost"), ("1088886666", "phone_leading_zero_lost"),
    ("4008001234", "phone_service_number"), ("95588", "phone_service_number"),
    ("12345678901", "phone_invalid"), ("1381234567", "phone_invalid"), ("138123456789", "phone_invalid"),
    ("13812345678 转 123", "phone_invalid"), ("abc", "phone_invalid"), (13812345678.5, "phone_invalid"),
    ("+1 415 555 0100", "phone_foreign"),
    ("13812345678,13912345678", "phone_multiple"), ("138 1234 5678 / 139 1234 5678", "phone_multiple"),
    ("١٣٨١٢٣٤٥٦٧٨", "phone_invalid"),  # Arabic-Indic digits are not silently accepted
])
def test_numbers_that_are_refused_with_a_reason(raw, reason):
    result = normalise_phone(raw)
    assert isinstance(result, PhoneProblem) and result.reason == reason and result.message


@pytest.mark.parametrize("raw, masked", [("13812345678", "138****5678"), ("01088886666", "010****6666"),
                                         ("0755123456", "07*****456"), ("12", "**")])
def test_mask_phone(raw, masked):
    assert mask_phone(raw) == masked


def test_mask_digit_runs_keeps_dates_readable():
    assert mask_digit_runs("call 13812345678 or 139 1234 5678 on 2024-05-01 10:00") == \
        "call 138****5678 or 139****5678 on 2024-05-01 10:00"


def test_encryption_round_trip_is_randomised_and_keyed():
    ring = PhoneKeyring.from_secret(b"a" * 32)
    first, second = ring.encrypt_phone("13812345678"), ring.encrypt_phone("13812345678")
    assert first != second and b"13812345678" not in first
    assert ring.decrypt_phone(first) == ring.decrypt_phone(second) == "13812345678"
    other = PhoneKeyring.from_secret(b"b" * 32)
    with pytest.raises(UserError, match="secret key differs"):
        other.decrypt_phone(first)
    assert ring.hash_phone("13812345678") == ring.hash_phone("13812345678") != other.hash_phone("13812345678")
    assert len(ring.hash_phone("13812345678")) == 64


def test_short_secret_is_refused():
    with pytest.raises(UserError, match="too short"):
        PhoneKeyring.from_secret(b"short")


def test_key_file_is_generated_once_with_a_notice(tmp_path, capsys):
    key_file = tmp_path / "data" / "secret.key"
    # Its own empty database: the session's default one may already hold data another test wrote.
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    first = load_secret(None, key_file, database=empty)
    notice = capsys.readouterr().err
    assert "generated a new secret key" in notice and str(key_file) in notice
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert load_secret(None, key_file, database=empty) == first and capsys.readouterr().err == ""
    assert load_secret("from-settings", key_file) == b"from-settings"


def test_empty_key_file_is_an_error_not_a_new_key(tmp_path):
    key_file = tmp_path / "secret.key"
    key_file.write_text("")
    with pytest.raises(UserError, match="empty"):
        load_secret(None, key_file)


def test_phone_hash_is_hmac_sha256_of_the_number():
    import hashlib
    import hmac

    derived = PhoneKeyring.from_secret(b"s" * 16)
    long_key = PhoneKeyring(derived.encryption_key, b"a hash key longer than one SHA-256 block (64 bytes) is hashed first")
    for ring in (derived, long_key):
        for number in ("13812345678", "01088886666"):
            assert ring.hash_phone(number) == hmac.new(ring.hash_key, number.encode(), hashlib.sha256).hexdigest()


def test_bulk_encryptor_blobs_decrypt_and_never_reuse_a_nonce():
    ring = PhoneKeyring.from_secret(b"s" * 16)
    encrypt = ring.bulk_encryptor().encrypt
    blobs = [encrypt(f"1381234{i:04d}") for i in range(10_000)]  # more than one batch of nonces
    assert [ring.decrypt_phone(blob) for blob in blobs[:50]] == [f"1381234{i:04d}" for i in range(50)]
    assert ring.decrypt_text(encrypt("张三,备注")) == "张三,备注"
    assert len({blob[1:13] for blob in blobs}) == len(blobs)
