"""`prepare` in batches sized by video duration, resumable after a `kill -9`.

Batches are planned in raw-manifest order from header durations, so the store and clip
manifest do not depend on the batch size or the runner; a finished batch leaves a
compressed result beside the store that a rerun finds by content key; the temp work of
a dead run is removed by the next one, a live run's is not."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.prepare.batches import plan_batches, task_seconds, video_seconds
from lipflow.tasks.prepare.results import BatchClip, BatchResultWriter, read_rows
from lipflow.tasks.prepare.resume import (
    OWNER_FILE,
    UNOWNED_GRACE_S,
    batch_key,
    claim_work_dir,
    owner_alive,
    remove_results,
    results_dir,
    settings_text,
    sweep_dead_runs,
)
from lipflow.tasks.prepare.summary import reason_kind, summarise
from lipflow.tasks.prepare.video import VideoSettings
from tests.support.clips import fake_clip

BIN = Path(sys.executable).parent


def record(name: str, sha: str = "a" * 64) -> dict[str, object]:
    return {"speaker": "s1", "utterance_id": name, "video_path": f"s1/{name}.mpg",
            "video_sha256": sha}


# --- planning ---------------------------------------------------------------------------

def test_batches_pack_greedily_in_manifest_order_by_duration() -> None:
    records = [record(n) for n in "abcdef"]
    seconds = [3.0, 3.0, 3.0, 400.0, 3.0, 0.0]  # d: a long video; f: an unreadable one
    batches = plan_batches(records, seconds, 6.0)
    names = [[r["utterance_id"] for r in b.records] for b in batches]
    assert names == [["a", "b"], ["c"], ["d"], ["e", "f"]]
    assert [b.seconds for b in batches] == [6.0, 3.0, 400.0, 3.0]
    assert [b.index for b in batches] == [0, 1, 2, 3]
    assert plan_batches(records, seconds, 6.0) == batches  # deterministic
    assert [len(b.records) for b in plan_batches(records, seconds, 1.0)] == [1] * 6
    assert len(plan_batches(records, seconds, 1e9)) == 1


def test_default_batch_holds_a_shard_of_grid_videos() -> None:
    """64 3-s GRID videos a task: one store shard's clips (features.store.clips_per_shard)."""
    from lipflow.tasks.settings.schema import Store

    batches = plan_batches([record(f"u{i}") for i in range(150)], [3.0] * 150,
                           task_seconds({}))
    assert [len(b.records) for b in batches] == [64, 64, 22]
    assert len(batches[0].records) == Store().clips_per_shard


def test_task_seconds_cli_wins_over_params_and_must_be_positive() -> None:
    assert task_seconds({"runtime": {"task_seconds_of_video": 60}}) == 60.0
    assert task_seconds({"runtime": {"task_seconds_of_video": 60}}, 2.5) == 2.5
    for bad in (0, -1.0):
        with pytest.raises(ConfigError, match="--task-seconds"):
            task_seconds({}, bad)
    with pytest.raises(ConfigError, match="task_seconds_of_video"):
        task_seconds({"runtime": {"task_seconds_of_video": 0}})


def test_durations_come_from_the_header_and_a_bad_file_counts_zero(sample_grid: Path,
                                                                   tmp_path: Path) -> None:
    assert video_seconds(record("bbaf2n"), sample_grid) == pytest.approx(3.0, abs=0.1)
    assert video_seconds(record("missing"), sample_grid) == 0.0
    (tmp_path / "s1").mkdir()
    (tmp_path / "s1/notes.mpg").write_text("not a video")
    assert video_seconds(record("notes"), tmp_path) == 0.0


def test_batch_key_follows_videos_settings_and_code() -> None:
    settings = VideoSettings(fps=25.0, preprocess={"face_size_px": 96}, features={})
    text = settings_text(settings)
    base = batch_key([record("a")], text, "code")
    assert batch_key([record("a")], text, "code") == base
    assert batch_key([record("a", sha="b" * 64)], text, "code") != base
    assert batch_key([record("a"), record("b")], text, "code") != base
    other = settings_text(VideoSettings(fps=25.0, preprocess={"face_size_px": 48}, features={}))
    assert batch_key([record("a")], other, "code") != base
    assert batch_key([record("a")], text, "edited") != base


# --- results ----------------------------------------------------------------------------

