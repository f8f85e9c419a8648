"""Routing rules per audience pack (dialogs/routing.yml), on SQLite and PostgreSQL: the file is
checked with file:line; a lead within its human window is routed to people (a row and a
lead.routed event) and not dialled; from day 8 it is the robot's again; a 高绩优 pack goes to
people; a call graded A gives an advisor route; erasure removes the routes."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.audiences.models import AudiencePack
from bot.campaigns.models import CallAttempt, Campaign
from bot.campaigns.service import change_status, create_campaign
from bot.core.db.engine import session_scope
from bot.dialing.call_runner import CallResult
from bot.dialing.call_store import record_call
from bot.dialing.planner import plan_campaign
from bot.dialing.routing import list_routes, load_routing, parse_routing
from bot.dialing.routing_models import ADVISOR, AI, DONE, HUMAN, OPEN, LeadRoute
from bot.erasure import forget_phone
from bot.leads.models import Lead, LeadPack
from bot.webhooks.models import WebhookEvent
from bot.webhooks.service import add_endpoint
from intents.assess import CallOutcome
from intents.grading import Grade
from intents.yaml_source import YamlError
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.dialing.test_planner import add_pack

REPO_DIALOGS = Path(__file__).resolve().parents[2] / "dialogs"
MORNING = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)  # Tuesday 10:00 in Shanghai

RULES = """\
version: 1
audiences:
  default:
    - when: {lead_age_days: "0-7"}
      route: human
      advisor: zhangsan
    - when: {grade: A}
      route: advisor
    - route: ai
  高绩优:
    - when: {tier: 高绩优}
      route: human
    - route: ai
"""


@pytest.fixture()
def dialogs(tmp_path, monkeypatch) -> Path:
    """A copy of dialogs/ with the test's routing rules (the repository's file is never written)."""
    copy = tmp_path / "dialogs"
    shutil.copytree(REPO_DIALOGS, copy, ignore=shutil.ignore_patterns("tests"))
    (copy / "routing.yml").write_text(RULES, encoding="utf-8")
    monkeypatch.setenv("WAIHU_DIALOGS_DIR", str(copy))
    return copy


# ---- the file ------------------------------------------------------------------------------------


def test_the_repository_file_is_valid_and_not_a_model_input() -> None:
    from bot.script.project import DialogsProject

    routing = load_routing(REPO_DIALOGS / "routing.yml")
    assert routing is not None and "default" in routing.audiences
    assert REPO_DIALOGS / "routing.yml" not in DialogsProject(REPO_DIALOGS).model_inputs()


def test_mistakes_are_reported_with_file_and_line() -> None:
    broken = """\
version: 1
audiences:
  default:
    - when: {lead_age_days: "7-0"}
      route: human
    - when: {tier: 超级}
      route: human
    - when: {grade: E}
      route: advisor
    - route: robot
