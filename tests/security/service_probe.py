"""Run only by test_ci_services.py (in a child pytest): tests whose service is missing."""
import pytest

from tests.db_fixtures import service_unavailable


def test_needs_postgresql():
    service_unavailable("PostgreSQL not reachable at postgresql://probe (a probe)")


def test_needs_redis_the_old_way():
    pytest.skip("Redis not reachable at redis://probe (a probe)")


def test_skips_for_another_reason():
    pytest.skip("espeak-ng is not installed (a probe)")
