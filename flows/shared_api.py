"""Worker processes share the parent's Prefect API instead of each starting their own.

With no ``PREFECT_API_URL`` set, Prefect runs an *ephemeral* API server for the process.
A spawned worker (the process pool, a Dask ``LocalCluster``) inherits no server and
starts its own, 10-20 s each, and its task runs are invisible to the parent's API. The
runners below export the parent's API address to the environment before their workers
are spawned, so the whole run reports to one API (measured on the sample: 86 s -> 28 s
for one speaker with two workers).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.task_runners import ProcessPoolTaskRunner

WORKER_PRELOAD = ("lipflow.flows.prepare", "cv2", "mediapipe", "ai_edge_litert.interpreter")
"""What the pool's fork server imports once, before it forks the workers: Prefect,
lipflow's stages and the face models' runtimes (~3.5 s of CPU on this machine kind).
Spawned workers each imported all of it again; forked from the server they start with
it (GRID s1 with 2 workers: ~3.5 CPU-s less per run, more with more workers)."""


def export_api_url() -> str | None:
    """Put the current client's API address into ``PREFECT_API_URL`` (if not already set)."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            url = str(client.api_url)
    except Exception:  # noqa: BLE001 - without an API the workers fall back to their own
        return None
    if url.startswith("http"):
        os.environ["PREFECT_API_URL"] = url.rstrip("/")
        return url
    return None


class _StartMethod:
    """``multiprocessing`` as :mod:`prefect.task_runners` sees it, with ``get_context``
    answering ``context`` (Prefect hard-codes ``spawn``)."""

    def __init__(self, module: Any, context: Any) -> None:
        self._module, self._context = module, context

    def get_context(self, method: str | None = None) -> Any:
        return self._context

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


@contextmanager
def forkserver_workers(preload: tuple[str, ...] = WORKER_PRELOAD) -> Iterator[None]:
    """While Prefect builds its process pool: workers forked from a fork server that
    imported ``preload`` once, instead of spawned ones that each import everything.

    A fork server is a fresh process (started like a spawned one, with this process's
    environment and ``sys.path``) that holds no threads, so forking it is as safe as
    spawning; a module that fails to import there is imported by the worker as before.
    """
    import prefect.task_runners as runners

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(preload))
    original = runners.multiprocessing
    runners.multiprocessing = _StartMethod(original, context)  # type: ignore[assignment]
    try:
        yield
    finally:
        runners.multiprocessing = original


class SharedApiProcessPoolTaskRunner(ProcessPoolTaskRunner):
    """A process pool whose workers report to the parent's (possibly ephemeral) API, forked
    from a fork server that preloaded lipflow (:func:`forkserver_workers`)."""

    def __enter__(self) -> Any:
        export_api_url()
        with forkserver_workers():
            return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        stop_forkserver()


def stop_forkserver() -> None:
    """Stop this process's fork server and reap it, once its workers are gone.

    Why: the workers are the fork server's children, so their CPU time reaches this
    process's ``RUSAGE_CHILDREN`` (what ``time`` and ``benchmarks/prepare_scale.py``
    count) only through the server, and only once it is waited for; and a server left
    running would outlive the pool. The pool's shutdown has already waited for every
    worker, which the server reaps before it reports their exit. Uses the standard
    library's ``ForkServer._stop`` (there since Python 3.8); a no-op where it is missing.
    """
    from multiprocessing import forkserver

    stop = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)
    if stop is not None:
        stop()


def shared_api_dask_runner(**kwargs: Any) -> Any:
    """A ``DaskTaskRunner`` whose local-cluster workers report to the parent's API."""
    from prefect_dask import DaskTaskRunner

    class SharedApiDaskTaskRunner(DaskTaskRunner):
        def __enter__(self) -> Any:
            export_api_url()
            return super().__enter__()

    return SharedApiDaskTaskRunner(**kwargs)


def shared_api_ray_runner(**kwargs: Any) -> Any:
    """A ``RayTaskRunner`` whose workers (started by its own local Ray) report to the
    parent's API: Ray's worker processes inherit the environment of the ``ray.init`` call."""
    from prefect_ray import RayTaskRunner

    class SharedApiRayTaskRunner(RayTaskRunner):
        def __enter__(self) -> Any:
            export_api_url()
            return super().__enter__()

    return SharedApiRayTaskRunner(**kwargs)
