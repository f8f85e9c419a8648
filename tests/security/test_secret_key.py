"""Issue 13, High 1: a changed or missing secret key can never silently disable do-not-call and dedupe.

The database records the key's fingerprint (never the key) at first use; a different key stops every
command that reads or writes numbers with one error; no key file is generated over stored numbers;
`waihu keys rotate` moves every encrypted phone and phone hash to a new key in one transaction.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import delete, select
from sqlalchemy.types import LargeBinary
from typer.testing import CliRunner

from bot.experiments.conversion_models import ConversionReject
from bot.campaigns.models import CallAttempt
from bot.campaigns.service import create_campaign
from bot.cli.app import app
from bot.core.db.engine import create_database_engine, session_scope
from bot.core.db.migrate import upgrade
from bot.core.errors import UserError
from bot.core.keys import (
    KEYED_COLUMNS,
    KeyMismatch,
    SecretKeyFingerprint,
    adopt_key,
    require_key_matches,
    rotate_keyed_data,
    stored_fingerprint,
)
from bot.core.pii import PhoneKeyring, _checked_keyring, keyring_from_settings, load_secret, pending_key_file
from bot.dnc.models import SCOPE_OPT_OUT, DoNotCall
from bot.dnc.service import add_entry, dnc_state
from bot.leads.models import Lead, LeadReject
from bot.leads.service import UploadRequest, upload_lead_pack
from bot.schema import Base
from bot.webhooks.models import WebhookEndpoint
from bot.webhooks.service import add_endpoint
from bot.wecom.models import SmsOutbox, WeComInvite
from tests.db_fixtures import TEST_SECRET

OTHER_SECRET = b"another-secret-key-0123456789"
LEAD, OTHER_LEAD, LISTED = "13812345678", "13912345678", "13700000001"


@pytest.fixture(autouse=True)
def fresh_keyring_cache():
    _checked_keyring.cache_clear()
    yield
    _checked_keyring.cache_clear()


def lead_csv(path: Path, *phones: str, consent: str = "2024-05-01 10:00") -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["手机号", "姓名", "同意时间"], *[[p, "张三", consent] for p in phones]])
    return path


def upload(engine, ring, path: Path, pack: str):
    return upload_lead_pack(engine, ring, UploadRequest(path=path, pack_name=pack, uploaded_by="test"))


@pytest.fixture()
def cli(db, database_url, tmp_path, monkeypatch):
    """The CLI on the test database, with the test key in a key file (as an installation keeps it)."""
    key_file = tmp_path / "keys" / "secret.key"
    key_file.parent.mkdir(mode=0o700)
    key_file.write_text(TEST_SECRET + "\n")
    monkeypatch.delenv("WAIHU_SECRET_KEY", raising=False)
    for name, value in {"WAIHU_DATABASE_URL": database_url, "WAIHU_SECRET_KEY_FILE": str(key_file),
                        "WAIHU_DATA_DIR": str(tmp_path / "data")}.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()

    def invoke(*args: str):
        _checked_keyring.cache_clear()  # each command is its own process in real life
        result = runner.invoke(app, list(args), catch_exceptions=True)
        # `waihu` prints a UserError as one line (bot.cli.app.main); here it is the result's exception
        result.text = result.output + (str(result.exception) if isinstance(result.exception, UserError) else "")
        return result

    invoke.key_file = key_file
    return invoke


# ---- a different key is refused, loudly, before anything is read or written -----------------------------

def test_upload_with_another_key_is_refused_and_stores_nothing(db, keyring, tmp_path):
    upload(db, keyring, lead_csv(tmp_path / "a.csv", LEAD), "p1")
    other = PhoneKeyring.from_secret(OTHER_SECRET)
    with pytest.raises(KeyMismatch) as error:
        upload(db, other, lead_csv(tmp_path / "b.csv", LEAD, OTHER_LEAD), "p2")
    assert "does not match this database" in str(error.value)
    assert any("waihu keys rotate" in line for line in error.value.details)
    with session_scope(db) as session:
        assert session.execute(select(Lead.phone_hash)).scalars().all() == [keyring.hash_phone(LEAD)]


def test_dnc_check_with_a_changed_key_fails_instead_of_saying_not_listed(cli, monkeypatch):
    assert cli("dnc", "add", LEAD, "--reason", "投诉").exit_code == 0
    assert "do not call" in cli("dnc", "check", LEAD).stdout
    monkeypatch.setenv("WAIHU_SECRET_KEY", OTHER_SECRET.decode())
    for command in (["dnc", "check", LEAD], ["dnc", "add", OTHER_LEAD], ["leads", "forget", LEAD, "--yes"]):
        result = cli(*command)
        assert result.exit_code == 1, (command, result.output)
        assert "does not match this database" in result.text and "not on the do-not-call list" not in result.text


def test_first_use_records_a_fingerprint_never_the_key(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.setenv("WAIHU_DATABASE_URL", url)
    monkeypatch.setenv("WAIHU_SECRET_KEY", TEST_SECRET)
    ring = keyring_from_settings()
    engine = create_database_engine(url)
    try:
        recorded = stored_fingerprint(engine)
    finally:
        engine.dispose()
    assert recorded == ring.key_check and len(recorded) == 64
    raw = (tmp_path / "fresh.db").read_bytes()
    assert TEST_SECRET.encode() not in raw and ring.hash_key not in raw and ring.encryption_key not in raw


def test_a_database_from_before_fingerprints_is_checked_against_its_numbers(db, keyring, tmp_path):
    upload(db, keyring, lead_csv(tmp_path / "a.csv", LEAD), "p1")
    with db.begin() as conn:
        conn.execute(delete(SecretKeyFingerprint))  # as a database upgraded from revision 0007
    with pytest.raises(KeyMismatch):
        require_key_matches(db, PhoneKeyring.from_secret(OTHER_SECRET))
    assert stored_fingerprint(db) is None
    require_key_matches(db, keyring)  # its numbers decrypt and hash back: recorded
    assert stored_fingerprint(db) == keyring.key_check


def test_a_list_of_hashes_alone_cannot_prove_its_key_and_needs_adopt(db, keyring):
    with db.begin() as conn:
        conn.execute(delete(SecretKeyFingerprint))
    with session_scope(db) as session:
        add_entry(session, keyring.hash_phone(LISTED), scope=SCOPE_OPT_OUT, reason="投诉", source="import")
    with pytest.raises(UserError, match="no stored number that could prove") as error:
        require_key_matches(db, PhoneKeyring.from_secret(OTHER_SECRET))
    assert any("waihu keys adopt" in line for line in error.value.details)
    assert stored_fingerprint(db) is None
    adopt_key(db, keyring)
    require_key_matches(db, keyring)
    with pytest.raises(KeyMismatch):
        require_key_matches(db, PhoneKeyring.from_secret(OTHER_SECRET))


def test_no_key_file_is_made_over_stored_numbers(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    monkeypatch.delenv("WAIHU_SECRET_KEY", raising=False)
    monkeypatch.delenv("WAIHU_SECRET_KEY_FILE", raising=False)
    monkeypatch.delenv("WAIHU_DATABASE_URL", raising=False)
    monkeypatch.setenv("WAIHU_DATA_DIR", str(data))
    ring = keyring_from_settings()  # a fresh installation: a key is made
    key_file = data / "secret.key"
    assert key_file.exists() and "generated a new secret key" in capsys.readouterr().err
    from bot.core.db.engine import open_database

    upload(open_database(), ring, lead_csv(tmp_path / "a.csv", LEAD), "p1")
    key_file.unlink()  # lost in a redeploy
    _checked_keyring.cache_clear()
    with pytest.raises(UserError, match="no secret key") as error:
        keyring_from_settings()
    assert "leads" in str(error.value) and any("backup" in line for line in error.value.details)
    with pytest.raises(UserError, match="no secret key"):
        load_secret(None, key_file)  # the web console's path to the key
    assert not key_file.exists() and "generated" not in capsys.readouterr().err


# ---- rotation -------------------------------------------------------------------------------------------

WEBHOOK_SECRET = "whsec_a-crm-signing-secret"
UNMATCHED = "13700001111"

def seed_everything(db, ring, tmp_path) -> None:
    """A lead, a rejected row holding a number, an opt-out for a number that is no lead, a call, an SMS."""
    upload(db, ring, lead_csv(tmp_path / "a.csv", LEAD), "p1")
    upload(db, ring, lead_csv(tmp_path / "b.csv", OTHER_LEAD, consent=""), "p2")  # rejected: no consent
    with session_scope(db) as session:
        add_entry(session, ring.hash_phone(LISTED), scope=SCOPE_OPT_OUT, reason="投诉", source="manual")
        lead = session.execute(select(Lead)).scalar_one()
        campaign = create_campaign(session, name="c", packs=["p1"])
        attempt = CallAttempt(campaign_id=campaign.id, lead_id=lead.id, attempt_no=1, phone_hash=lead.phone_hash,
                              arms={}, status="completed", outcome="answered")
        session.add(attempt)
        session.flush()
        invite = WeComInvite(attempt_id=attempt.id, lead_id=lead.id, campaign_id=campaign.id, grade="A",
                             state="s1")
        session.add(invite)
        session.flush()
        session.add(SmsOutbox(invite_id=invite.id, phone_ciphertext=ring.encrypt_phone(LEAD),
                              phone_masked="138****5678", text="加微信"))
        add_endpoint(session, ring, "https://crm.example.com/hooks", ["all"], secret=WEBHOOK_SECRET)
        # A policy whose number matched no lead: its hash is kept so `leads forget` can erase it.
        session.add(ConversionReject(source="file", row_number=2, field="phone", reason="unmatched",
                                     message="no lead", phone_hash=ring.hash_phone(UNMATCHED), raw_masked="[]"))


def test_rotation_moves_every_number_and_hash_to_the_new_key(db, keyring, tmp_path):
    seed_everything(db, keyring, tmp_path)
    secret, new = keyring.rotated()
    summary = rotate_keyed_data(db, keyring, new, batch=1)  # one row per batch: the paging is exercised
    assert summary.rows == {"leads": 1, "lead_rejects": 1, "do_not_call": 1, "call_attempts": 1,
                            "wecom_sms_outbox": 1, "webhook_endpoints": 1, "conversion_rejects": 1}
    assert stored_fingerprint(db) == new.key_check != keyring.key_check
    again = PhoneKeyring.from_secret(secret)
    assert again.key_check == new.key_check
    with session_scope(db) as session:
        lead = session.execute(select(Lead)).scalar_one()
        assert new.decrypt_phone(lead.phone_ciphertext) == LEAD and lead.phone_hash == again.hash_phone(LEAD)
        reject = session.execute(select(LeadReject)).scalar_one()
        assert reject.phone_hash == again.hash_phone(OTHER_LEAD) and OTHER_LEAD in new.decrypt_text(reject.raw_ciphertext)
        assert session.execute(select(CallAttempt.phone_hash)).scalar_one() == again.hash_phone(LEAD)
        rejected = session.execute(select(ConversionReject.phone_hash)).scalar_one()
        assert rejected == again.hash_phone(UNMATCHED)
        assert new.decrypt_phone(session.execute(select(SmsOutbox.phone_ciphertext)).scalar_one()) == LEAD
        assert new.decrypt_text(session.execute(select(WebhookEndpoint.secret_ciphertext)).scalar_one()) == WEBHOOK_SECRET
        # the do-not-call list, which keeps no number, still matches the number under the new key
        assert dnc_state(session, again.hash_phone(LISTED)).opt_out
        assert not dnc_state(session, keyring.hash_phone(LISTED)).opt_out
        with pytest.raises(UserError):
            keyring.decrypt_phone(lead.phone_ciphertext)
    with pytest.raises(KeyMismatch):
        require_key_matches(db, keyring)
    # dedupe and scrub keep working after the rotation
    summary = upload(db, again, lead_csv(tmp_path / "c.csv", LEAD, LISTED), "p3")
    assert (summary.accepted, summary.duplicates, summary.dnc) == (0, 1, 1)


def test_rotation_is_all_or_nothing(db, keyring, tmp_path):
    seed_everything(db, keyring, tmp_path)
    with db.begin() as conn:  # one damaged ciphertext in a table rotated late
        conn.execute(SmsOutbox.__table__.update().values(phone_ciphertext=b"\x01" + b"\x00" * 40))
    _, new = keyring.rotated()
    with pytest.raises(UserError, match="cannot decrypt"):
        rotate_keyed_data(db, keyring, new)
    assert stored_fingerprint(db) == keyring.key_check
    with session_scope(db) as session:
        lead = session.execute(select(Lead)).scalar_one()
        assert lead.phone_hash == keyring.hash_phone(LEAD) and keyring.decrypt_phone(lead.phone_ciphertext) == LEAD
        assert session.execute(select(DoNotCall.phone_hash)).scalar_one() == keyring.hash_phone(LISTED)


def test_waihu_keys_rotate_end_to_end(cli, db, keyring, tmp_path, monkeypatch):
    assert cli("leads", "upload", str(lead_csv(tmp_path / "a.csv", LEAD)), "--pack", "p1").exit_code == 0
    assert cli("dnc", "add", LISTED, "--reason", "投诉").exit_code == 0
    result = cli("keys", "rotate", "--yes")
    assert result.exit_code == 0, result.output
    assert "rotated" in result.output and "leads 1" in result.output and "do_not_call 1" in result.output
    key_file = cli.key_file
    new_secret = key_file.read_text().strip()
    assert new_secret.startswith("waihu-k2.") and TEST_SECRET not in new_secret
    assert os.stat(key_file).st_mode & 0o077 == 0
    retired = key_file.with_name(f"secret.key.{keyring.key_check[:12]}.old")
    assert retired.read_text().strip() == TEST_SECRET and os.stat(retired).st_mode & 0o077 == 0
    assert "do not call" in cli("dnc", "check", LISTED).stdout
    status = json.loads(cli("keys", "status", "--json").stdout)
    assert status["matches"] and status["rotations"] == 1 and status["rows"]["leads"] == 1
    assert TEST_SECRET not in json.dumps(status) and new_secret not in json.dumps(status)
    again = cli("leads", "upload", str(lead_csv(tmp_path / "b.csv", LEAD, OTHER_LEAD)), "--pack", "p2", "--json")
    assert json.loads(again.stdout)["duplicates"] == 1
    monkeypatch.setenv("WAIHU_SECRET_KEY", TEST_SECRET)  # the old key, still set somewhere
    refused = cli("dnc", "check", LISTED)
    assert refused.exit_code == 1 and "does not match this database" in refused.text


def test_a_rotation_interrupted_before_the_key_file_moved_is_finished_by_running_again(cli, db, keyring, tmp_path):
    assert cli("dnc", "add", LISTED, "--reason", "投诉").exit_code == 0
    secret, new = keyring.rotated()
    pending = pending_key_file(cli.key_file)
    pending.write_bytes(secret + b"\n")
    rotate_keyed_data(db, keyring, new)  # … and the process died here
    stuck = cli("dnc", "check", LISTED)
    assert stuck.exit_code == 1 and "run `waihu keys rotate` again to finish" in stuck.text
    finished = cli("keys", "rotate", "--yes")
    assert finished.exit_code == 0 and "finished the rotation" in finished.output
    assert not pending.exists() and cli.key_file.read_bytes().strip() == secret
    assert "do not call" in cli("dnc", "check", LISTED).stdout


def test_rotation_waits_for_calls_in_progress(cli, db, keyring, tmp_path):
    from bot.core.db.base import utc_now

    assert cli("leads", "upload", str(lead_csv(tmp_path / "a.csv", LEAD)), "--pack", "p1").exit_code == 0
    with session_scope(db) as session:
        lead = session.execute(select(Lead)).scalar_one()
        campaign = create_campaign(session, name="c", packs=["p1"])
        session.add(CallAttempt(campaign_id=campaign.id, lead_id=lead.id, attempt_no=1, phone_hash=lead.phone_hash,
                                arms={}, status="dialing", dialed_at=utc_now()))
    result = cli("keys", "rotate", "--yes")
    assert result.exit_code == 1 and "in progress" in result.text
    assert stored_fingerprint(db) == keyring.key_check


def test_a_key_from_the_environment_is_rotated_into_a_file_the_operator_installs(cli, db, tmp_path, monkeypatch):
    monkeypatch.setenv("WAIHU_SECRET_KEY", TEST_SECRET)
    assert "--new-key-file" in cli("keys", "rotate", "--yes").text
    target = tmp_path / "new.key"
    result = cli("keys", "rotate", "--yes", "--new-key-file", str(target))
    assert result.exit_code == 0 and "set WAIHU_SECRET_KEY" in result.output
    assert cli("dnc", "check", LEAD).exit_code == 1  # until the environment has the new key
    monkeypatch.setenv("WAIHU_SECRET_KEY", target.read_text().strip())
    assert cli("dnc", "check", LEAD).exit_code == 0


def test_every_encrypted_or_hashed_column_is_known_to_the_rotation():
    known = {(c.table, c.column) for c in KEYED_COLUMNS}
    keyed = {(table.name, column.name) for table in Base.metadata.sorted_tables for column in table.columns
             if isinstance(column.type, LargeBinary) or column.name.endswith("phone_hash")}
    assert keyed == known


def test_a_rotated_hash_is_the_old_hash_extended():
    old = PhoneKeyring.from_secret(TEST_SECRET.encode())
    secret, new = old.rotated()
    assert new.hash_phone(LEAD) == new.extend_hash(old.hash_phone(LEAD)) != old.hash_phone(LEAD)
    _, newer = new.rotated()
    assert newer.hash_phone(LEAD) == newer.extend_hash(new.hash_phone(LEAD))
    assert PhoneKeyring.from_secret(secret).key_check == new.key_check
    with pytest.raises(UserError, match="damaged"):
        PhoneKeyring.from_secret(secret[:-5])


def test_migration_creates_the_fingerprint_table(tmp_path):
    engine = create_database_engine(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        upgrade(engine)
        assert stored_fingerprint(engine) is None
    finally:
        engine.dispose()


def test_the_web_console_refuses_to_start_with_another_key(db, keyring, database_url, dialogs_copy, tmp_path):
    from bot.web.app import create_app
    from tests.web.conftest import console_config

    upload(db, keyring, lead_csv(tmp_path / "a.csv", LEAD), "p1")
    config = console_config(database_url, dialogs_copy.root, tmp_path / "data")
    other = replace(config, settings=config.settings.copy(update={"secret_key": OTHER_SECRET.decode()}))
    with pytest.raises(KeyMismatch) as error:
        create_app(other, engine=db)
    assert "does not match this database" in str(error.value)
    assert create_app(config, engine=db).state.services.keyring.hash_phone(LEAD) == keyring.hash_phone(LEAD)
