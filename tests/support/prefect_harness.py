"""One Prefect test harness per test session, shared by every module that runs flows.

Why session-scoped: ``prefect_test_harness`` starts a temporary SQLite-backed API server
(10-20 s). Starting it once and reusing it keeps each flow test at seconds. Import the
fixture into a test module with ``from tests.support.prefect_harness import prefect_harness``
and request it (or mark the module ``pytestmark = pytest.mark.usefixtures("prefect_harness")``).
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
