"""The one place that configures the lipflow process: environment defaults for Prefect and DVC.

Prefect reads its settings when it is first imported, so the CLI (and anything else that
starts flows: ``lipflow serve``, tests, benchmarks) calls :func:`configure_process` before
importing Prefect. Importing a lipflow module never changes the environment by itself.
Each value is a default: a variable the user already set (a real ``PREFECT_API_URL``,
another ``PREFECT_HOME``) wins.
"""

from __future__ import annotations

import os
from importlib.resources import files

from lipflow.tasks.settings.project_folder import find_project, prefect_home_for

#: Prefect logging config that keeps user errors to one line on the console.
LOGGING_CONFIG = str(files("lipflow.flows") / "logging.yml")

DEFAULTS = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "DVC_NO_ANALYTICS": "1",
    # MediaPipe's full-range model logs a glog warning every few frames; keep ERROR and
    # above. glog reads it when mediapipe's library loads, so it is set before any work.
    "GLOG_minloglevel": "2",
}


def configure_process() -> None:
    """Set telemetry off and a project-local ``PREFECT_HOME`` unless already set.

    Outside a project (lipflow run from any folder) ``PREFECT_HOME`` stays Prefect's own
    default (``~/.prefect``): one server for all such runs, not a ``.prefect`` folder and a
    server in every folder a video happens to be in.
    """
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    if find_project() is not None:  # the launcher finds the command server by this rule
        os.environ.setdefault("PREFECT_HOME", str(prefect_home_for(os.environ)))
    os.environ.setdefault("PREFECT_LOGGING_CONFIG_PATH", LOGGING_CONFIG)
