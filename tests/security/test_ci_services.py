"""Issue 13: in CI (CI=true) a test that needs PostgreSQL or Redis fails when the service is missing,
instead of skipping (CI stayed green with both down); on a developer's machine it skips, saying why."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = "tests/security/service_probe.py"


def run_probe(ci: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", PROBE, "-q", "-rs", "-p", "no:cacheprovider",
                           "-o", "addopts="], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("ci", ["true", "1"])
def test_in_ci_a_missing_service_fails_the_run(ci):
    result = run_probe(ci)
    assert result.returncode == 1, result.stdout[-2000:]
    assert "2 failed, 1 skipped" in result.stdout
    assert "CI=true: a test that needs this service fails instead of skipping" in result.stdout


def test_on_a_developer_machine_it_skips_with_the_reason():
    result = run_probe(None)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "3 skipped" in result.stdout and "PostgreSQL not reachable at postgresql://probe" in result.stdout
