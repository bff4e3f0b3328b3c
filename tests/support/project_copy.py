"""A throw-away git repository holding this project's working tree, for DVC tests.

DVC's ``params diff``/``metrics diff``/``exp`` need git history, and ``dvc repro`` writes
outputs and ``dvc.lock``; neither may touch the developer's checkout. The copy takes the
tracked and untracked-but-not-ignored files (what a commit would hold), so tests see the
working tree as it is, not only the last commit.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from lipflow.tasks.common.executables import tool_env as lipflow_tool_env


def tool_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """lipflow's environment for ``dvc``/``lipflow`` subprocesses, minus a test's LIPFLOW_ROOT."""
    env = lipflow_tool_env()
    env.pop("LIPFLOW_ROOT", None)
    env.update(extra or {})
    return env


def run(cmd: list[str], cwd: Path, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run a command in ``cwd`` with :func:`tool_env`, capturing text output."""
    result = subprocess.run(cmd, cwd=cwd, env=tool_env(), capture_output=True, text=True, **kw)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({result.returncode})\n{result.stdout}\n{result.stderr}"
        )
    return result


#: What a ``dvc repro`` in the developer's checkout (``./run demo``) leaves untracked: the
#: record of that run, not part of the project a test starts from.
REPRO_PRODUCTS = ("dvc.lock", "metrics/", "plots/")


def copy_project(src: Path, dest: Path) -> Path:
    """Copy the project's committable files into ``dest`` and commit them in a new repo.

    Untracked products of an earlier repro in ``src`` (:data:`REPRO_PRODUCTS`) are left
    out, so the copy starts unbuilt whether or not ``./run demo`` ran there first.
    """
    def ls_files(*flags: str) -> list[str]:
        out = subprocess.run(["git", "ls-files", "-z", *flags], cwd=src, capture_output=True,
                             check=True).stdout.decode()
        return [rel for rel in out.split("\0") if rel]

    untracked = [rel for rel in ls_files("--others", "--exclude-standard")
                 if not rel.startswith(REPRO_PRODUCTS)]
    for rel in ls_files("--cached") + untracked:
        source = src / rel
        if not source.is_file():  # deleted in the working tree
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    git = ["git", "-c", "user.name=lipflow-test", "-c", "user.email=test@lipflow.invalid"]
    run(["git", "init", "-q", "-b", "main"], dest)
    run(["git", "add", "-A"], dest)
    run([*git, "commit", "-qm", "project copy"], dest)
    return dest


def commit(repo: Path, message: str) -> None:
    """Commit everything in ``repo``."""
    git = ["git", "-c", "user.name=lipflow-test", "-c", "user.email=test@lipflow.invalid"]
    run(["git", "add", "-A"], repo)
    run([*git, "commit", "-qm", message], repo)
