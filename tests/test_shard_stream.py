"""Shards written while batches finish (``lipflow.tasks.prepare.shard_stream``).

The store it makes equals the one packed at the end from the same batch results, byte for
byte; a batch result is deleted as soon as all its clips are in written shards (temp disk
bounded by the batches still waiting, not the store); a run stopped half-way resumes from
its shards and state and gives the same store; a plan that changed discards them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lipflow.flows.runners import tree_digest
from lipflow.tasks.contracts.store_chunks import write_store_from_chunks, write_store_from_shards
from lipflow.tasks.prepare.batches import Batch
from lipflow.tasks.prepare.results import BatchResultWriter, read_rows, store_encoding
from lipflow.tasks.prepare.resume import result_path, results_dir
from lipflow.tasks.prepare.shard_stream import STATE_FILE, ShardStream, shards_dir, streamable
from lipflow.tasks.prepare.video import order_rows
from tests.support.clips import fake_clip, store_attrs

#: kept clips per batch (a 0: a batch whose videos were all rejected)
KEPT = [3, 0, 2, 4, 2]
PER_SHARD = 2


def _record(utterance: str) -> dict[str, object]:
    return {"speaker": "s1", "utterance_id": utterance, "video_path": f"s1/{utterance}.mpg"}


def _batches(prefix: str = "k") -> list[Batch]:
    return [Batch(i, (_record(f"u{i:02d}"),), 3.0, key=f"{prefix}{i}") for i in range(len(KEPT))]


def _write_results(store: Path, batches: list[Batch], encoding) -> None:
    """One result per batch: its kept clips (written in reverse clip order, which
    ``order_rows`` must undo) and one rejected row."""
    results_dir(store).mkdir(parents=True, exist_ok=True)
    seed = 0
    for batch, kept in zip(batches, KEPT, strict=True):
        utterance = batch.records[0]["utterance_id"]
        with BatchResultWriter(store.parent / f"{batch.key}.partial", encoding) as out:
            rows = []
            for start in reversed(range(kept)):
                name = f"s1__{utterance}__{start * 75}"
                arrays = fake_clip(seed + start, face_px=32, mouth_hw=(24, 40))
                rows.append({"clip_id": f"s1/{utterance}/{start * 75}", "speaker": "s1",
                             "utterance_id": utterance, "kept": True, "store_index": -1,
                             "clip_path": out.add_clip(name, arrays), "reject_reason": None})
            rows.append({"clip_id": f"s1/{utterance}/file", "speaker": "s1",
                         "utterance_id": utterance, "kept": False, "store_index": -1,
                         "clip_path": None, "reject_reason": "no face"})
            out.finish(rows, result_path(store, batch.key))
        seed += kept


def _packed(store: Path, batches: list[Batch], encoding, out: Path) -> Path:
    """The store packed at the end from every batch result (the path without streaming)."""
    rows = [r for b in batches for r in read_rows(result_path(store, b.key), encoding)]
    kept = [r["clip_path"] for r in order_rows(rows) if r["kept"]]
    return write_store_from_chunks(kept, out, attrs=store_attrs(), encoding=encoding,
                                   progress=False)


def _finish(stream: ShardStream, out: Path) -> tuple[Path, list[dict]]:
    rows, files, kept, shapes = stream.finish()
    store = write_store_from_shards(files, kept, out, attrs=store_attrs(),
                                    encoding=stream.encoding, shapes=shapes)
    return store, rows


@pytest.fixture()
def encoding():
    return store_encoding({"store": {"codec": "lz4", "clips_per_shard": PER_SHARD}})


def test_streamed_store_equals_the_packed_one_and_results_go_early(tmp_path: Path,
                                                                   encoding) -> None:
    store = tmp_path / "s1.zarr"
    batches = _batches()
    _write_results(store, batches, encoding)
    packed = _packed(store, batches, encoding, tmp_path / "packed" / "s1.zarr")
    all_rows = order_rows([r for b in batches
                           for r in read_rows(result_path(store, b.key), encoding)])

    stream = ShardStream(store, batches, encoding, store_attrs())
    left = lambda: sorted(p.stem for p in results_dir(store).glob("*.zip"))  # noqa: E731
    # finished out of order: nothing is consumed before batch 0
    stream.add(2, read_rows(result_path(store, "k2"), encoding))
    assert stream.state.shards == 0 and left() == ["k0", "k1", "k2", "k3", "k4"]
    stream.add(0, read_rows(result_path(store, "k0"), encoding))
    # batch 0's 3 clips: one shard of 2 written, its 3rd clip waits: its result stays
    assert stream.state.shards == 1 and stream.state.keys == ["k0"]
    assert left() == ["k0", "k1", "k2", "k3", "k4"]
    stream.add(1, read_rows(result_path(store, "k1"), encoding))
    # batches 1 (no clips) and 2 (2 clips) consumed: clips 0-4, shards 0-1 written; clip 4
    # (batch 2's second) waits, so only batches 0 and 1 are gone
    assert stream.state.shards == 2 and stream.state.keys == ["k0", "k1", "k2"]
    assert left() == ["k2", "k3", "k4"]
    stream.add(3, read_rows(result_path(store, "k3"), encoding))
    assert stream.state.shards == 4 and left() == ["k3", "k4"]  # clip 8 waits
    stream.add(4, read_rows(result_path(store, "k4"), encoding))
    assert left() == ["k4"]  # its 2nd clip (the 11th) waits for the last, short shard
    streamed, rows = _finish(stream, tmp_path / "streamed" / "s1.zarr")
    assert tree_digest(streamed) == tree_digest(packed)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "clip_path"} for r in rs]  # noqa: E731
    assert strip(rows) == strip(all_rows)
    assert [r["store_index"] for r in rows if r["kept"]] == list(range(sum(KEPT)))
    stream.remove()
    assert not shards_dir(store).exists()


def test_a_stopped_stream_resumes_from_its_shards(tmp_path: Path, encoding) -> None:
    store = tmp_path / "s1.zarr"
    batches = _batches()
    _write_results(store, batches, encoding)
    packed = _packed(store, batches, encoding, tmp_path / "packed" / "s1.zarr")

    first = ShardStream(store, batches, encoding, store_attrs())
    for index in (0, 1, 2):
        first.add(index, read_rows(result_path(store, f"k{index}"), encoding))
    del first  # the run dies here: shards 0-1 on disk, clip 4 waits in batch 2's result
    state = json.loads((shards_dir(store) / STATE_FILE).read_text())
    assert state["keys"] == ["k0", "k1", "k2"] and state["shards"] == 2

    again = ShardStream(store, batches, encoding, store_attrs())
    assert again.consumed == {0, 1, 2}
    again.add(2, [])  # an already consumed batch is ignored
    for index in (3, 4):
        again.add(index, read_rows(result_path(store, f"k{index}"), encoding))
    streamed, _rows = _finish(again, tmp_path / "streamed" / "s1.zarr")
    assert tree_digest(streamed) == tree_digest(packed)


def _after_batch_0(tmp_path: Path, encoding) -> tuple[Path, ShardStream]:
    store = tmp_path / "s1.zarr"
    batches = _batches()
    _write_results(store, batches, encoding)
    stream = ShardStream(store, batches, encoding, store_attrs())
    stream.add(0, read_rows(result_path(store, "k0"), encoding))
    return store, stream


def test_a_changed_plan_discards_the_shards(tmp_path: Path, encoding) -> None:
    store, first = _after_batch_0(tmp_path, encoding)
    assert first.state.shards == 1
    other = ShardStream(store, _batches(prefix="other"), encoding, store_attrs())
    assert other.consumed == set() and other.state.shards == 0
    assert list(shards_dir(store).iterdir()) == []


def test_a_lost_result_of_a_waiting_batch_restarts_the_stream(tmp_path: Path,
                                                                encoding) -> None:
    """Batch 0's third clip waits in its result; if that file is lost, the next run cannot
    finish shard 1 from it, so it starts the speaker afresh instead of failing."""
    store, first = _after_batch_0(tmp_path, encoding)
    assert first.state.shards == 1
    result_path(store, "k0").unlink()
    again = ShardStream(store, _batches(), encoding, store_attrs())
    assert again.consumed == set() and again.state.shards == 0


def test_no_result_is_deleted_while_another_run_is_alive(tmp_path: Path, encoding) -> None:
    """Another live run of the speaker may still read the results this one consumed."""
    from lipflow.tasks.prepare.resume import claim_work_dir, other_runs_alive

    store = tmp_path / "s1.zarr"
    batches = _batches()
    _write_results(store, batches, encoding)
    mine, theirs = claim_work_dir(store), claim_work_dir(store)  # both owned by a live pid
    assert other_runs_alive(store, mine) and other_runs_alive(store, theirs)
    stream = ShardStream(store, batches, encoding, store_attrs(),
                         others_alive=lambda: other_runs_alive(store, mine))
    for index in range(len(batches)):
        stream.add(index, read_rows(result_path(store, f"k{index}"), encoding))
    assert stream.state.shards == 5
    assert len(list(results_dir(store).glob("*.zip"))) == len(batches)


def test_a_finish_before_every_batch_is_an_error(tmp_path: Path, encoding) -> None:
    from lipflow.tasks.contracts.store_layout import StoreError

    _store, stream = _after_batch_0(tmp_path, encoding)
    with pytest.raises(StoreError, match="never finished"):
        stream.finish()


def test_streamable_only_when_batches_follow_store_order() -> None:
    assert streamable(_batches())
    swapped = [Batch(0, (_record("u05"),), 3.0), Batch(1, (_record("u01"),), 3.0)]
    assert not streamable(swapped)
    shared = [Batch(0, (_record("u01"), _record("u02")), 6.0),
              Batch(1, (_record("u02"),), 3.0)]  # one utterance id across the boundary
    assert not streamable(shared)
