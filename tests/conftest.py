"""Shared fixtures: one trained model and one loaded Rasa agent per test session.

Training is cached by a hash of dialogs/ (models/), so an unchanged script never
retrains; loading the agent (~20 s, TensorFlow) happens once and is shared.
"""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

import bot.core.rasa_env  # noqa: F401  (quiet, offline Rasa defaults before anything imports it)
from bot.core.settings import PROJECT_ROOT, get_settings
from bot.script.project import DialogsProject

# The suite never writes into the checkout's .waihu/ (its SQLite file, secret key, prompt
# cache): code that falls back on the default data folder gets a private one per run.
os.environ.setdefault("WAIHU_DATA_DIR", tempfile.mkdtemp(prefix="waihu-test-data-"))

# The database fixtures (db, database_url, keyring, migrated_engine) for every folder.
pytest_plugins = ["tests.db_fixtures"]

POSTGRES_URL = os.environ.get("WAIHU_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("WAIHU_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# A test that needs PostgreSQL or Redis skips, saying why, when the service is down on a developer's
# machine; in CI (CI=true) the same test FAILS, so a pipeline whose services did not start cannot stay
# green. Tests skip with tests.db_fixtures.service_unavailable(), or with a reason containing
# "PostgreSQL … not reachable" / "Redis … not reachable" (turned into a failure below).
IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
_SERVICE_SKIP = re.compile(r"\b(PostgreSQL|Redis)\b.*\bnot reachable\b", re.IGNORECASE)


@pytest.fixture(autouse=True)
def _release_idle_database_connections():
    """PostgreSQL serves 100 connections. Every engine keeps its idle connections pooled, and
    with a few hundred PostgreSQL tests in one session (the code under test caches engines
    per URL) the pools together filled the server ("too many clients already"). Closing the
    idle ones after each test keeps the session to what a test actually uses; the engines
    stay usable and reconnect on demand."""
    yield
    from bot.core.db.engine import _engines

    for engine in list(_engines.values()):
        engine.dispose()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not (IN_CI and report.skipped and call.excinfo is not None):
        return
    reason = str(call.excinfo.value)
    if call.excinfo.errisinstance(pytest.skip.Exception) and _SERVICE_SKIP.search(reason):
        report.outcome = "failed"
        report.longrepr = f"{reason}\nCI=true: a test that needs this service fails instead of skipping"


@pytest.fixture(scope="session")
def dialogs_project() -> DialogsProject:
    return DialogsProject(get_settings().dialogs_dir)


@pytest.fixture(scope="session")
def model_path(dialogs_project: DialogsProject) -> Path:
    from bot.script.training import train

    return train(dialogs_project, get_settings().models_dir).model_path


@pytest.fixture(scope="session")
def dialogue_agent(model_path: Path):
    """The process-wide agent (in-memory tracker store), warmed up."""
    from bot.conversation.agent import load_shared_agent

    agent = load_shared_agent(model_path)
    asyncio.run(agent.warm_up())
    return agent


@pytest.fixture()
def dialogs_copy(tmp_path: Path) -> DialogsProject:
    """A private copy of dialogs/ that a test may break."""
    target = tmp_path / "dialogs"
    shutil.copytree(PROJECT_ROOT / "dialogs", target)
    return DialogsProject(target)


def run(coro):
    """Run a coroutine from a plain test (the suite has no asyncio plugin)."""
    return asyncio.run(coro)
