"""Progress reporting shared by the flows: a terminal bar and a Prefect progress artifact."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

from lipflow.tasks.common.progress import show_progress

T = TypeVar("T")


def bar(items: Iterable[T], *, total: int | None = None, desc: str, progress: bool | None = None,
        unit: str = "it") -> Iterator[T]:
    """Wrap ``items`` in a tqdm bar when progress is shown."""
    return iter(tqdm(items, total=total, desc=desc, unit=unit, disable=not show_progress(progress)))


class ProgressArtifact:
    """A Prefect progress artifact updated as work completes (a no-op outside a flow run)."""

    def __init__(self, total: int, description: str) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.artifact_id = None
        try:
            from prefect.artifacts import create_progress_artifact
            from prefect.context import FlowRunContext

            if FlowRunContext.get() is not None:
                self.artifact_id = create_progress_artifact(progress=0.0, description=description)
        except Exception:  # noqa: BLE001 - artifacts are a courtesy, never a failure
            self.artifact_id = None

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.artifact_id is None:
            return
        try:
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(self.artifact_id, progress=100.0 * self.done / self.total)
        except Exception:  # noqa: BLE001
            pass
