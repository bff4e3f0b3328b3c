"""Process environment that every lipflow entry point sets before importing Prefect.

Prefect reads its settings at import time, so ``flows/__init__.py`` calls
:func:`apply_defaults` first. Each value is a default: a variable the user already set
(a real ``PREFECT_API_URL``, another ``PREFECT_HOME``) wins.
"""

from __future__ import annotations

import os
from pathlib import Path

from tasks.config import project_root

#: Prefect logging config that keeps user errors to one line on the console.
LOGGING_CONFIG = Path(__file__).resolve().parents[1] / "flows" / "logging.yml"

DEFAULTS = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "DVC_NO_ANALYTICS": "1",
}


def apply_defaults() -> None:
    """Set telemetry off and a project-local ``PREFECT_HOME`` unless already set."""
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("PREFECT_HOME", str(project_root() / ".prefect"))
    os.environ.setdefault("PREFECT_LOGGING_CONFIG_PATH", str(LOGGING_CONFIG))
