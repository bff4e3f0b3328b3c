"""`prepare` on a Dask LocalCluster (through prefect-dask) writes byte-identical stores
to the default local process pool: work moves as paths, results do not depend on where
or in which order tasks ran."""

from __future__ import annotations

from pathlib import Path

import pytest

from lipflow.flows.prepare import prepare_flow
from lipflow.flows.runners import make_task_runner, tree_digest
from lipflow.tasks.corpora.grid import download_grid
from lipflow.tasks.prepare.speaker import speaker_jobs
from lipflow.tasks.settings.project import load_params

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def prepare_with(kind: str, raw: Path, out: Path) -> Path:
    jobs = speaker_jobs(load_params(), "grid", ["s1"], raw, out)
    flow = prepare_flow.with_options(task_runner=make_task_runner(kind, max_workers=2))
    # one 3-s video per task: several batches, so the runner (not the driver) runs them
    (prepared,) = flow(jobs, raw, False, 3.0)
    return prepared.store


def test_dask_and_process_pool_give_identical_stores(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    download_grid(["s1"], raw, "sample", progress=False)
    by_process = prepare_with("process", raw, tmp_path / "process")
    by_dask = prepare_with("dask", raw, tmp_path / "dask")
    assert tree_digest(by_process) == tree_digest(by_dask)
    assert (by_process.with_suffix(".parquet").read_bytes()
            == by_dask.with_suffix(".parquet").read_bytes())
