"""`waihu leads/audiences/dnc/db` end to end through the CLI, on SQLite and PostgreSQL."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli.app import app
from bot.core.db.engine import session_scope
from bot.core.settings import PROJECT_ROOT
from tests.db_fixtures import TEST_SECRET, db, database_url, keyring, migrated_engine  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def cli(db, database_url, tmp_path, monkeypatch):
    env = {"WAIHU_DATABASE_URL": database_url, "WAIHU_SECRET_KEY": TEST_SECRET,
           "WAIHU_DATA_DIR": str(tmp_path / "data")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, list(args), catch_exceptions=True, input=input)

    invoke.env = env
    return invoke


def lead_file(tmp_path: Path) -> Path:
    path = tmp_path / "pack.csv"
    with path.open("w", encoding="gbk", newline="") as handle:
        csv.writer(handle).writerows([["手机号", "姓名", "人群", "同意时间", "备注"],
                                      ["13812345678", "张三", "车主", "2024-05-01", "=1+1"],
                                      ["13812345678", "张三", "车主", "2024-05-01", ""],
                                      ["1.38E+10", "李四", "车主", "2024-05-01", ""],
                                      ["13912345678", "王五", "", "", ""]])
    return path


def test_upload_json_is_one_object(cli, tmp_path):
    result = cli("leads", "upload", str(lead_file(tmp_path)), "--pack", "p1", "--audience", "宝妈", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["pack"], data["rows"], data["accepted"], data["duplicates"], data["dnc"]) == ("p1", 4, 1, 1, 0)
    assert data["rejected"] == {"consent_missing": 1, "duplicate_in_file": 1, "phone_scientific_notation": 1}
    assert "13812345678" not in result.stdout


def test_summary_rejects_export_and_audiences(cli, tmp_path):
    result = cli("leads", "upload", str(lead_file(tmp_path)), "--pack", "p1")
    assert result.exit_code == 0 and "accepted" in result.stdout and "duplicate_in_file" in result.stdout
    out = tmp_path / "rejects.csv"
    result = cli("leads", "rejects", "p1", "--csv", "--out", str(out))
    assert result.exit_code == 0
    exported = out.read_text(encoding="utf-8-sig")
    assert exported.splitlines()[0] == '"row","reason","message","手机号","姓名","人群","同意时间","备注"'
    assert "138****5678" in exported and "13812345678" not in exported
    stdout_csv = cli("leads", "rejects", "p1", "--csv").stdout
    assert list(csv.reader(stdout_csv.splitlines()))[1][0] == "3"
    shown = cli("leads", "rejects", "p1").stdout
    assert "phone_scientific_notation" in shown
    listed = json.loads(cli("audiences", "list", "--json").stdout)
    assert {a["name"]: a["leads"] for a in listed["audiences"]} == {"车主": 1}
    assert json.loads(cli("audiences", "show", "车主", "--json").stdout)["scene"] == "车主"
    assert json.loads(cli("leads", "packs", "--json").stdout)["packs"][0]["rejected"] == 3


def test_dnc_commands_and_forget(cli, tmp_path):
    assert cli("dnc", "add", "139 1234 5678", "--reason", "投诉").exit_code == 0
    checked = json.loads(cli("dnc", "check", "13912345678", "--json").stdout)
    assert checked == {"phone": "139****5678", "do_not_call": True,
                       "entries": [{"scope": "opt_out", "reason": "投诉", "source": "manual", "expires_at": None}]}
    upload = json.loads(cli("leads", "upload", str(lead_file(tmp_path)), "--pack", "p1", "--json").stdout)
    assert upload["dnc"] == 0 and upload["rejected"]["consent_missing"] == 1  # no consent is checked before DNC
    cli("leads", "upload", str(lead_file(tmp_path)), "--pack", "p1", "--json")
    forgot = json.loads(cli("leads", "forget", "13812345678", "--json").stdout)
    assert forgot == {"phone": "138****5678", "leads_erased": 1, "rejects_erased": 1, "calls_erased": 0,
                      "recordings_erased": 0, "review_labels_erased": 0, "training_examples_removed": 0,
                      "training_examples_kept_shared": 0, "dnc_hash_kept": False}
    assert cli("dnc", "add", "13712345678", "--scope", "soft_decline", "--days", "30").exit_code == 0
    assert "soft_decline" in cli("dnc", "check", "13712345678").stdout
    assert "removed 1" in cli("dnc", "remove", "13712345678", "--reason", "asked in writing").stdout
    imported = tmp_path / "dnc.txt"
    imported.write_text("13612345678\nbad\n", encoding="utf-8")
    data = json.loads(cli("dnc", "import", str(imported), "--json").stdout)
    assert data["added"] == 1 and len(data["invalid"]) == 1


def test_db_current_and_policy_show(cli):
    from bot.core.db.migrate import head_revision

    assert f"revision {head_revision()}" in cli("db", "current").stdout
    policy = json.loads(cli("policy", "show", "--json").stdout)
    assert policy["profile"] == "CN_INSURANCE_DEFAULT" and policy["caps"]["rolling_24h"] == 1


def test_user_errors_are_one_red_line_without_traceback(cli, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    env = {**os.environ, **cli.env}
    result = subprocess.run([sys.executable, "-m", "bot.cli.app", "leads", "upload", str(empty), "--pack", "x"],
                            capture_output=True, text=True, cwd=ROOT, env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("error:") and "empty" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run([sys.executable, "-m", "bot.cli.app", "dnc", "check", "138123456789999"],
                            capture_output=True, text=True, cwd=ROOT, env=env)
    assert result.returncode == 1 and "138123456789999" not in result.stderr and "****" in result.stderr


def test_policy_sign_needs_an_admin_who_proves_it(cli, tmp_path, db):
    """A looser profile (calls until 20:30) is approved only by an admin with the right
    password; the legal floor (no calls after 21:00) cannot be signed away."""
    import yaml

    from bot.users.service import add_user
    from telephony.compliance.policy import load_profile

    with session_scope(db) as session:
        add_user(session, "lin", "an admin password 1", "admin")
        add_user(session, "wu", "an ops password 12", "ops")
    document = yaml.safe_load((PROJECT_ROOT / "telephony/compliance/profiles/CN_INSURANCE_DEFAULT.yml")
                              .read_text(encoding="utf-8"))
    document.update(profile="LATE_EVENING", windows=["09:30-12:00", "14:00-20:30"])
    looser = tmp_path / "late.yml"
    looser.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")

    wrong = cli("policy", "sign", str(looser), "--by", "lin", "--password", "not it")
    assert wrong.exit_code == 1 and "wrong user name or password" in str(wrong.exception)
    not_admin = cli("policy", "sign", str(looser), "--by", "wu", "--password", "an ops password 12")
    assert not_admin.exit_code == 1 and "not an admin" in str(not_admin.exception)
    assert "approval" not in looser.read_text(encoding="utf-8")

    signed = cli("policy", "sign", str(looser), "--by", "lin", "--password", "an admin password 1")
    assert signed.exit_code == 0, signed.exception
    from bot.core.pii import policy_signing_key_from_settings

    assert load_profile(str(looser), signing_key=policy_signing_key_from_settings()).windows[-1][1] == 20 * 3600 + 30 * 60

    document["windows"] = ["09:30-12:00", "14:00-21:30"]
    illegal = tmp_path / "illegal.yml"
    illegal.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    refused = cli("policy", "sign", str(illegal), "--by", "lin", "--password", "an admin password 1")
    assert refused.exit_code == 1 and "hard limit" in str(refused.exception)


# ---- issue 16: an upload that says how to fix itself; --replace; delete-pack ----------------------

def export_without_consent(tmp_path: Path, rows: int = 200) -> Path:
    """A GBK export as ops get it: 姓名,手机号,城市,人群包 and no consent column."""
    path = tmp_path / "export.csv"
    with path.open("w", encoding="gbk", newline="") as handle:
        csv.writer(handle).writerows([["姓名", "手机号", "城市", "人群包"]]
                                     + [["王伟", str(13800000000 + i * 7919), "上海", "车主-华东"] for i in range(rows)])
    return path


def test_upload_summary_says_how_to_fix_a_file_without_consent(cli, tmp_path):
    result = cli("leads", "upload", str(export_without_consent(tmp_path)), "--pack", "p1")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "to fix (consent_missing): 200 of 200 rows have no consent record" in out
    for fix in ("--map consent_at=<column>", '--first-party --consent-basis "<how they agreed>"', "留资时间",
                "同意时间", "授权时间", "注册时间", "授权同意", "是否授权", "--replace"):
        assert fix in out, fix
    data = json.loads(cli("leads", "upload", str(export_without_consent(tmp_path)), "--pack", "p1", "--json").stdout)
    assert data["already_uploaded"] and data["hints"][0]["reason"] == "consent_missing"
    assert "13800000000" not in out


def test_replace_then_delete_pack(cli, tmp_path, db):
    path = export_without_consent(tmp_path)
    assert cli("leads", "upload", str(path), "--pack", "p1").exit_code == 0
    again = cli("leads", "upload", str(path), "--pack", "p1", "--first-party", "--consent-basis", "官网留资表单")
    assert "already uploaded" in again.stdout and "--replace --pack 'p1'" in again.stdout
    replaced = json.loads(cli("leads", "upload", str(path), "--pack", "p1", "--first-party", "--consent-basis",
                              "官网留资表单", "--replace", "--json").stdout)
    assert (replaced["accepted"], replaced["replaced"], replaced["already_uploaded"]) == (200, "p1", False)

    declined = cli("leads", "delete-pack", "p1", input="n\n")
    assert declined.exit_code == 1 and "delete lead pack 'p1': its 200 leads and 0 rejected rows?" in declined.output
    assert json.loads(cli("leads", "packs", "--json").stdout)["packs"][0]["accepted"] == 200

    from sqlalchemy import select

    from bot.campaigns.models import CallAttempt
    from bot.campaigns.service import create_campaign
    from bot.leads.models import Lead

    with session_scope(db) as session:
        campaign = create_campaign(session, name="c1", packs=["p1"], created_by="ops")
        lead = session.execute(select(Lead).order_by(Lead.id)).scalars().first()
        session.add(CallAttempt(campaign_id=campaign.id, lead_id=lead.id, attempt_no=1, phone_hash=lead.phone_hash,
                                arms={}, status="completed", dialed_at=lead.created_at))
    refused = cli("leads", "delete-pack", "p1", "--yes")
    assert refused.exit_code == 1 and "1 of its leads were already dialled (campaign 'c1')" in str(refused.exception)
    refused = cli("leads", "upload", str(path), "--pack", "p1", "--replace", "--first-party", "--consent-basis", "x")
    assert refused.exit_code == 1 and "cannot replace lead pack 'p1'" in str(refused.exception)
    with session_scope(db) as session:
        session.query(CallAttempt).delete()
    deleted = cli("leads", "delete-pack", "p1", input="y\n")
    assert deleted.exit_code == 0 and "deleted lead pack 'p1': 200 leads and 0 rejected rows" in deleted.stdout
    assert "taken out of campaign c1" in deleted.stdout
    assert json.loads(cli("leads", "packs", "--json").stdout)["packs"] == []
