"""Which folder is the project: the one lookup both the CLI and its fast launcher need.

Kept free of yaml and pydantic on purpose: the ``lipflow`` launcher
(:mod:`lipflow.flows.launcher`) uses it to find the project's command server before it
imports anything else, so a command handed to that server pays milliseconds, not the
params schema's import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

PARAMS_FILE = "params.yaml"


def find_project(start: Path | None = None) -> Path | None:
    """The project root (``LIPFLOW_ROOT``, or the nearest folder up with ``params.yaml``)."""
    env = os.environ.get("LIPFLOW_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PARAMS_FILE).is_file():
            return folder
    return None


def prefect_home_for(env: Mapping[str, str]) -> Path:
    """The ``PREFECT_HOME`` a lipflow command run with ``env`` uses: the user's, else
    ``<project>/.prefect`` inside a project, else Prefect's default ``~/.prefect``
    (the rule :func:`lipflow.tasks.common.process.configure_process` applies)."""
    if env.get("PREFECT_HOME"):
        return Path(env["PREFECT_HOME"]).expanduser()
    project = find_project()
    return project / ".prefect" if project is not None else Path.home() / ".prefect"
