"""Task runners: the same flow gives the same outputs on threads, processes and Dask."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from prefect import flow, task

from lipflow.flows.runners import (
    default_workers,
    make_task_runner,
    runner_from_params,
    runtime_settings,
    tree_digest,
)
from lipflow.tasks.common.errors import ConfigError


@task
def _digest_file(src: Path, out_dir: Path) -> str:
    """Work moves as paths: read a file, write a derived file, return its path's name."""
    data = Path(src).read_bytes()
    target = Path(out_dir) / (Path(src).stem + ".sha")
    target.write_text(hashlib.sha256(data).hexdigest() + f" {len(data)}\n")
    return target.name


@flow
def _map_flow(paths: list[Path], out_dir: Path) -> list[str]:
    futures = _digest_file.map(paths, out_dir)
    return [f.result() for f in futures]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("inputs")
    paths = []
    for i in range(6):
        p = folder / f"clip{i}.bin"
        p.write_bytes(bytes(range(256)) * (i + 1) + str(i).encode())
        paths.append(p)
    return paths


def _run(kind: str, inputs: list[Path], out_dir: Path) -> list[str]:
    out_dir.mkdir()
    runner = make_task_runner(kind, None, max_workers=2)
    return _map_flow.with_options(task_runner=runner)(inputs, out_dir)


def test_thread_process_and_dask_give_identical_outputs(prefect_harness, inputs, tmp_path):
    results = {kind: _run(kind, inputs, tmp_path / kind) for kind in ("thread", "process", "dask")}
    expected = [p.stem + ".sha" for p in inputs]
    assert all(names == expected for names in results.values()), results
    digests = {kind: tree_digest(tmp_path / kind) for kind in results}
    assert len(set(digests.values())) == 1, digests
    # and the files hold what the task computed, not merely the same thing everywhere
    first = (tmp_path / "thread" / "clip0.sha").read_text().split()
    assert first[0] == hashlib.sha256(inputs[0].read_bytes()).hexdigest()


def test_runner_kinds_and_defaults():
    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    default = make_task_runner(None, None)
    assert isinstance(default, ProcessPoolTaskRunner)
    assert default._max_workers == default_workers()
    assert isinstance(make_task_runner("thread", None, 3), ThreadPoolTaskRunner)
    remote = make_task_runner("dask", "tcp://10.0.0.5:8786")
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://10.0.0.5:8786"


def test_bad_runner_settings_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown runner 'spark'"):
        make_task_runner("spark", None)
    with pytest.raises(ConfigError, match="needs --runner dask or ray"):
        make_task_runner("process", "tcp://host:8786")
    with pytest.raises(ConfigError, match="positive integer"):
        make_task_runner("thread", None, 0)


def test_params_runtime_section_and_cli_overrides():
    params = {"runtime": {"runner": "thread", "address": None, "max_workers": 4}}
    assert runtime_settings(params) == ("thread", None, 4)
    assert runtime_settings(params, runner="dask", address="tcp://h:1") == ("dask", "tcp://h:1", 4)
    assert runtime_settings({}) == ("process", None, None)
    assert runner_from_params(params)._max_workers == 4


def test_tree_digest_sees_names_and_bytes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        (root / "sub").mkdir(parents=True)
        (root / "sub" / "x.bin").write_bytes(b"\x00\x01")
        (root / "y.txt").write_text("y")
    assert tree_digest(a) == tree_digest(b)
    (b / "y.txt").write_text("z")
    assert tree_digest(a) != tree_digest(b)
    (b / "y.txt").write_text("y")
    (b / "sub" / "x.bin").rename(b / "sub" / "w.bin")
    assert tree_digest(a) != tree_digest(b)
    with pytest.raises(FileNotFoundError):
        tree_digest(tmp_path / "missing")
