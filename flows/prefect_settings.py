"""Prefect settings the ``lipflow`` commands run their flows under.

Heartbeats: the flow engine starts a thread that emits a heartbeat event every
``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds (Prefect's default 180) and, when the run
ends, joins that thread, which sleeps in 1-s steps: up to a second of idle wait at the end
of every command (0.86 s of a 2.9-s no-op ``lipflow download``, measured with cProfile),
paid again by every DVC stage. Prefect acts on heartbeats only through a zombie-flow
automation a user creates, so lipflow's commands run without them unless the user sets
``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` (then Prefect's own behaviour holds); see
docs/operations.md.

Exit: a command that ran a flow holds hundreds of thousands of objects (Prefect's and
pydantic's models), and CPython's last garbage collection at interpreter exit walked them
all: ~0.35 s of every no-op ``lipflow download`` (2.2 s in all), again in every DVC stage.
Objects frozen with :func:`gc.freeze` are skipped by that collection, and exit still runs
every atexit handler (Prefect drains its log and event queues there) and flushes every
file; only unreachable reference cycles are left for the OS to reclaim with the process.
The same drain printed ``Still processing items: N items remaining...`` to the terminal
while it worked: a progress note of Prefect's queue services, silenced (errors still show).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import os

#: the variable a user sets to keep flow-run heartbeats (for a zombie-flow automation)
HEARTBEAT_ENV = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"

#: Prefect's queue services (their loggers are named after the class) whose drain at exit
#: logs "Still processing items" at warning level
DRAINING_SERVICES = ("APILogWorker", "EventsWorker")

_held = contextlib.ExitStack()
atexit.register(_held.close)


def _reread_environment() -> None:
    """Prefect reads the environment into its global settings when first imported; in a
    command forked from the warm command server (:mod:`lipflow.flows.command_server`)
    that import happened before this command's environment (``PREFECT_API_URL`` above
    all) was set, so the settings are read again. A no-op cost (~ms) elsewhere."""
    import sys

    if "prefect.context" in sys.modules:
        from prefect.context import refresh_global_settings_context

        refresh_global_settings_context()


def use_command_settings() -> bool:
    """For the rest of this process: a quiet, fast exit, and flows without heartbeats
    unless the user asked for them; returns whether heartbeats were turned off."""
    _reread_environment()
    for name in DRAINING_SERVICES:
        logging.getLogger(name).setLevel(logging.ERROR)
    # registered before the flow's services start, so it runs after their drain handlers
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    if os.environ.get(HEARTBEAT_ENV):
        return False
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    _held.enter_context(temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}))
    return True
