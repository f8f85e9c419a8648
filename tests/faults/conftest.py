"""The fault suite's own PostgreSQL cluster, shared by its modules (each uses its own
database in it), and destroyed at the end; the machine's PostgreSQL is never touched."""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.faults.harness import PrivatePostgres


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
