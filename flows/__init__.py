"""Prefect flows and the ``lipflow`` CLI: thin composition over ``tasks/`` and ``models/``.

Importing this package sets lipflow's environment defaults (project-local
``PREFECT_HOME``, telemetry off) before any Prefect import can read them.
"""

from tasks.environment import apply_defaults

apply_defaults()
