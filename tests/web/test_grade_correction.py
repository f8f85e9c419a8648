"""Issue 16 item 16: managers and ops correct a call's grade on the call page (a form with
the page's CSRF token) or by the API; the page then shows the robot's grade, the corrected
one, who, when and why (the whole history); other roles and requests without the CSRF
token are refused; a bad grade or an empty reason is one clear Chinese error."""
from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import func, select

from bot.campaigns.models import CallAttempt, GradeCorrection
from bot.core.db.engine import session_scope
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import USERS, clients, console, seed_graded_calls  # noqa: F401


@pytest.fixture()
def call(console, db, keyring, tmp_path) -> tuple[int, str]:
    seed_graded_calls(db, keyring, tmp_path, leads=12)
    with session_scope(db) as session:
        attempt = session.execute(select(CallAttempt).where(CallAttempt.grade.isnot(None))
                                  .order_by(CallAttempt.id)).scalars().first()
        return attempt.id, attempt.grade


def corrections(db, attempt_id: int) -> list[tuple]:
    with session_scope(db) as session:
        return [tuple(r) for r in session.execute(
            select(GradeCorrection.old_grade, GradeCorrection.new_grade, GradeCorrection.reason,
                   GradeCorrection.corrected_by).where(GradeCorrection.attempt_id == attempt_id)
            .order_by(GradeCorrection.id))]


def other(grade: str, *skip: str) -> str:
    return next(g for g in "ABCD" if g != grade and g not in skip)


def test_manager_and_ops_correct_a_grade_on_the_call_page_and_see_the_history(call, clients, db) -> None:
    attempt_id, robot = call
    first, second = other(robot), other(robot, other(robot))
    manager = clients("manager")
    page = manager.get(f"/calls/{attempt_id}")
    assert page.status_code == 200 and 'id="grade-form"' in page.text and "尚未人工更正" in page.text
    done = manager.http.post(f"/calls/{attempt_id}/grade",
                             data={"grade": first, "reason": "听录音：客户问了保费", "csrf_token": manager.csrf})
    assert done.status_code == 303 and done.headers["location"].startswith(f"/calls/{attempt_id}")

    ops = clients("ops")
    assert ops.get(f"/calls/{attempt_id}").status_code == 200  # ops may open the call to correct it
    done = ops.http.post(f"/calls/{attempt_id}/grade",
                         data={"grade": second, "reason": "回访确认", "csrf_token": ops.csrf})
    assert done.status_code == 303

    assert corrections(db, attempt_id) == [(robot, first, "听录音：客户问了保费", USERS["manager"]),
                                           (first, second, "回访确认", USERS["ops"])]
    with session_scope(db) as session:
        assert session.get(CallAttempt, attempt_id).grade == robot  # the original is kept
    text = html.unescape(manager.get(f"/calls/{attempt_id}").text)
    assert f'data-robot-grade="{robot}"' in text
    assert re.search(rf'id="call-grade"><span class="grade grade-{second}">', text)
    for who, reason in ((USERS["manager"], "听录音：客户问了保费"), (USERS["ops"], "回访确认")):
        assert who in text and reason in text
    assert text.count('data-correction="') == 2
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", text.split('id="grade-corrections"')[1])  # when

    api = manager.get(f"/api/v1/calls/{attempt_id}", headers={"Accept": "application/json"}).json()
    assert (api["grade"], api["robot_grade"]) == (second, robot)
    assert [c["corrected_by"] for c in api["corrections"]] == [USERS["manager"], USERS["ops"]]
    # the call list shows (and filters by) the corrected grade, marked as corrected
    listed = {c["id"]: c for c in manager.get(f"/api/v1/calls?grade={second}&limit=500").json()["calls"]}
    assert listed[attempt_id]["grade"] == second and listed[attempt_id]["grade_corrected"] is True
    robot_listed = manager.get(f"/api/v1/calls?grade={robot}&limit=500").json()["calls"]
    assert attempt_id not in {c["id"] for c in robot_listed}
    assert not any(c["grade_corrected"] for c in robot_listed)


def test_the_api_corrects_a_grade(call, clients, db) -> None:
    attempt_id, robot = call
    response = clients("ops").put(f"/api/v1/calls/{attempt_id}/grade", json={"grade": other(robot), "reason": "核实"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["grade"], body["robot_grade"], body["corrections"][0]["reason"]) == (other(robot), robot, "核实")
    response = clients("manager").post(f"/api/v1/calls/{attempt_id}/grade", json={"grade": robot, "reason": "改回"})
    assert response.status_code == 200 and len(response.json()["corrections"]) == 2
    missing = clients("manager").put(f"/api/v1/calls/999999/grade", json={"grade": "A", "reason": "x"})
    assert missing.status_code == 404 and "没有编号为 999999 的通话" in missing.json()["detail"]


@pytest.mark.parametrize("role", ["writer"])
def test_other_roles_and_requests_without_the_csrf_token_are_refused(call, clients, db, role) -> None:
    attempt_id, robot = call
    writer = clients(role)
    assert writer.get(f"/calls/{attempt_id}").status_code == 403
    refused = writer.http.post(f"/calls/{attempt_id}/grade",
                               data={"grade": other(robot), "reason": "x", "csrf_token": writer.csrf})
    assert refused.status_code == 403 and "仅限" in refused.text
    api = writer.put(f"/api/v1/calls/{attempt_id}/grade", json={"grade": other(robot), "reason": "x"})
    assert api.status_code == 403 and "仅限" in api.json()["detail"]

    manager = clients("manager")
    no_token = manager.http.post(f"/calls/{attempt_id}/grade", data={"grade": other(robot), "reason": "x"})
    assert no_token.status_code == 403 and "CSRF" in no_token.text
    forged = manager.http.post(f"/calls/{attempt_id}/grade",
                               data={"grade": other(robot), "reason": "x", "csrf_token": "forged"})
    assert forged.status_code == 403
    api_no_token = manager.http.put(f"/api/v1/calls/{attempt_id}/grade", json={"grade": "A", "reason": "x"},
                                    headers={"Accept": "application/json"})
    assert api_no_token.status_code == 403
    assert corrections(db, attempt_id) == []


@pytest.mark.parametrize("grade, reason, message", [
    ("E", "听录音", "无法更正等级：等级只能是 A、B、C、D（收到“E”）"),
    ("A", "", "无法更正等级：请填写更正原因"),
    ("A", "长" * 201, "无法更正等级：更正原因最多 200 字（现有 201 字）"),
])
def test_bad_input_is_one_clear_chinese_error(call, clients, db, grade, reason, message) -> None:
    attempt_id, _ = call
    manager = clients("manager")
    done = manager.http.post(f"/calls/{attempt_id}/grade",
                             data={"grade": grade, "reason": reason, "csrf_token": manager.csrf})
    assert done.status_code == 303
    page = html.unescape(manager.get(done.headers["location"]).text)
    assert page.count(message) == 1
    api = manager.put(f"/api/v1/calls/{attempt_id}/grade", json={"grade": grade, "reason": reason})
    assert api.status_code == 400 and api.json()["detail"] == message
    with session_scope(db) as session:
        assert session.execute(select(func.count()).select_from(GradeCorrection)).scalar_one() == 0
