"""The ``refresh`` flow: fetch what is missing, rebuild what changed, share the result.

Three tasks, in order:

1. **download**: for every configured speaker (``grid.speakers``, ``lip2wav.speakers``)
   whose raw manifest (``RAW_ROOT/manifests/<speaker>.parquet``) is absent, run
   ``lipflow download <corpus> ...``. A subprocess, not an in-process call, because it is
   exactly what a user would type and what the DVC stages run, and its output lands in
   the flow's log.
2. **dvc repro**: DVC decides what is stale (changed params, new speakers, new raw data)
   and re-runs only that.
3. **dvc push**: when a remote is configured (``dvc remote list`` is not empty), upload
   the outputs so other machines can ``dvc pull`` them; otherwise skipped and logged.

``lipflow serve`` runs this flow on the ``schedule.refresh_cron`` schedule.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from lipflow.tasks.common.errors import LipflowError
from lipflow.tasks.ops.audit import dvc_command, run_dvc
from lipflow.tasks.settings.project import load_params, resolve

#: Corpora that ``refresh`` downloads, in order; each needs a ``lipflow download <corpus>``.
REFRESH_CORPORA = ("grid", "lip2wav")


class RefreshError(LipflowError):
    """A refresh step (download, dvc repro, dvc push) exited with an error."""


def lipflow_command() -> list[str]:
    """The ``lipflow`` CLI: the one beside this interpreter, else on PATH, else via Python."""
    beside = Path(sys.executable).with_name("lipflow")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("lipflow")
    if found:
        return [found]
    return [sys.executable, "-c", "from lipflow.flows.cli import main; main()"]


def missing_speakers(params: Mapping[str, Any], corpus: str, root: Path) -> list[str]:
    """Configured speakers of ``corpus`` that have no raw manifest yet."""
    conf = params.get(corpus) or {}
    raw_root = resolve(conf.get("raw_root", f"data/raw/{corpus}"), root)
    return [s for s in conf.get("speakers") or []
            if not (raw_root / "manifests" / f"{s}.parquet").is_file()]


def download_command(params: Mapping[str, Any], corpus: str, speakers: list[str],
                     root: Path) -> list[str]:
    """The ``lipflow download`` command line that fetches ``speakers`` of ``corpus``."""
    conf = params.get(corpus) or {}
    raw_root = resolve(conf.get("raw_root", f"data/raw/{corpus}"), root)
    cmd = [*lipflow_command(), "download", corpus, *speakers, "--root", str(raw_root),
           "--no-progress"]
    if corpus == "grid":
        cmd += ["--mirror", str(conf.get("mirror", "zenodo"))]
    elif corpus == "lip2wav":
        cmd += ["--split", str(conf.get("split", "test"))]
        if conf.get("limit_videos"):  # 0 / null: every video of the list
            cmd += ["--limit", str(int(conf["limit_videos"]))]
    return cmd


def _run_logged(cmd: list[str], cwd: Path, what: str) -> str:
    """Run ``cmd`` in ``cwd``; log its output; raise :class:`RefreshError` if it fails."""
    logger = get_run_logger()
    logger.info("%s: %s", what, " ".join(cmd))
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False,
                            env=_tool_env())
    output = (result.stdout + result.stderr).strip()
    if output:
        logger.info("%s output:\n%s", what, output[-20000:])
    if result.returncode != 0:
        raise RefreshError(f"{what} failed (exit {result.returncode}) in {cwd}: "
                           f"{' '.join(cmd)}\n{output[-2000:]}")
    return output


def _tool_env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["DVC_NO_ANALYTICS"] = "1"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@task(name="refresh-download", task_run_name="download-missing")
def download_missing(root: Path) -> dict[str, list[str]]:
    """Download every configured speaker that has no raw manifest; returns what was fetched."""
    params = load_params(Path(root) / "params.yaml")
    fetched: dict[str, list[str]] = {}
    for corpus in REFRESH_CORPORA:
        speakers = missing_speakers(params, corpus, Path(root))
        if speakers:
            _run_logged(download_command(params, corpus, speakers, Path(root)), Path(root),
                        f"download {corpus}")
            fetched[corpus] = speakers
    if not fetched:
        get_run_logger().info("every configured speaker is already downloaded")
    return fetched


@task(name="refresh-dvc-repro", task_run_name="dvc-repro")
def dvc_repro(root: Path) -> str:
    """``dvc repro``: re-run the stages whose params, code or inputs changed."""
    return _run_logged([*dvc_command(), "repro"], Path(root), "dvc repro")


@task(name="refresh-dvc-push", task_run_name="dvc-push")
def dvc_push(root: Path) -> bool:
    """``dvc push`` when a remote is configured; returns whether it pushed."""
    remotes = run_dvc(["remote", "list"], Path(root)).strip()
    if not remotes:
        get_run_logger().info("no DVC remote configured (dvc remote add -d ...); not pushing")
        return False
    _run_logged([*dvc_command(), "push"], Path(root), "dvc push")
    return True


@flow(name="refresh", log_prints=True)
def refresh_flow(root: str | None = None, push: bool = True) -> dict[str, Any]:
    """Download missing speakers, ``dvc repro``, then ``dvc push`` if a remote is set.

    ``root`` is the project folder (holding ``params.yaml`` and ``dvc.yaml``); a deployment
    records it so a scheduled run works whatever folder the serving process started in.
    """
    from lipflow.tasks.settings.project import project_root

    project = Path(root) if root else project_root()
    if not (project / "dvc.yaml").is_file():
        raise RefreshError(f"{project} has no dvc.yaml; refresh needs the lipflow DVC project")
    fetched = download_missing(project)
    repro_log = dvc_repro(project)
    pushed = dvc_push(project) if push else False
    return {"downloaded": fetched, "pushed": pushed, "repro_tail": repro_log[-2000:]}