def test_batch_result_holds_store_chunks_that_pack_into_the_same_store(tmp_path: Path) -> None:
    """A worker's result holds its clips already encoded as the store's chunks; the driver
    packs a store from them (nothing decoded) that equals packing the clips directly."""
    from lipflow.flows.runners import tree_digest
    from lipflow.tasks.contracts.clip_record import save_clip
    from lipflow.tasks.contracts.store_chunks import write_store_from_chunks
    from lipflow.tasks.contracts.store_writer import write_store
    from lipflow.tasks.prepare.results import save_result, store_encoding
    from tests.support.clips import store_attrs

    clips = {f"s1__u{i}__0": fake_clip(i, face_px=32, mouth_hw=(24, 40)) for i in range(3)}
    features = {"store": {"codec": "lz4", "clips_per_shard": 2}}
    encoding = store_encoding(features)
    target = tmp_path / "result.zip"
    with BatchResultWriter(tmp_path / "result.partial", encoding) as out:
        rows = [{"clip_id": name, "kept": True, "clip_path": out.add_clip(name, arrays),
                 "detection_rate": np.float64(0.9), "source_path": "s1/u.mpg"}
                for name, arrays in clips.items()]
        rows.append({"clip_id": "s1/bad/file", "kept": False, "clip_path": None,
                     "detection_rate": None, "source_path": "s1/bad.mpg"})
        out.finish(rows, target)
    assert not (tmp_path / "result.partial").exists()
    back = read_rows(target, encoding)
    assert [r["clip_id"] for r in back] == [r["clip_id"] for r in rows]
    assert back[0]["detection_rate"] == 0.9 and back[-1]["clip_path"] is None
    assert all(isinstance(r["clip_path"], BatchClip) for r in back[:3])
    kept = [r["clip_path"] for r in back[:3]]
    assembled = write_store_from_chunks(kept, tmp_path / "a.zarr", attrs=store_attrs(),
                                        encoding=encoding, progress=False)
    paths = [save_clip(tmp_path / f"{name}.npy", arrays) for name, arrays in clips.items()]
    direct = write_store(paths, tmp_path / "d.zarr", attrs=store_attrs(), codec="lz4",
                         clips_per_shard=2, progress=False)
    assert tree_digest(assembled) == tree_digest(direct)

    # a result sent back as bytes is saved whole; one made with another encoding is refused
    copy = save_result(target.read_bytes(), tmp_path / "copy.zip", tmp_path)
    assert copy.read_bytes() == target.read_bytes() and not list(tmp_path.glob("*.received"))
    with pytest.raises(ValueError, match="encoded as"):
        read_rows(target, store_encoding({"store": {"codec": "zstd"}}))


# --- ownership of temp work ---------------------------------------------------------------

def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_dead_runs_work_is_swept_and_a_live_runs_is_not(tmp_path: Path) -> None:
    store = tmp_path / "s1.zarr"
    mine = claim_work_dir(store)
    assert owner_alive(mine) and results_dir(store).is_dir()
    dead = tmp_path / ".s1.work.dead"
    dead.mkdir()
    owner = json.loads((mine / OWNER_FILE).read_text())
    (dead / OWNER_FILE).write_text(json.dumps({**owner, "pid": dead_pid()}))
    (dead / "x.partial").write_bytes(b"half a batch")
    fresh, stale = tmp_path / ".s1.work.fresh", tmp_path / ".s1.work.stale"
    fresh.mkdir()
    stale.mkdir()
    old = time.time() - 2 * UNOWNED_GRACE_S
    os.utime(stale, (old, old))
    other = tmp_path / ".s10.work.dead"  # another speaker's: not ours to judge
    other.mkdir()
    store_tmp = tmp_path / ".s1.zarr.abc.tmp"
    store_tmp.mkdir()

    removed = sweep_dead_runs(store, keep=mine)
    assert set(removed) == {dead, stale}
    assert mine.is_dir() and fresh.is_dir() and other.is_dir()
    assert store_tmp.is_dir(), "a live run may be writing the store"
    assert not remove_results(store, mine), "the fresh, unowned run may still need them"

    fresh.rmdir()
    sweep_dead_runs(store, keep=mine)
    assert not store_tmp.exists()
    assert remove_results(store, mine) and not results_dir(store).exists()


# --- summary ----------------------------------------------------------------------------

def test_summary_groups_rejections_by_kind() -> None:
    assert reason_kind("detection rate 0.62 below 0.80") == "detection rate below 0.80"
    assert reason_kind("/data/raw/s1/x.mpg: empty file (0 bytes)", "s1/x.mpg") == "empty file"
    assert reason_kind("two faces of similar size (a second face 0.83 of the tracked face's "
                       "area in 4 of 75 frames)") == "two faces of similar size"
    rows = [{"kept": True, "reject_reason": None}] * 5 + [
        {"kept": False, "reject_reason": f"detection rate 0.{i}0 below 0.80",
         "source_path": "s1/a.mpg"} for i in range(3)] + [
        {"kept": False, "reject_reason": "/r/s1/b.mpg: empty file (0 bytes)",
         "source_path": "s1/b.mpg"}]
    summary = summarise("s1", 7, rows, 2982.0, 120.0, batches=10, resumed=4)
    assert summary.line() == ("s1: 7 videos, 5 clips kept, 4 rejected (detection rate below "
                              "0.80: 3, empty file: 1), 49.7 min of video in 120 s "
                              "(24.9x realtime)")
    assert summary.resume_line() == "s1: resumed 4 of 10 batches, computed 6"


