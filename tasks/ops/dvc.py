"""Running dvc (and other project tools) as subprocesses, with one-line errors.

``lipflow audit`` reads ``dvc params diff`` / ``metrics diff`` / ``diff`` as JSON and the
``refresh`` flow runs ``dvc repro`` and ``dvc push``; both go through here so a failing
dvc is always reported the same way: the command, the folder and dvc's last line.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lipflow.tasks.common.errors import LipflowError
from lipflow.tasks.common.executables import dvc_command, tool_env


class ToolError(LipflowError):
    """dvc (or another project tool) could not run, or exited with an error."""


def run_dvc(args: Sequence[str], repo: Path) -> str:
    """Run ``dvc ARGS`` in ``repo`` and return stdout, or raise :class:`ToolError`."""
    try:
        result = subprocess.run([*dvc_command(), *args], cwd=repo, env=tool_env(), check=False,
                                capture_output=True, text=True)
    except OSError as err:
        raise ToolError(f"cannot run dvc in {repo}: {err}") from err
    if result.returncode != 0:
        msg = (result.stderr or result.stdout).strip().splitlines()
        raise ToolError(f"dvc {' '.join(args)} failed in {repo}: "
                        f"{msg[-1] if msg else 'exit ' + str(result.returncode)}")
    return result.stdout


def dvc_json(args: Sequence[str], repo: Path) -> dict[str, Any]:
    """``dvc ARGS --json`` parsed ({} when dvc prints nothing)."""
    out = run_dvc([*args, "--json"], repo).strip()
    if not out:
        return {}
    try:
        return json.loads(out)
    except json.JSONDecodeError as err:
        raise ToolError(f"dvc {' '.join(args)} printed something that is not JSON: "
                        f"{out[:200]}") from err


def has_remote(repo: Path) -> bool:
    """Whether the DVC project at ``repo`` has any remote configured."""
    return bool(run_dvc(["remote", "list"], repo).strip())


def run_logged(cmd: Sequence[str], cwd: Path, what: str,
               log: Callable[[str], None] = print) -> str:
    """Run ``cmd`` in ``cwd``, pass its output to ``log``; :class:`ToolError` if it fails."""
    log(f"{what}: {' '.join(cmd)}")
    result = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False,
                            env=tool_env())
    output = (result.stdout + result.stderr).strip()
    if output:
        log(f"{what} output:\n{output[-20000:]}")
    if result.returncode != 0:
        raise ToolError(f"{what} failed (exit {result.returncode}) in {cwd}: "
                        f"{' '.join(cmd)}\n{output[-2000:]}")
    return output