"""
    with pytest.raises(YamlError) as error:
        parse_routing(broken, "routing.yml")
    text = "\n".join(str(p) for p in error.value.problems)
    assert "routing.yml:4" in text and "not a day range" in text
    assert "routing.yml:6" in text and "unknown tier '超级'" in text
    assert "routing.yml:8" in text and "unknown grade 'E'" in text
    assert "routing.yml:10" in text and "unknown route 'robot'" in text


def test_a_block_naming_no_pack_or_scene_is_an_error_with_its_line() -> None:
    routing = parse_routing("version: 1\naudiences:\n  default:\n    - route: ai\n  车主-华北:\n    - route: human\n")
    [problem] = routing.unknown_packs({"车主-华东"}, {"车主"})
    assert problem.startswith("routing.yml:6") and "车主-华北" in problem


def test_waihu_validate_reports_a_broken_routing_file(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from bot.cli.app import app

    copy = tmp_path / "dialogs"
    shutil.copytree(REPO_DIALOGS, copy)
    (copy / "routing.yml").write_text("version: 1\naudiences:\n  default:\n    - route: robot\n", encoding="utf-8")
    monkeypatch.setenv("WAIHU_DIALOGS_DIR", str(copy))
    monkeypatch.setenv("WAIHU_DATABASE_URL", f"sqlite:///{tmp_path / 'w.db'}")
    result = CliRunner().invoke(app, ["validate", "--no-rasa"])
    assert result.exit_code == 1
    assert "routing.yml:4" in result.output and "unknown route 'robot'" in result.output


# ---- applying ------------------------------------------------------------------------------------


def _campaign(db, keyring, n: int, *, left_days_ago: float | None, tier: str | None = None, name: str = "pack-a"):
    with session_scope(db) as session:
        ids = add_pack(session, keyring, name, n)
        if tier is not None:
            audience = AudiencePack(name=tier, scene="宝妈", tier=tier, attributes={})
            session.add(audience)
            session.flush()
            session.execute(select(LeadPack).where(LeadPack.name == name)).scalar_one().audience_id = audience.id
        for lead_id in ids:
            lead = session.get(Lead, lead_id)
            lead.audience_id = session.execute(select(LeadPack.audience_id).where(LeadPack.name == name)).scalar()
            lead.lead_left_at = None if left_days_ago is None else MORNING - timedelta(days=left_days_ago)
        add_endpoint(session, keyring, "https://crm.example.com/hook", ["lead.routed"], by="test")
        create_campaign(session, name="route", packs=[name], lines=10, cps=5)
        change_status(session, "route", "start", now=MORNING - timedelta(days=1))
    return ids


def _plan(db, now: datetime):
    with session_scope(db) as session:
        campaign = session.execute(select(Campaign).where(Campaign.name == "route")).scalar_one()
        result = plan_campaign(session, campaign, now)
        planned = set(session.execute(select(CallAttempt.lead_id).where(CallAttempt.id.in_(result.created))).scalars())
        return planned, result.skipped


def _routes(db) -> dict[int, tuple[str, str]]:
    with session_scope(db) as session:
        return {r.lead_id: (r.route, r.status) for r in session.execute(select(LeadRoute)).scalars()}


def _events(db) -> list[dict]:
    with session_scope(db) as session:
        return [
            e.payload
            for e in session.execute(select(WebhookEvent).where(WebhookEvent.event_type == "lead.routed")).scalars()
        ]


def test_a_lead_in_its_first_week_goes_to_people_once_and_is_dialled_from_day_8(db, keyring, dialogs) -> None:
    ids = _campaign(db, keyring, 3, left_days_ago=2)
    planned, skipped = _plan(db, MORNING)
    assert planned == set()  # the robot leaves them to the advisors
    assert sum(skipped.values()) == 0  # the scans leave them out: not even looked at
    assert _routes(db) == {i: (HUMAN, OPEN) for i in ids}
    events = _events(db)
    assert sorted(e["lead_id"] for e in events) == ids
    assert all(e["route"] == HUMAN and e["advisor_userid"] == "zhangsan" for e in events)
    assert all(e["phone_masked"].startswith("138****") and "routing.yml:4" in e["rule"] for e in events)
    with session_scope(db) as session:
        [row] = [r for r in list_routes(session, route=HUMAN) if r.lead_id == ids[0]]
        assert row.phone_masked.startswith("138****")

    _plan(db, MORNING + timedelta(hours=1))
    assert len(_events(db)) == 3  # routed once, not every tick

    day8 = MORNING + timedelta(days=6, hours=1)  # 8 days after 留资
    planned, _ = _plan(db, day8)
    assert planned == set(ids)
    assert _routes(db) == {i: (AI, DONE) for i in ids}


def test_a_lead_older_than_the_window_is_dialled_and_not_routed(db, keyring, dialogs) -> None:
    ids = _campaign(db, keyring, 2, left_days_ago=9)
    planned, _ = _plan(db, MORNING)
    assert planned == set(ids) and _routes(db) == {} and _events(db) == []


def test_a_high_tier_pack_goes_to_people(db, keyring, dialogs) -> None:
    ids = _campaign(db, keyring, 2, left_days_ago=None, tier="高绩优", name="pack-vip")
    planned, _ = _plan(db, MORNING)
    assert planned == set() and _routes(db) == {i: (HUMAN, OPEN) for i in ids}
    assert {e["rule"].rsplit(":", 1)[1] for e in _events(db)} == {"11"}


def test_without_rules_every_lead_is_the_robots(db, keyring, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WAIHU_DIALOGS_DIR", str(tmp_path))  # no routing.yml
    ids = _campaign(db, keyring, 2, left_days_ago=1)
    planned, _ = _plan(db, MORNING)
    assert planned == set(ids) and _routes(db) == {}


def _graded(db, grade: str, at: datetime) -> int:
    """Plan one tick, then write the first planned call as connected and graded `grade`."""
    with session_scope(db) as session:
        campaign = session.execute(select(Campaign).where(Campaign.name == "route")).scalar_one()
        [attempt_id, *_] = plan_campaign(session, campaign, at).created
        attempt = session.get(CallAttempt, attempt_id)
        outcome = CallOutcome("c1", "answered", Grade(grade, "test", f"{grade}：测试", (), ()), ())
        result = CallResult(call_id="c1", answered=True, answered_at=at, ended_at=at + timedelta(seconds=40))
        result.outcome = outcome
        record_call(session, attempt, result)
        return attempt.lead_id


def test_a_call_graded_a_gives_the_lead_an_advisor_route(db, keyring, dialogs) -> None:
    _campaign(db, keyring, 2, left_days_ago=20)
    lead_id = _graded(db, "A", MORNING)
    assert _routes(db) == {lead_id: (ADVISOR, OPEN)}
    [event] = _events(db)
    assert event["route"] == ADVISOR and event["lead_id"] == lead_id and "routing.yml:7" in event["rule"]


def test_a_call_graded_c_leaves_the_lead_with_the_robot(db, keyring, dialogs) -> None:
    _campaign(db, keyring, 1, left_days_ago=20)
    _graded(db, "C", MORNING)
    assert _routes(db) == {}


def test_erasure_removes_the_routes(db, keyring, dialogs) -> None:
    ids = _campaign(db, keyring, 2, left_days_ago=1)
    _plan(db, MORNING)
    assert len(_routes(db)) == 2
    with session_scope(db) as session:
        forget_phone(session, keyring, "13800000000")
    assert set(_routes(db)) == {ids[1]}


def test_validation_against_the_database_names_an_unknown_pack(db) -> None:
    from bot.core.errors import UserError
    from bot.dialing.routing import check_routing_packs

    routing = parse_routing(
        "version: 1\naudiences:\n  default:\n    - route: ai\n  车主-华东:\n    - route: human\n"
        "  车主-华北:\n    - route: human\n"
    )
    with session_scope(db) as session:
        session.add(AudiencePack(name="车主-华东", scene="车主", tier="绩优", attributes={}))
        session.flush()
        with pytest.raises(UserError) as error:
            check_routing_packs(session, routing)
    assert str(error.value).startswith("routing.yml:8") and "车主-华北" in str(error.value)
    assert "车主-华东" not in str(error.value).split("'")[1]


def test_waihu_leads_routes_lists_the_human_queue_masked(db, keyring, dialogs, database_url, monkeypatch) -> None:
    from typer.testing import CliRunner

    from bot.cli.app import app

    ids = _campaign(db, keyring, 2, left_days_ago=1)
    _plan(db, MORNING)
    monkeypatch.setenv("WAIHU_DATABASE_URL", database_url)
    result = CliRunner().invoke(app, ["leads", "routes", "--route", "human", "--json"])
    assert result.exit_code == 0, result.output
    routes = json.loads(result.output)["routes"]
    assert sorted(r["lead_id"] for r in routes) == ids
    assert all(r["phone_masked"].startswith("138****") for r in routes)
    assert "13800000000" not in result.output
    table = CliRunner().invoke(app, ["leads", "routes"])
    assert table.exit_code == 0 and "138****0000" in table.output and "human" in table.output
    assert "13800000000" not in table.output
    wrong = CliRunner().invoke(app, ["leads", "routes", "--route", "robot"])
    assert wrong.exit_code != 0 and "unknown route 'robot'" in str(wrong.exception)  # one clear error (main prints it)


def test_erasure_removes_the_audit_of_looks_at_a_routed_number(db, keyring, dialogs) -> None:
    from bot.dialing.routing import reveal_route_number
    from bot.dialing.routing_models import RouteReveal
    from bot.dialing.routing import NotYourLead
    from bot.users.service import add_user, set_wecom_userid

    ids = _campaign(db, keyring, 1, left_days_ago=1)
    _plan(db, MORNING)
    with session_scope(db) as session:
        other = add_user(session, "lao.wang", "advisor-pass-2", "advisor")
        with pytest.raises(NotYourLead):  # the rule assigns the lead to zhangsan
            reveal_route_number(session, keyring, ids[0], other)
        add_user(session, "xiao.an", "advisor-pass-1", "advisor")
        user = set_wecom_userid(session, "xiao.an", "zhangsan")
        assert reveal_route_number(session, keyring, ids[0], user) == "13800000000"
    with session_scope(db) as session:
        forget_phone(session, keyring, "13800000000")
    with session_scope(db) as session:
        assert session.execute(select(RouteReveal)).first() is None
        assert session.execute(select(LeadRoute)).first() is None


def test_a_fresh_api_lead_in_the_priority_lane_goes_to_people_too(db, keyring, dialogs) -> None:
    from tests.dialing.test_priority_lane import api_leads

    old = api_leads(db, keyring, 1, MORNING - timedelta(days=10), first=9000)  # the API pack exists
    with session_scope(db) as session:
        create_campaign(session, name="route", packs=["API·车主"], lines=10, cps=5)
        change_status(session, "route", "start", now=MORNING - timedelta(days=1))
    fresh = api_leads(db, keyring, 2, MORNING - timedelta(minutes=5))
    planned, _ = _plan(db, MORNING)
    assert planned == set(old)  # the 10-day-old lead is the robot's; the fresh ones are people's
    assert _routes(db) == {i: (HUMAN, OPEN) for i in fresh}
