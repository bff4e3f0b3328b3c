"""The settings lipflow's commands run flows under (``lipflow.flows.prefect_settings``).

Each case runs in its own interpreter: the settings hold for the rest of the process.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = (
    "from lipflow.flows.prefect_settings import use_command_settings\n"
    "from prefect.settings import get_current_settings\n"
    "print(use_command_settings(), get_current_settings().flows.heartbeat_frequency)\n"
)


def _probe(heartbeat: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"}
    if heartbeat is not None:
        env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] = heartbeat
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(("heartbeat", "expected"), [(None, "True None"), ("90", "False 90")])
def test_heartbeats_off_unless_the_user_sets_them(heartbeat: str | None, expected: str) -> None:
    """No heartbeat thread (whose join cost up to 1 s a command) unless the user asks for
    heartbeats, e.g. for a zombie-flow automation: then Prefect's own value holds."""
    assert _probe(heartbeat) == expected
