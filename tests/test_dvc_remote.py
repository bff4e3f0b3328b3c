"""DVC remotes: push then pull in a fresh clone is byte-identical; ``refresh`` pushes.

Each test runs against a local-folder remote and an S3 remote (``dvc-s3``) served by moto
on loopback (:mod:`tests.support.s3`), credentials from the AWS environment variables and
the endpoint from ``dvc remote modify ... endpointurl``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lipflow.flows.runners import tree_digest
from tests.support.git_repo import commit_all, dvc, git, make_toy_project, set_param
from tests.support.s3 import aws_env, moto_s3

OUTPUTS = ("data/features/toy/s1.zarr", "models/toy.ckpt")
BUCKET = "lipflow-dvc"
#: No credential files and no instance metadata (which would reach beyond loopback).
ISOLATED = {"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_EC2_METADATA_DISABLED": "true"}

#: Adds the default remote ``shared`` to a repo; returns a function listing what it holds.
AddRemote = Callable[[Path], Callable[[], list[str]]]


@pytest.fixture(scope="module")
def s3_server():
    with moto_s3() as server, aws_env({**server.env, **ISOLATED}):
        server.make_bucket(BUCKET)
        yield server


@pytest.fixture(params=["folder", "s3"])
def add_remote(request, tmp_path) -> Iterator[AddRemote]:
    """``dvc remote add -d shared ...``: a local folder, or ``s3://`` on the moto server."""
    if request.param == "folder":
        folder = tmp_path / "remote"

        def add(repo: Path) -> Callable[[], list[str]]:
            dvc("remote", "add", "-d", "shared", str(folder), cwd=repo)
            return lambda: [p.as_posix() for p in folder.rglob("*") if p.is_file()]

        yield add
        return
    server = request.getfixturevalue("s3_server")
    prefix = f"{request.node.name.replace('[', '-').rstrip(']')}/"

    def add_s3(repo: Path) -> Callable[[], list[str]]:
        dvc("remote", "add", "-d", "shared", f"s3://{BUCKET}/{prefix}", cwd=repo)
        dvc("remote", "modify", "shared", "endpointurl", server.endpoint, cwd=repo)
        return lambda: list(server.keys(BUCKET, prefix))

    yield add_s3


def test_push_then_pull_in_a_fresh_clone_is_byte_identical(tmp_path, add_remote):
    origin, clone = tmp_path / "origin", tmp_path / "clone"
    make_toy_project(origin)
    remote_files = add_remote(origin)
    commit_all(origin, "add the shared remote")
    dvc("push", "-q", cwd=origin)
    assert remote_files(), "push wrote nothing to the remote"
    before = {out: tree_digest(origin / out) for out in OUTPUTS}

    git("clone", "-q", str(origin), str(clone), cwd=tmp_path)
    assert not (clone / OUTPUTS[0]).exists()  # data is not in git, only its .lock hashes
    # a clone must not be able to borrow the origin's cache: only the remote may serve it
    shutil.rmtree(origin / ".dvc" / "cache")
    dvc("pull", "-q", cwd=clone)

    after = {out: tree_digest(clone / out) for out in OUTPUTS}
    assert after == before
    assert (clone / OUTPUTS[0] / "zarr.json").is_file()
    assert "up to date" in dvc("status", cwd=clone)  # workspace matches dvc.lock


def test_refresh_flow_repros_and_pushes_to_the_remote(prefect_harness, tmp_path, add_remote):
    from lipflow.flows.refresh import refresh_flow
    from lipflow.tasks.ops.refresh import download_command, missing_speakers

    repo = tmp_path / "repo"
    make_toy_project(repo)
    remote_files = add_remote(repo)
    set_param(repo, "mouth_height_px", 10)  # makes the stage stale: refresh must re-run it

    result = refresh_flow(root=str(repo))

    assert result["downloaded"] == {} and result["pushed"] is True
    assert "up to date" in dvc("status", cwd=repo)  # repro ran: workspace matches dvc.lock
    assert "in sync" in dvc("status", "--cloud", cwd=repo)  # push ran: remote has it all
    assert remote_files()
    params = {"grid": {"raw_root": "raw", "speakers": ["s1", "s2"], "mirror": "sample"}}
    (repo / "raw" / "manifests").mkdir(parents=True)
    (repo / "raw" / "manifests" / "s1.parquet").write_bytes(b"")
    assert missing_speakers(params, "grid", repo) == ["s2"]
    cmd = download_command(params, "grid", ["s2"], repo)
    assert cmd[-6:] == ["s2", "--root", str(repo / "raw"), "--no-progress", "--mirror", "sample"]
    assert cmd[-8:-6] == ["download", "grid"]
    lip2wav = {"lip2wav": {"raw_root": "l2w", "speakers": ["chem"], "split": "val",
                           "limit_videos": 2}}
    assert missing_speakers(lip2wav, "lip2wav", repo) == ["chem"]
    assert download_command(lip2wav, "lip2wav", ["chem"], repo)[-7:] == [
        "--root", str(repo / "l2w"), "--no-progress", "--split", "val", "--limit", "2"]
