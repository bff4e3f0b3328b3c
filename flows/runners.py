"""Where a flow's tasks run: a local thread or process pool, or an existing Dask/Ray cluster.

Every flow command takes ``--runner thread|process|dask|ray`` and ``--address``; the same
two values live in ``params.yaml`` under ``runtime:``. A flow is given its runner with
``my_flow.with_options(task_runner=make_task_runner(...))``, so the flow code itself never
knows where it runs.

Why a process pool by default: preprocessing is CPU-bound Python (face detection, video
decoding, feature extraction) that holds the GIL, so threads would serialise it. Tasks
pass paths and small rows, never arrays; on Dask and Ray, whose workers may share no disk
with the driver, a prepare batch comes back as one encoded result file's bytes
(``flows/prepare.py``), which is what a cluster's result transport is built for.

Why Dask/Ray come through ``prefect-dask`` / ``prefect-ray``: those packages map Prefect
task submission onto the cluster's scheduler and keep task states in the Prefect UI; we
import them only when asked so the default install does not need them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from lipflow.tasks.common.errors import ConfigError

RunnerKind = Literal["thread", "process", "dask", "ray"]
RUNNER_KINDS: tuple[str, ...] = ("thread", "process", "dask", "ray")
DEFAULT_RUNNER: RunnerKind = "process"


def default_workers() -> int:
    """Workers for a local pool: one per core this process may use."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # pragma: no cover - macOS / Windows have no sched_getaffinity
        return max(os.cpu_count() or 1, 1)


def _check_workers(max_workers: int | None) -> int | None:
    if max_workers is None:
        return None
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise ConfigError(f"runtime max_workers must be a positive integer, got {max_workers!r}")
    return max_workers


def check_runner(kind: str | None = None, address: str | None = None,
                 max_workers: int | None = None) -> tuple[str, str | None, int | None]:
    """``(kind, address, max_workers)`` checked without importing Prefect.

    Why separate from :func:`make_task_runner`: the CLI reports a bad ``--runner`` before
    it imports Prefect or contacts a server, so the user gets the line in well under 2 s.
    """
    kind = (kind or DEFAULT_RUNNER).lower()
    if kind not in RUNNER_KINDS:
        raise ConfigError(f"unknown runner '{kind}'; choose one of {', '.join(RUNNER_KINDS)}")
    workers = _check_workers(max_workers)
    if address and kind in ("thread", "process"):
        raise ConfigError(f"--address {address} needs --runner dask or ray, not {kind}")
    return kind, address, workers


def make_task_runner(kind: str | None = None, address: str | None = None,
                     max_workers: int | None = None) -> Any:
    """Return a Prefect task runner for ``kind`` (default: a process pool sized to the cores).

    ``address`` names an existing cluster: a Dask scheduler (``tcp://host:8786``) or a Ray
    head (``ray://host:10001``). Without it, ``dask`` starts a local ``LocalCluster`` with
    ``max_workers`` single-threaded worker processes (default: one per core) and ``ray``
    starts a local Ray instance. ``thread`` and ``process`` ignore ``address``; giving one
    is a mistake we report rather than silently run locally.
    """
    kind, address, workers = check_runner(kind, address, max_workers)
    if kind == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=workers or default_workers())
    if kind == "process":
        from lipflow.flows.shared_api import SharedApiProcessPoolTaskRunner

        return SharedApiProcessPoolTaskRunner(max_workers=workers or default_workers())
    if kind == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as err:
            raise ConfigError(
                "runner 'dask' needs prefect-dask and dask.distributed: "
                "pip install 'lipflow[dask]' (or: pip install prefect-dask 'dask[distributed]')"
            ) from err
        if address:
            return DaskTaskRunner(address=address)
        from lipflow.flows.shared_api import shared_api_dask_runner

        return shared_api_dask_runner(cluster_kwargs={
            "n_workers": workers or default_workers(),
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        })
    try:
        from prefect_ray import RayTaskRunner
    except ImportError as err:
        raise ConfigError(
            "runner 'ray' needs prefect-ray: "
            "pip install 'lipflow[ray]' (or: pip install prefect-ray)"
        ) from err
    if address:
        return RayTaskRunner(address=address)
    from lipflow.flows.shared_api import shared_api_ray_runner

    # a local Ray: no dashboard (a web server per run, for nothing); workers = max_workers
    init_kwargs: dict[str, Any] = {"include_dashboard": False}
    if workers:
        init_kwargs["num_cpus"] = workers
    return shared_api_ray_runner(init_kwargs=init_kwargs)


def runtime_settings(params: Mapping[str, Any], runner: str | None = None,
                     address: str | None = None,
                     max_workers: int | None = None) -> tuple[str, str | None, int | None]:
    """Merge ``params['runtime']`` with command-line overrides (a given CLI value wins)."""
    runtime = params.get("runtime") or {}
    if not isinstance(runtime, Mapping):
        raise ConfigError("params.yaml 'runtime' must be a mapping (runner, address, max_workers)")
    kind = runner or runtime.get("runner") or DEFAULT_RUNNER
    addr = address or runtime.get("address") or None
    workers = max_workers if max_workers is not None else runtime.get("max_workers")
    return str(kind), addr, _check_workers(workers)


def runner_from_params(params: Mapping[str, Any], runner: str | None = None,
                       address: str | None = None, max_workers: int | None = None) -> Any:
    """The task runner that ``params.yaml``'s ``runtime:`` section (plus CLI overrides) asks for."""
    return make_task_runner(*runtime_settings(params, runner, address, max_workers))


def tree_digest(path: Path) -> str:
    """sha256 over every file under ``path``: its POSIX relative path, then its bytes.

    Why: "byte-identical outputs" (same store from two runners, or after a DVC pull) is
    one string comparison. Each file contributes its path and size before its bytes, so
    no two different trees can run together into the same stream. Files are visited in
    sorted order so the digest does not depend on directory listing order; a single file
    digests as its name, size and bytes.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist")
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        rel = file.name if file == root else file.relative_to(root).as_posix()
        digest.update(f"{rel}\0{file.stat().st_size}\0".encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
