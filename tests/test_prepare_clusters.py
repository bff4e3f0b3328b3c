"""`prepare` on clusters whose workers share no disk with the driver, and on Ray.

Dask: a LocalCluster of separate worker processes, each with its own TMPDIR and refused
every file operation under the driver's output folder (where its work folder and batch
results live): batch results come back as task results (bytes). Ray: a local Ray
started by ``--runner ray`` through prefect-ray. Both stores are byte-identical to the
thread runner's (where workers write results beside the store)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lipflow.flows.prepare import prepare_flow
from lipflow.flows.runners import make_task_runner, tree_digest
from lipflow.tasks.prepare.speaker import speaker_jobs
from lipflow.tasks.settings.project import load_params

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

#: seconds of video per task: one 3-s sample video each, so the cluster runs several
TASK_SECONDS = 3.0


@pytest.fixture(scope="module")
def sample_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lipflow.tasks.corpora.grid import download_grid

    raw = tmp_path_factory.mktemp("raw")
    download_grid(["s1"], raw, "sample", progress=False)
    return raw


@pytest.fixture(scope="module")
def thread_store(sample_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_with(make_task_runner("thread", max_workers=2), sample_raw,
                        tmp_path_factory.mktemp("thread"))


def prepare_with(runner, raw: Path, out: Path) -> Path:
    jobs = speaker_jobs(load_params(), "grid", ["s1"], raw, out)
    (prepared,) = prepare_flow.with_options(task_runner=runner)(jobs, raw, False, TASK_SECONDS)
    assert prepared.summary.batches == 3 and prepared.summary.kept == 3
    return prepared.store


def same_store(a: Path, b: Path) -> bool:
    return (tree_digest(a) == tree_digest(b)
            and a.with_suffix(".parquet").read_bytes() == b.with_suffix(".parquet").read_bytes())


def test_dask_workers_without_the_drivers_disk_give_the_thread_runners_store(
        sample_raw: Path, thread_store: Path, tmp_path: Path) -> None:
    from distributed import Client, LocalCluster
    from prefect_dask import DaskTaskRunner

    from lipflow.flows.shared_api import export_api_url
    from tests.support.isolated_workers import IsolatedWorker, try_write, worker_tmpdir

    out = tmp_path / "features"
    out.mkdir()
    export_api_url()  # the workers report to this session's test API
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.register_plugin(IsolatedWorker(str(tmp_path / "workers"), [str(out)]))
        tmpdirs = client.run(worker_tmpdir)
        assert len(set(tmpdirs.values())) == 2
        assert all(Path(d).parent == tmp_path / "workers" for d in tmpdirs.values())
        probes = client.run(try_write, str(out / "probe"))
        assert all(v.startswith("refused") for v in probes.values()), probes
        assert not (out / "probe").exists()

        store = prepare_with(DaskTaskRunner(address=cluster.scheduler_address), sample_raw,
                             out)
        assert sorted(p.name for p in out.iterdir()) == ["s1.parquet", "s1.zarr"]
        assert all(not list(Path(d).iterdir()) for d in tmpdirs.values()), \
            "workers leave nothing in their temp folders"
    assert same_store(store, thread_store)


def test_local_ray_cluster_gives_the_thread_runners_store(
        sample_raw: Path, thread_store: Path, tmp_path: Path) -> None:
    import ray

    runner = make_task_runner("ray", max_workers=2)
    assert runner.init_kwargs["num_cpus"] == 2
    store = prepare_with(runner, sample_raw, tmp_path / "ray")
    assert not ray.is_initialized(), "the runner shuts down the Ray it started"
    assert same_store(store, thread_store)


def test_dask_workers_without_the_drivers_disk_publish_an_s3_store(
        sample_raw: Path, thread_store: Path, tmp_path: Path) -> None:
    """The cluster case of the storage issue end to end: separate worker processes, each
    with its own TMPDIR, and the store written to an S3 API (moto on loopback). The
    published objects are the thread runner's local files byte for byte, plus the marker."""
    from distributed import Client, LocalCluster
    from prefect_dask import DaskTaskRunner

    from lipflow.flows.shared_api import export_api_url
    from lipflow.tasks.contracts.store_publish import MARKER
    from tests.support.isolated_workers import IsolatedWorker, worker_tmpdir
    from tests.support.s3 import aws_env, moto_s3
    from tests.test_s3_stores import ISOLATED

    export_api_url()
    with moto_s3() as s3, aws_env({**s3.env, **ISOLATED}):
        s3.make_bucket("clusters")
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.register_plugin(IsolatedWorker(str(tmp_path / "workers"),
                                                  [str(tmp_path / "driver")]))
            tmpdirs = client.run(worker_tmpdir)
            assert len(set(tmpdirs.values())) == 2
            store = prepare_with(DaskTaskRunner(address=cluster.scheduler_address), sample_raw,
                                 "s3://clusters/features/grid")
            assert all(not list(Path(d).iterdir()) for d in tmpdirs.values())
        objects = s3.keys("clusters", "features/grid/")
    assert store == "s3://clusters/features/grid/s1.zarr"
    prefix = "features/grid/s1.zarr/"
    published = {k.removeprefix(prefix): v for k, v in objects.items() if k.startswith(prefix)}
    local = {p.relative_to(thread_store).as_posix(): p.read_bytes()
             for p in thread_store.rglob("*") if p.is_file()}
    assert MARKER in published
    assert {k: v for k, v in published.items() if k != MARKER} == local
    assert objects["features/grid/s1.parquet"] == thread_store.with_suffix(".parquet").read_bytes()
    assert set(objects) == {prefix + k for k in published} | {"features/grid/s1.parquet"}
