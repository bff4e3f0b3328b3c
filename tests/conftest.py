"""Shared test setup: telemetry off, a throw-away PREFECT_HOME, the bundled sample corpus.

Fixtures that belong to one area live in ``tests/support/<area>.py`` and are imported by
the test modules that need them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from lipflow.tasks.common.process import configure_process

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_GRID = PROJECT_ROOT / "data" / "samples" / "grid"

# A `lipflow` subprocess that runs a flow starts (once) the local Prefect server under
# PREFECT_HOME and every later one reuses it (lipflow.tasks.common.prefect_server), so the
# session's throw-away home gets one server at most, started only when a test needs it and
# stopped in pytest_sessionfinish. A developer's own PREFECT_HOME or PREFECT_API_URL wins
# (and their server is left alone).
_OWN_PREFECT_HOME = "PREFECT_HOME" not in os.environ
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="lipflow-prefect-"))
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

configure_process()  # the rest of lipflow's defaults, as the CLI sets them


@pytest.fixture(scope="session")
def sample_grid() -> Path:
    """The bundled GRID sample corpus (Zenodo layout), read-only."""
    return SAMPLE_GRID


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def prefect_harness():
    """One throw-away Prefect API for the whole session (it takes 10-20 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the servers that `lipflow` subprocesses started in the session's PREFECT_HOME
    (the Prefect server and the warm command server)."""
    if _OWN_PREFECT_HOME and not hasattr(session.config, "workerinput"):  # xdist: controller
        from lipflow.flows.command_server import stop
        from lipflow.tasks.common.prefect_server import stop_server

        stop(Path(os.environ["PREFECT_HOME"]))
        stop_server(Path(os.environ["PREFECT_HOME"]))


@pytest.fixture(autouse=True)
def _api_url_stays_the_tests_own():
    """Undo a ``PREFECT_API_URL`` that a test's flow exported for its workers
    (``lipflow.flows.shared_api.export_api_url``): it names the API that was current then,
    and a later test's ``lipflow`` subprocess must not inherit an address that may be gone."""
    before = os.environ.get("PREFECT_API_URL")
    yield
    if before is None:
        os.environ.pop("PREFECT_API_URL", None)
    else:
        os.environ["PREFECT_API_URL"] = before
