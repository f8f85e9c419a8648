"""The review queue (待标注): caller turns the model was unsure about, for script writers to label.

A turn is in the queue when it is a caller's turn with words in it, not yet labelled, and
the model was unsure: it answered `nlu_fallback` (or the agreement check's
`uncertain_agreement`), its confidence is below the FallbackClassifier threshold of
dialogs/config.yml, or a person corrected the call's grade (every caller turn of such a
call: one of them was probably misread). Newest calls first.

Labelling writes the masked text as an NLU example for the next training
(`bot.script.nlu_examples`) and records the decision in `review_labels`, so the turn leaves
the queue whatever happened to the example. Callers hold the script edit lock around
`label_turn` and `erase_labels` (the file is shared with the console's editor).

Erasure (`erase_labels`, from `waihu leads forget`): a person's labels go, and so do the
examples their words became, unless someone else's labelled turn said the same words (see
`erase_labels`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, false, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement

from bot.campaigns.models import CallAttempt, Campaign, GradeCorrection, TurnRow
from bot.campaigns.review_models import ReviewLabel
from bot.core.db.base import utc_now
from bot.core.errors import UserError
from bot.core.pii import mask_digit_runs
from bot.script.nlu_examples import ADDED, DUPLICATE, AddResult, add_example, normalise_example, remove_examples
from bot.script.project import DialogsProject
from intents.taxonomy import FALLBACK_INTENT, SYSTEM_INTENTS

SKIPPED = "skipped"
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 200
# Why a turn is in the queue (a turn may have several reasons).
FALLBACK, UNSURE_AGREEMENT, LOW_CONFIDENCE, GRADE_CORRECTED = (
    "fallback",
    "unsure_agreement",
    "low_confidence",
    "grade_corrected",
)


class UnknownTurn(LookupError):
    """No caller turn with this id."""


class AlreadyLabelled(UserError):
    def __init__(self, turn_id: int, by: str, outcome: str) -> None:
        super().__init__(f"turn {turn_id} was already labelled by {by} ({outcome}); each turn is labelled once")
        self.turn_id, self.by, self.outcome = turn_id, by, outcome


@dataclass(frozen=True)
class ReviewItem:
    turn_id: int
    attempt_id: int
    seq: int
    text: str  # masked
    intent: str | None  # what the model said
    confidence: float | None
    robot_line: str | None  # the robot's line the caller answered (masked), if any
    robot_response: str | None  # its script response name (utter_ask_wecom)
    campaign: str
    script_variant: str | None
    called_at: datetime | None
    reasons: tuple[str, ...] = ()

    def as_json(self) -> dict:
        return {
            "turn_id": self.turn_id,
            "attempt_id": self.attempt_id,
            "seq": self.seq,
            "text": self.text,
            "intent": self.intent,
            "confidence": None if self.confidence is None else round(self.confidence, 3),
            "robot_line": self.robot_line,
            "robot_response": self.robot_response,
            "campaign": self.campaign,
            "script_variant": self.script_variant,
            "called_at": self.called_at.isoformat() if self.called_at else None,
            "reasons": list(self.reasons),
            "call_url": f"/calls/{self.attempt_id}",
        }


@dataclass(frozen=True)
class ReviewPage:
    total: int
    offset: int
    limit: int
    items: list[ReviewItem] = field(default_factory=list)


@dataclass(frozen=True)
class LabelResult:
    turn_id: int
    intent: str | None
    outcome: str  # added | duplicate | in_test_set | skipped
    text: str
    example: AddResult | None = None  # None when skipped

    @property
    def message(self) -> str:
        return self.example.message if self.example else "skipped; the turn leaves the queue"


def _corrected_calls():
    return select(GradeCorrection.attempt_id)


def _unsure(threshold: float | None) -> ColumnElement[bool]:
    low = TurnRow.confidence < threshold if threshold is not None else false()
    return or_(
        TurnRow.intent == FALLBACK_INTENT,
        TurnRow.intent.in_(sorted(SYSTEM_INTENTS)),
        low,
        TurnRow.attempt_id.in_(_corrected_calls()),
    )


def _in_queue(threshold: float | None) -> list[ColumnElement[bool]]:
    return [
        TurnRow.speaker == "callee",
        func.length(func.trim(TurnRow.text)) > 0,
        ReviewLabel.id.is_(None),
        _unsure(threshold),
    ]


def review_queue(
    session: Session, threshold: float | None, offset: int = 0, limit: int = DEFAULT_PAGE_SIZE
) -> ReviewPage:
    """One page of the queue, newest calls first (a call's turns in order). `threshold`: the
    FallbackClassifier's (`bot.script.nlu_examples.fallback_threshold`)."""
    offset, limit = max(0, offset), max(1, min(limit, MAX_PAGE_SIZE))
    conditions = _in_queue(threshold)
    total = session.execute(
        select(func.count(TurnRow.id))
        .select_from(TurnRow)
        .outerjoin(ReviewLabel, ReviewLabel.turn_id == TurnRow.id)
        .where(*conditions)
    ).scalar_one()
    called_at = func.coalesce(CallAttempt.answered_at, CallAttempt.dialed_at, CallAttempt.scheduled_at)
    rows = session.execute(
        select(TurnRow, CallAttempt, Campaign.name)
        .join(CallAttempt, CallAttempt.id == TurnRow.attempt_id)
        .join(Campaign, Campaign.id == CallAttempt.campaign_id)
        .outerjoin(ReviewLabel, ReviewLabel.turn_id == TurnRow.id)
        .where(*conditions)
        .order_by(called_at.desc(), TurnRow.attempt_id.desc(), TurnRow.seq)
        .offset(offset)
        .limit(limit)
    ).all()
    attempt_ids = sorted({turn.attempt_id for turn, _, _ in rows})
    corrected = set(
        session.execute(select(GradeCorrection.attempt_id).where(GradeCorrection.attempt_id.in_(attempt_ids))).scalars()
    )
    bot_turns: dict[int, list[TurnRow]] = {}
    for bot_turn in session.execute(
        select(TurnRow)
        .where(TurnRow.attempt_id.in_(attempt_ids), TurnRow.speaker == "bot")
        .order_by(TurnRow.attempt_id, TurnRow.seq)
    ).scalars():
        bot_turns.setdefault(bot_turn.attempt_id, []).append(bot_turn)
    items = []
    for turn, attempt, campaign in rows:
        earlier = [b for b in bot_turns.get(turn.attempt_id, []) if b.seq < turn.seq]
        robot = earlier[-1] if earlier else None
        items.append(
            ReviewItem(
                turn_id=turn.id,
                attempt_id=turn.attempt_id,
                seq=turn.seq,
                text=mask_digit_runs(turn.text),
                intent=turn.intent,
                confidence=turn.confidence,
                robot_line=mask_digit_runs(robot.text) if robot else None,
                robot_response=robot.response if robot else None,
                campaign=campaign,
                script_variant=(attempt.arms or {}).get("script"),
                called_at=attempt.answered_at or attempt.dialed_at or attempt.scheduled_at,
                reasons=_reasons(turn, threshold, turn.attempt_id in corrected),
            )
        )
    return ReviewPage(total=total, offset=offset, limit=limit, items=items)


def _reasons(turn: TurnRow, threshold: float | None, corrected: bool) -> tuple[str, ...]:
    reasons = []
    if turn.intent == FALLBACK_INTENT:
        reasons.append(FALLBACK)
    if turn.intent in SYSTEM_INTENTS:
        reasons.append(UNSURE_AGREEMENT)
    if threshold is not None and turn.confidence is not None and turn.confidence < threshold:
        reasons.append(LOW_CONFIDENCE)
    if corrected:
        reasons.append(GRADE_CORRECTED)
    return tuple(reasons)


def label_turn(session: Session, project: DialogsProject, turn_id: int, intent: str | None, by: str) -> LabelResult:
    """Label a caller turn with `intent` (its masked text becomes a training example unless a
    test file or a training file already says it), or skip it (`intent` None). Either way the
    decision is recorded and the turn leaves the queue."""
    turn = session.get(TurnRow, turn_id)
    if turn is None or turn.speaker != "callee":
        raise UnknownTurn(turn_id)
    earlier = session.execute(select(ReviewLabel).where(ReviewLabel.turn_id == turn_id)).scalar_one_or_none()
    if earlier is not None:
        raise AlreadyLabelled(turn_id, earlier.labelled_by, earlier.outcome)
    text = mask_digit_runs(turn.text)
    # The row first: a second writer labelling the same turn fails on the unique turn_id
    # before anything is written to dialogs/.
    row = ReviewLabel(
        turn_id=turn_id, intent=intent, outcome=SKIPPED, example_text=text, labelled_by=by, labelled_at=utc_now()
    )
    session.add(row)
    session.flush()
    if intent is None:
        return LabelResult(turn_id, None, SKIPPED, text)
    example = add_example(project, intent, text)
    row.outcome, row.example_text = example.outcome, example.text
    session.flush()
    return LabelResult(turn_id, intent, example.outcome, example.text, example)


def added_since(session: Session, since: datetime | None) -> int:
    """Examples the queue added to the training data after `since` (the last training)."""
    query = select(func.count(ReviewLabel.id)).where(ReviewLabel.outcome == "added")
    if since is not None:
        query = query.where(ReviewLabel.labelled_at > since)
    return session.execute(query).scalar_one()


@dataclass(frozen=True)
class ErasedLabels:
    labels: int  # review_labels rows deleted
    examples: list[str]  # examples taken out of the tool's NLU file (dialogs/data/nlu/from_calls.yml)
    kept_shared: int  # their examples kept because another person's labelled turn said the same words


def erase_labels(session: Session, project: DialogsProject, attempt_ids: Iterable[int]) -> ErasedLabels:
    """A person's review labels (of the turns of `attempt_ids`, their calls) and the training
    examples their words became.

    An example of theirs is in the tool's file when their label was `added` (their turn wrote
    it) or `duplicate` (their words matched it). It is removed unless a label of another
    person's turn — `added` or `duplicate`, same words after `normalise_example` — remains:
    then the words are not only theirs (another caller said them), and taking them out would
    erase that other person's contribution, not this one's data. Matching is on the words,
    whatever the intent: a hand-written line of that file equal to their words goes too
    (the file cannot tell who wrote a line; erasure errs on removing). Other training files
    are not the tool's and are never touched. Skipped and test-line labels wrote nothing.

    The file is rewritten before the caller commits: if the commit then fails, the example is
    already gone and a second `forget` deletes the rows — never the other way round."""
    ids = list(attempt_ids)
    if not ids:
        return ErasedLabels(0, [], 0)
    theirs = session.execute(
        select(ReviewLabel.id, ReviewLabel.outcome, ReviewLabel.example_text)
        .join(TurnRow, TurnRow.id == ReviewLabel.turn_id)
        .where(TurnRow.attempt_id.in_(ids))
    ).all()
    if not theirs:
        return ErasedLabels(0, [], 0)
    their_ids = [row.id for row in theirs]
    words = {normalise_example(row.example_text) for row in theirs if row.outcome in (ADDED, DUPLICATE)} - {""}
    shared: set[str] = set()
    if words:
        others = session.execute(
            select(ReviewLabel.example_text)
            .join(TurnRow, TurnRow.id == ReviewLabel.turn_id)
            .where(ReviewLabel.outcome.in_((ADDED, DUPLICATE)), TurnRow.attempt_id.not_in(ids))
        ).scalars()
        shared = words & {normalise_example(text) for text in others}
    removed = remove_examples(project, words - shared)
    session.execute(
        delete(ReviewLabel).where(ReviewLabel.id.in_(their_ids)).execution_options(synchronize_session=False)
    )
    return ErasedLabels(len(their_ids), removed, len(shared))
