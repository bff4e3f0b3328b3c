"""Stores on object storage: `prepare` to an s3:// URL against a real S3 API on loopback
(moto's server, started here), read back byte-identical to a local prepare, published
atomically (a killed prepare leaves nothing readers accept), and one-line errors."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from lipflow.flows.prepare import prepare_flow
from lipflow.tasks.common.executables import lipflow_command
from lipflow.tasks.contracts.store_layout import ARRAY_DTYPES, StoreError
from lipflow.tasks.contracts.store_publish import MARKER
from lipflow.tasks.corpora.grid import download_grid
from lipflow.tasks.prepare.speaker import speaker_jobs
from lipflow.tasks.settings.project import load_params
from tests.conftest import PROJECT_ROOT
from tests.support.project_copy import tool_env
from tests.support.s3 import S3Server, aws_env, moto_s3

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

BUCKET = "lipflow-test"
#: No credential files and no instance metadata (which would reach beyond loopback).
ISOLATED = {"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="module")
def s3() -> S3Server:
    with moto_s3() as server, aws_env({**server.env, **ISOLATED}):
        server.make_bucket(BUCKET)
        yield server


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    download_grid(["s1"], root, "sample", progress=False)
    return root


def prepare_to(raw: Path, out: Path | str) -> Path | str:
    # this checkout as the project: the store records its git revision, as the CLI's does
    (prepared,) = prepare_flow(speaker_jobs(load_params(), "grid", ["s1"], raw, out),
                               PROJECT_ROOT, False, None)
    return prepared.store


@pytest.fixture(scope="module")
def local_store(raw, tmp_path_factory) -> Path:
    return prepare_to(raw, tmp_path_factory.mktemp("local"))


@pytest.fixture(scope="module")
def s3_store(s3, raw) -> str:
    return prepare_to(raw, f"s3://{BUCKET}/features/grid")


def test_prepare_to_s3_writes_the_local_store_byte_for_byte(s3, s3_store, local_store):
    assert s3_store == f"s3://{BUCKET}/features/grid/s1.zarr"
    objects = s3.keys(BUCKET, "features/grid/")
    store = {k.removeprefix("features/grid/s1.zarr/"): v for k, v in objects.items()
             if k.startswith("features/grid/s1.zarr/")}
    local = {p.relative_to(local_store).as_posix(): p.read_bytes()
             for p in local_store.rglob("*") if p.is_file()}
    assert MARKER in store
    assert {k: v for k, v in store.items() if k != MARKER} == local
    assert objects["features/grid/s1.parquet"] == local_store.with_suffix(".parquet").read_bytes()
    # nothing else: no temp prefix, no batch results left in the bucket
    assert set(objects) == {f"features/grid/s1.zarr/{k}" for k in store} | {
        "features/grid/s1.parquet"}


def test_summary_and_audit_read_the_s3_store_and_its_marker(s3_store, local_store):
    import hashlib

    from lipflow.tasks.contracts.store_reader import store_summary
    from lipflow.tasks.ops.audit import audit_store

    remote, local = store_summary(s3_store), store_summary(local_store)
    assert remote["arrays"] == local["arrays"] and remote["num_clips"] == local["num_clips"]
    assert remote["num_files"] == local["num_files"] + 1  # the marker
    report = audit_store(s3_store)
    assert report["arrays"] == audit_store(local_store)["arrays"]
    marker = report["published"]
    assert marker["objects"] == local["num_files"] and marker["bytes"] == local["bytes"]
    manifest = local_store.with_suffix(".parquet").read_bytes()
    assert marker["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()


def test_clip_window_dataset_reads_the_s3_store(s3_store, local_store):
    from lipflow.models.dataset import ClipWindowDataset

    for reader in ("direct", "zarr"):
        remote = ClipWindowDataset([s3_store], modality="face", window_frames=25, reader=reader)
        local = ClipWindowDataset([local_store], modality="face", window_frames=25)
        assert len(remote) == len(local) > 0
        for i in range(len(local)):
            a, b = remote[i], local[i]
            assert a.keys() == b.keys()
            for key in a:
                assert np.array_equal(a[key].numpy(), b[key].numpy()), (reader, i, key)


def test_plain_zarr_with_s3fs_reads_the_same_arrays(s3, s3_store, local_store):
    # what any zarr user types: s3fs underneath, endpoint and keys given explicitly
    options = {"key": "testing", "secret": "testing",
               "client_kwargs": {"endpoint_url": s3.endpoint}}
    remote = zarr.open_group(s3_store, mode="r", storage_options=options)
    local = zarr.open_group(str(local_store), mode="r")
    for key in ARRAY_DTYPES:
        assert np.array_equal(remote[key][:], local[key][:]), key
    assert dict(remote.attrs) == dict(local.attrs)


def test_an_unpublished_prefix_is_refused_by_every_reader(s3, s3_store):
    """The state a kill leaves mid-publish: every object copied, but no marker yet."""
    from lipflow.models.dataset import ClipWindowDataset
    from lipflow.tasks.contracts.store_reader import ClipReader, read_store

    client = s3.client()
    src = s3_store[len(f"s3://{BUCKET}/"):]
    for key in s3.keys(BUCKET, src + "/"):
        if not key.endswith(MARKER):
            client.copy_object(Bucket=BUCKET, Key=key.replace(src, "half/s1.zarr", 1),
                               CopySource={"Bucket": BUCKET, "Key": key})
    half = f"s3://{BUCKET}/half/s1.zarr"
    for read in (lambda: read_store(half), lambda: ClipReader(f"{half}/face"),
                 lambda: ClipWindowDataset([half], modality="mouth")):
        with pytest.raises(StoreError, match="is not published") as err:
            read()
        assert "\n" not in str(err.value)
    result = subprocess.run([*lipflow_command(), "audit", half],
                            cwd=PROJECT_ROOT, env=tool_env(), capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "is not published" in result.stderr


def _lipflow(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([*lipflow_command(), *args],
                            cwd=PROJECT_ROOT, env=tool_env(env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_prepare_killed_mid_write_leaves_no_store_and_a_rerun_completes_it(s3, raw,
                                                                          local_store):
    from lipflow.models.dataset import ClipWindowDataset

    url = f"s3://{BUCKET}/killed"
    proc = _lipflow("prepare", "grid", "s1", "--root", str(raw), "--out", url,
                    "--no-progress", start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not s3.keys(BUCKET, "killed/"):  # the first object of the store's write
            assert proc.poll() is None, f"prepare ended before writing: {proc.communicate()}"
            assert time.monotonic() < deadline, "prepare wrote nothing in 300 s"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    left = s3.keys(BUCKET, "killed/")
    assert left and f"killed/s1.zarr/{MARKER}" not in left  # it was killed mid-write
    with pytest.raises(StoreError) as err:
        ClipWindowDataset([f"{url}/s1.zarr"], modality="mouth")
    assert "\n" not in str(err.value)

    rerun = _lipflow("prepare", "grid", "s1", "--root", str(raw), "--out", url, "--no-progress")
    out, errors = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, errors
    objects = s3.keys(BUCKET, "killed/")
    assert not [k for k in objects if k.endswith(".tmp") or "/." in k]  # leftovers swept
    local = {p.relative_to(local_store).as_posix(): p.read_bytes()
             for p in local_store.rglob("*") if p.is_file()}
    store = {k.removeprefix("killed/s1.zarr/"): v for k, v in objects.items()
             if k.startswith("killed/s1.zarr/") and not k.endswith(MARKER)}
    assert store == local
    assert len(ClipWindowDataset([f"{url}/s1.zarr"], modality="mouth")) > 0


@pytest.mark.parametrize(("out", "env", "message"), [
    ("ftp://host/path", {}, "unsupported URL scheme 'ftp'"),
    ("s3://", {}, "does not name a valid bucket"),
    ("s3://no-such-bucket/features", {}, "does not exist"),
    (f"s3://{BUCKET}/features", {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
     "no credentials"),
])
def test_bad_url_missing_bucket_or_credentials_is_one_line(s3, raw, out, env, message):
    proc = _lipflow("prepare", "grid", "s1", "--root", str(raw), "--out", out,
                    env={**os.environ, **env})
    _, errors = proc.communicate(timeout=120)
    assert proc.returncode == 2, errors
    assert message in errors and errors.strip().count("\n") == 0, errors


def test_republishing_replaces_a_store_and_a_failed_write_keeps_the_old_one(s3, tmp_path):
    """write_store over a published URL: the new store replaces the old one object for
    object (several shards, a manifest, the marker); a write that fails leaves the previous
    store published and readable, and no temp prefix behind."""
    from lipflow.tasks.contracts.clip_manifest import write_clip_manifest
    from lipflow.tasks.contracts.store_layout import manifest_path_for
    from lipflow.tasks.contracts.store_publish import mark_published, require_published
    from lipflow.tasks.contracts.store_reader import read_store
    from lipflow.tasks.contracts.store_writer import write_store
    from tests.support.clips import build_store, clip_rows, store_attrs, write_fake_clips

    url = f"s3://{BUCKET}/replace/s1.zarr"
    old = write_fake_clips(tmp_path / "old", 3, seed=1)
    write_store(old, url, attrs=store_attrs(), clips_per_shard=2, progress=False)
    assert require_published(url)["manifest"] is None
    local, new = build_store(tmp_path / "local", 5, seed=2, clips_per_shard=2)

    write_store(new, url, attrs=store_attrs(), clips_per_shard=2, progress=False, mark=False)
    with pytest.raises(StoreError, match="is not published"):
        read_store(url)  # copied, manifest not yet written: still not published
    write_clip_manifest(clip_rows(new), manifest_path_for(url))
    mark_published(url, str(manifest_path_for(url)))
    objects = {k.removeprefix("replace/s1.zarr/"): v
               for k, v in s3.keys(BUCKET, "replace/s1.zarr/").items() if not k.endswith(MARKER)}
    assert objects == {p.relative_to(local).as_posix(): p.read_bytes()
                       for p in local.rglob("*") if p.is_file()}

    broken = [*new[:4], tmp_path / "missing.npy"]  # the fifth clip does not exist
    with pytest.raises(StoreError, match="does not exist"):
        write_store(broken, url, attrs=store_attrs(), clips_per_shard=2, progress=False)
    assert read_store(url)["valid_frames"].shape == (5,)  # the previous store, still published
    assert not [k for k in s3.keys(BUCKET, "replace/") if ".tmp/" in k]
