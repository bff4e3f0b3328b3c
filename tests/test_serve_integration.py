"""``lipflow serve`` against a real ``prefect server start`` on loopback.

Starts a server on a free port with a throw-away PREFECT_HOME, runs
``lipflow.flows.serve.serve_deployments`` in a subprocess (what ``lipflow serve`` does), checks
through the API that the ``refresh`` deployment carries the cron schedule from params,
triggers the self-test deployment and waits for the run to complete. Both processes are
stopped in a ``finally`` with bounded waits.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

SERVE = (
    "import sys; from pathlib import Path; from lipflow.tasks.settings.project import load_params; "
    "from lipflow.flows.serve import serve_deployments; "
    "serve_deployments(load_params(Path(sys.argv[1])), root=Path(sys.argv[2]))"
)

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(what: str, check: Callable[[], Any], timeout_s: float, procs: list) -> Any:
    """Poll ``check`` until it returns a truthy value; fail early if a process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for proc, log in procs:
            if proc.poll() is not None:
                raise AssertionError(f"{what}: process exited ({proc.returncode}):\n"
                                     f"{Path(log).read_text()[-3000:]}")
        try:
            value = check()
        except Exception:  # noqa: BLE001 - not up yet
            value = None
        if value:
            return value
        time.sleep(0.5)
    logs = "\n".join(Path(log).read_text()[-2000:] for _, log in procs)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}\n{logs}")


def _stop(proc: subprocess.Popen, sig: int) -> None:
    """Signal the process group, wait 15 s, then kill it."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], list]]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = dict(os.environ)
    env.update({
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    env.pop("LIPFLOW_ROOT", None)
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    procs = [(proc, log)]
    try:
        _wait_for("the server's /api/health",
                  lambda: requests.get(f"{url}/health", timeout=2).status_code == 200, 90, procs)
        yield url, env, procs
    finally:
        _stop(proc, signal.SIGTERM)


def test_serve_registers_schedule_and_runs_a_flow(server, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url, env, procs = server
    # a cron hour 12 h away, so the scheduled refresh can never fire during the test
    hour = (dt.datetime.now(dt.UTC).hour + 12) % 24
    cron = f"15 {hour} * * *"
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["schedule"] = {"refresh_cron": cron, "timezone": "Europe/Paris"}
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))

    log = tmp_path / "serve.log"
    with log.open("w") as out:
        serve = subprocess.Popen([sys.executable, "-c", SERVE, str(params_file), str(PROJECT)],
                                 cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    procs = [*procs, (serve, log)]
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}), \
                get_client(sync_client=True) as client:
            refresh = _wait_for("the refresh deployment",
                                lambda: client.read_deployment_by_name("refresh/refresh"), 90,
                                procs)
            (schedule,) = refresh.schedules
            assert schedule.schedule.cron == cron
            assert schedule.schedule.timezone == "Europe/Paris"
            assert schedule.active
            assert refresh.parameters == {"root": str(PROJECT), "push": True}

            # deployments are registered one after another: wait for each, never assume
            grid = _wait_for("the download-grid deployment",
                             lambda: client.read_deployment_by_name("download-grid/download-grid"),
                             30, procs)
            assert grid.schedules == []  # on demand
            assert grid.parameters["speakers"] == params["grid"]["speakers"]

            selftest = _wait_for(
                "the selftest deployment",
                lambda: client.read_deployment_by_name("lipflow-selftest/lipflow-selftest"),
                30, procs)
            run = client.create_flow_run_from_deployment(selftest.id, parameters={"n": 4})

            def finished() -> Any:
                state = client.read_flow_run(run.id).state
                return state if state is not None and state.is_final() else None

            state = _wait_for("the selftest run to finish", finished, 120, procs)
            assert state.is_completed(), f"{state.type}: {state.message}\n{log.read_text()}"
    finally:
        _stop(serve, signal.SIGINT)
