"""People correcting a call's grade (人工更正): managers and ops, from the console.

The attempt keeps the robot's grade; each correction is a row of `grade_corrections`
(the grade it replaced, the new one, why, who, when). The latest correction (highest id)
is the call's grade in the report (`effective_grade`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.campaigns.call_events import emit_lead_graded
from bot.campaigns.models import CallAttempt, GradeCorrection
from bot.core.db.base import utc_now
from bot.core.errors import UserError

GRADES = ("A", "B", "C", "D")
MAX_REASON = 200


@dataclass(frozen=True)
class Correction:
    old_grade: str | None
    new_grade: str
    reason: str
    corrected_by: str
    corrected_at: datetime


def check_correction(new_grade: str | None, reason: str | None) -> tuple[str, str]:
    """The grade and reason as given, or one UserError naming every problem at once."""
    grade = (new_grade or "").strip().upper()
    text = (reason or "").strip()
    problems = []
    if grade not in GRADES:
        problems.append(f"等级只能是 A、B、C、D（收到“{(new_grade or '').strip() or '空'}”）")
    if not text:
        problems.append("请填写更正原因")
    elif len(text) > MAX_REASON:
        problems.append(f"更正原因最多 {MAX_REASON} 字（现有 {len(text)} 字）")
    if problems:
        raise UserError("无法更正等级：" + "；".join(problems))
    return grade, text


def corrections_of(session: Session, attempt_id: int) -> list[Correction]:
    """The attempt's corrections, oldest first."""
    rows = session.execute(
        select(GradeCorrection).where(GradeCorrection.attempt_id == attempt_id).order_by(GradeCorrection.id)
    ).scalars()
    return [Correction(r.old_grade, r.new_grade, r.reason, r.corrected_by, r.corrected_at) for r in rows]


def correct_grade(session: Session, attempt_id: int, new_grade: str | None, reason: str | None, by: str) -> Correction:
    """Record a correction of the attempt's grade; the robot's grade stays on the attempt."""
    grade, text = check_correction(new_grade, reason)
    attempt = session.get(CallAttempt, attempt_id)
    if attempt is None:
        raise LookupError(attempt_id)
    history = corrections_of(session, attempt_id)
    old = history[-1].new_grade if history else attempt.grade
    row = GradeCorrection(
        attempt_id=attempt_id, old_grade=old, new_grade=grade, reason=text, corrected_by=by, corrected_at=utc_now()
    )
    session.add(row)
    session.flush()
    # Webhooks: CRMs hear of the correction in its own transaction (`lead.graded`, corrected: true).
    emit_lead_graded(
        session, attempt, grade=grade, reason=text, graded_at=row.corrected_at, previous_grade=old, corrected_by=by
    )
    return Correction(old, grade, text, by, row.corrected_at)


def latest_corrections():
    """A subquery: each corrected attempt's latest grade (attempt_id, grade)."""
    latest = (
        select(GradeCorrection.attempt_id, func.max(GradeCorrection.id).label("latest_id"))
        .group_by(GradeCorrection.attempt_id)
        .subquery("latest_correction_ids")
    )
    table = GradeCorrection.__table__
    return (
        select(table.c.attempt_id.label("attempt_id"), table.c.new_grade.label("grade"))
        .join(latest, latest.c.latest_id == table.c.id)
        .subquery("latest_corrections")
    )
