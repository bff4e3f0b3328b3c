"""Prefect settings the ``lipflow`` commands run their flows under.

Heartbeats: the flow engine starts a thread that emits a heartbeat event every
``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds (Prefect's default 180) and, when the run
ends, joins that thread, which sleeps in 1-s steps: up to a second of idle wait at the end
of every command (0.86 s of a 2.9-s no-op ``lipflow download``, measured with cProfile),
paid again by every DVC stage. Prefect acts on heartbeats only through a zombie-flow
automation a user creates, so lipflow's commands run without them unless the user sets
``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` (then Prefect's own behaviour holds); see
docs/operations.md.
"""

from __future__ import annotations

import atexit
import contextlib
import os

#: the variable a user sets to keep flow-run heartbeats (for a zombie-flow automation)
HEARTBEAT_ENV = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"

_held = contextlib.ExitStack()
atexit.register(_held.close)


def use_command_settings() -> bool:
    """For the rest of this process, run flows without heartbeats unless the user asked
    for them; returns whether heartbeats were turned off."""
    if os.environ.get(HEARTBEAT_ENV):
        return False
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    _held.enter_context(temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}))
    return True
