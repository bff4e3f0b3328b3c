"""One Prefect test harness per test session, shared by every module that runs flows.

Why session-scoped and a plugin: ``prefect_test_harness`` starts a temporary SQLite-backed
API server (10-20 s). Starting it once per session keeps each flow test at seconds. A
fixture *imported* into several modules would be set up once per module, so modules
declare ``pytest_plugins = ["tests.support.prefect_harness"]`` and request ``prefect_harness``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A throw-away Prefect API (temporary database) for the whole test session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield
