"""Rasa's own data validation (story structure, domain, NLU), as Problems.

Rasa reports through Python warnings and log records; both are collected here so the
CLI can show them next to our lint, with the runtime-only responses filtered out.
"""

from __future__ import annotations

import logging
import os
import warnings
from unittest import mock

from bot.script.lint import RUNTIME_RESPONSES, Problem
from bot.script.project import DialogsProject
from intents.taxonomy import CALL_START_INTENT, RETRIEVAL_INTENT, SYSTEM_INTENTS

# Findings that are expected by design (the runtime says these; call_start and the system
# intents have no NLU; Rasa counts a retrieval intent once per file its answers are in).
_EXPECTED = (
    tuple(RUNTIME_RESPONSES)
    + (f"'{CALL_START_INTENT}'",)
    + tuple(f"'{i}'" for i in sorted(SYSTEM_INTENTS))
    + (f"multiple domain files: {RETRIEVAL_INTENT}",)
)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


def _is_finding(warning: warnings.WarningMessage) -> bool:
    """Keep Rasa's data findings; drop library deprecation noise."""
    if issubclass(warning.category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning)):
        return False
    return "Slot auto-fill has been removed" not in str(warning.message)


def rasa_validate(project: DialogsProject) -> list[Problem]:
    from rasa.shared.importers.importer import TrainingDataImporter
    from rasa.validator import Validator

    importer = TrainingDataImporter.load_from_config(
        config_path=str(project.config_file),
        domain_path=str(project.domain_dir),
        training_data_paths=[str(project.data_dir)],
    )
    handler = _Collect()
    rasa_logger = logging.getLogger("rasa.validator")
    rasa_logger.addHandler(handler)
    problems: list[Problem] = []
    try:
        # LOG_LEVEL=WARNING also turns off Rasa's progress bars, which are noise here.
        with warnings.catch_warnings(record=True) as caught, mock.patch.dict(os.environ, {"LOG_LEVEL": "WARNING"}):
            warnings.simplefilter("always")
            validator = Validator.from_importer(importer)
            structure_ok = validator.verify_story_structure(ignore_warnings=False)
            domain_ok = validator.verify_domain_validity()
            validator.verify_intents_in_stories(ignore_warnings=False)
            validator.verify_utterances_in_stories(ignore_warnings=False)
            validator.verify_example_repetition_in_intents(ignore_warnings=False)
            validator.verify_slot_mappings()
    finally:
        rasa_logger.removeHandler(handler)
    where = project.relative(project.root)
    findings = [str(w.message) for w in caught if _is_finding(w)] + handler.records
    for message in findings:
        if any(expected in message for expected in _EXPECTED):
            continue
        if "Story structure" in message or "conflict" in message.lower():
            problems.append(Problem(where, None, f"Rasa: {message}", "error"))
        else:
            problems.append(Problem(where, None, f"Rasa: {message}", "warning"))
    if not structure_ok and not any(p.severity == "error" for p in problems):
        problems.append(Problem(where, None, "Rasa: stories and rules conflict (see above).", "error"))
    if not domain_ok:
        problems.append(Problem(where, None, "Rasa: the domain is invalid (see above).", "error"))
    return problems
