"""Run the conversation tests in dialogs/tests/ (Rasa test stories) against a model.

Each callee line goes through the real NLU and must get its labelled intent; the robot
must answer with exactly the listed actions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ConversationResult:
    name: str
    passed: bool
    failure: str  # the story with "# predicted:" marks where it went wrong ("" if passed)


async def run_conversation_tests(rasa_agent: Any, files: list[Path]) -> list[ConversationResult]:
    from rasa.core.test import _collect_story_predictions, _create_data_generator
    from rasa.shared.core.training_data.story_writer.yaml_story_writer import YAMLStoryWriter

    results: list[ConversationResult] = []
    for path in files:
        generator = _create_data_generator(str(path), rasa_agent, None, False)
        trackers = generator.generate_story_trackers()
        evaluation, _, _ = await _collect_story_predictions(trackers, rasa_agent)
        for tracker in evaluation.successful_stories:
            results.append(ConversationResult(tracker.sender_id, True, ""))
        for tracker in evaluation.failed_stories:
            story = YAMLStoryWriter().dumps(tracker.as_story().story_steps, is_test_story=True)
            results.append(ConversationResult(tracker.sender_id, False, story))
    return sorted(results, key=lambda r: (r.passed, r.name))
