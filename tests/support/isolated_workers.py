"""Dask workers that share no folder with the driver, on one test machine.

A real cluster's workers have their own disks; here each worker process gets its own
``TMPDIR`` and an audit hook (PEP 578) that refuses any file operation under the
driver's folders, so a task that wrote into (or read from) the driver's store folder
fails instead of passing by the accident of a shared disk.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin

#: Audit events whose first argument is a path (open, rename and the like).
_PATH_EVENTS = {"open", "os.rename", "os.mkdir", "os.remove", "os.rmdir", "os.listdir",
                "os.scandir", "os.truncate", "os.chmod", "os.utime", "os.link", "os.symlink",
                "shutil.rmtree", "shutil.copyfile", "shutil.move"}


class IsolatedWorker(WorkerPlugin):
    """Per worker: ``TMPDIR`` = ``<tmp_root>/<worker name>``; ``forbidden`` folders refused."""

    name = "lipflow-isolated-worker"

    def __init__(self, tmp_root: str, forbidden: list[str]) -> None:
        self.tmp_root = tmp_root
        self.forbidden = [os.path.realpath(f) for f in forbidden]

    def setup(self, worker: Any) -> None:
        own = Path(self.tmp_root) / str(worker.name)
        own.mkdir(parents=True, exist_ok=True)
        os.environ["TMPDIR"] = str(own)
        tempfile.tempdir = None  # recomputed from TMPDIR on next use
        forbidden = tuple(self.forbidden)

        def refuse(event: str, args: tuple[Any, ...]) -> None:
            if event not in _PATH_EVENTS or not args:
                return
            for value in args[:2]:
                if isinstance(value, int) or value is None:
                    continue
                try:
                    path = os.path.realpath(os.fsdecode(value))
                except (TypeError, ValueError):
                    continue
                if any(path == f or path.startswith(f + os.sep) for f in forbidden):
                    raise PermissionError(f"worker may not touch the driver's {path}")

        sys.addaudithook(refuse)


def worker_tmpdir() -> str:
    """This worker's temp folder (for ``client.run``)."""
    return tempfile.gettempdir()


def try_write(path: str) -> str:
    """Try to create ``path``; say what happened (for ``client.run``)."""
    try:
        Path(path).write_text("x")
    except PermissionError as err:
        return f"refused: {err}"
    return "written"
