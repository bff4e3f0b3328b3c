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

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from lipflow.tasks.common.errors import LipflowError
from lipflow.tasks.common.executables import dvc_command
from lipflow.tasks.ops.dvc import has_remote, run_logged
from lipflow.tasks.ops.refresh import REFRESH_CORPORA, download_command, missing_speakers
from lipflow.tasks.settings.project import load_params


class RefreshError(LipflowError):
    """The refresh flow cannot run here (not the lipflow DVC project)."""


def _run_logged(cmd: list[str], cwd: Path, what: str) -> str:
    return run_logged(cmd, cwd, what, log=get_run_logger().info)


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
    if not has_remote(Path(root)):
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
