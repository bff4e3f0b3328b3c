"""The settings lipflow's commands run flows under (``lipflow.flows.prefect_settings``).

Each case runs in its own interpreter: the settings hold for the rest of the process.
"""

from __future__ import annotations

import logging
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


EXIT_PROBE = (
    "import atexit, gc, logging, os\n"
    # registered first, so it runs after every later handler: what does exit see?
    "atexit.register(lambda: os.write(1, f'frozen {gc.get_freeze_count() > 0}\\n'.encode()))\n"
    "from lipflow.flows.prefect_settings import DRAINING_SERVICES, use_command_settings\n"
    "use_command_settings()\n"
    "print('levels', {logging.getLogger(n).getEffectiveLevel() for n in DRAINING_SERVICES})\n"
    "logging.getLogger('EventsWorker').warning('Still processing items: 3 items remaining...')\n"
    "logging.getLogger('EventsWorker').error('Service failed')\n"
)


def test_exit_is_quiet_and_skips_the_last_collection() -> None:
    """The queue services' drain note stays off the terminal (their errors do not), and
    the objects alive at exit are frozen, so the final collection does not walk them."""
    done = subprocess.run([sys.executable, "-c", EXIT_PROBE], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"levels {{{logging.ERROR}}}", "frozen True"]
    assert "Still processing" not in done.stderr and "Service failed" in done.stderr