# --- the flow: batch size and runner do not change the store ------------------------------

def store_digest(store: Path) -> dict[str, str]:
    """sha256 of every file of a store; the root zarr.json without its git_revision."""
    import hashlib

    out = {}
    for path in sorted(p for p in store.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path == store / "zarr.json":
            meta = json.loads(data)
            meta["attributes"].pop("git_revision", None)
            data = json.dumps(meta, sort_keys=True).encode()
        out[path.relative_to(store).as_posix()] = hashlib.sha256(data).hexdigest()
    return out


def hidden_leftovers(features: Path) -> list[str]:
    return sorted(p.name for p in features.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def sample_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lipflow.tasks.corpora.grid import download_grid

    raw = tmp_path_factory.mktemp("raw")
    download_grid(["s1"], raw, "sample", progress=False)
    return raw


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_store_is_identical_for_any_batch_size_and_runner(sample_raw: Path,
                                                          tmp_path: Path) -> None:
    from lipflow.flows.prepare import prepare_flow
    from lipflow.flows.runners import make_task_runner
    from lipflow.tasks.prepare.speaker import speaker_jobs
    from lipflow.tasks.settings.project import load_params

    def prepare(kind: str, seconds: float, out: Path):
        jobs = speaker_jobs(load_params(), "grid", ["s1"], sample_raw, out)
        flow = prepare_flow.with_options(task_runner=make_task_runner(kind, max_workers=2))
        (prepared,) = flow(jobs, sample_raw, False, seconds)
        return prepared

    one_each = prepare("thread", 1.0, tmp_path / "one")
    all_in_one = prepare("process", 1e6, tmp_path / "all")
    assert one_each.summary.batches == 3 and all_in_one.summary.batches == 1
    assert store_digest(one_each.store) == store_digest(all_in_one.store)
    assert (one_each.store.with_suffix(".parquet").read_bytes()
            == all_in_one.store.with_suffix(".parquet").read_bytes())
    assert one_each.summary.kept == 3 and one_each.summary.videos == 3
    for out in (tmp_path / "one", tmp_path / "all"):
        assert hidden_leftovers(out) == [], "temp work and batch results are removed"


# --- kill -9 and resume -----------------------------------------------------------------

def cli_env(tmp_path: Path, project_root: Path) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ, LIPFLOW_ROOT=str(project_root), LIPFLOW_PREFECT_SERVER="ephemeral",
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if PREFECT_API_URL.value():  # the session's test API: no server start per command
        env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    return env


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_kill_9_then_rerun_computes_only_missing_batches(sample_raw: Path, tmp_path: Path,
                                                         project_root: Path) -> None:
    from lipflow.flows.prepare import prepare_flow
    from lipflow.flows.runners import make_task_runner
    from lipflow.tasks.prepare.speaker import speaker_jobs
    from lipflow.tasks.settings.project import load_params

    out = tmp_path / "features"
    store = out / "s1.zarr"
    cmd = [str(BIN / "lipflow"), "prepare", "grid", "s1", "--root", str(sample_raw), "--out",
           str(out), "--task-seconds", "1", "--max-workers", "1", "--no-progress"]
    env = cli_env(tmp_path, project_root)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    finished: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None:
        finished = list(results_dir(store).glob("*.zip")) if results_dir(store).is_dir() else []
        if finished:
            break
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its pool workers, like kill -9 of a job
    log = proc.communicate()[0].decode()
    assert finished, f"no batch finished before the run ended:\n{log}"
    assert not store.exists(), f"the run wrote its store before it could be killed:\n{log}"
    left = sorted(results_dir(store).glob("*.zip"))
    assert 1 <= len(left) <= 3
    assert list(out.glob(".s1.work.*")), "a killed run leaves its work folder behind"

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"s1: resumed {len(left)} of 3 batches, computed {3 - len(left)}" in rerun.stdout
    assert f"wrote {store}" in rerun.stdout
    assert "s1: 3 videos, 3 clips kept, 0 rejected" in rerun.stdout
    assert hidden_leftovers(out) == [], "no temp folder or batch result is left"

    jobs = speaker_jobs(load_params(), "grid", ["s1"], sample_raw, tmp_path / "whole")
    flow = prepare_flow.with_options(task_runner=make_task_runner("thread", max_workers=2))
    (whole,) = flow(jobs, project_root, False, 1.0)
    assert store_digest(store) == store_digest(whole.store)
    assert (store.with_suffix(".parquet").read_bytes()
            == whole.store.with_suffix(".parquet").read_bytes())
