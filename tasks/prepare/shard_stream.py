"""Store shards written while a prepare runs, so temp disk stays near a few batches.

Why: a batch result holds its clips as store chunks (:mod:`lipflow.tasks.prepare.results`),
and the results used to stay on disk until every batch was done and the store packed: at
the peak a speaker's store twice (GRID s1 with ``jpeg`` or ``delta``: ~0.56 GB of results,
then the store; a 20-hour Lip2Wav speaker ~14 GB of results). Here the driver cuts shards
as soon as the batches before them are done and deletes each batch result once all its
clips are in written shards, so the results on disk are only those of batches still waiting
for an earlier one (the pool's in-flight batches, finished out of order) and the clips of
one unfinished shard. At the end the shard files are *moved* into the new store (a rename
on the store's own disk), so the store is never copied.

Order: the store holds kept clips in clip-id order (:func:`lipflow.tasks.prepare.video.
order_rows`); batches are planned over videos sorted by ``(speaker, utterance_id)``, so the
kept clips of batch 0, then batch 1, ... are already in store order when every batch's
utterances sort after the previous batch's (:func:`streamable`; not so only when two
videos share an utterance id across a batch boundary, and such a plan packs at the end as
before). Byte-identity: shards are encoded by the same function as the packed path
(:func:`lipflow.tasks.contracts.store_chunks.encode_shard`) and the arrays' metadata is
written once the length is known, so the store equals the packed one byte for byte
(``tests/test_shard_stream.py``).

Resume: ``.<speaker>.shards/`` beside the store holds the shard files and
``state.json``: the keys of the batches consumed (a prefix of the plan, in order), their
manifest rows, how many kept clips each has, the number of shards written and the clips'
shapes. A shard file is written (temp name, rename) before the state names it, and a
batch result is deleted only after the state that covers its clips is saved, so a
``kill -9`` at any point leaves either a result or a written shard for every clip. A
rerun whose plan does not start with the recorded keys (other videos, settings or code)
discards the folder. Two runs of one speaker at once: a run that starts while another
is alive packs at the end and leaves the shards folder alone, and no run deletes a
result while another is alive (it may still read it).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lipflow.tasks.common.atomic import write_bytes_atomic
from lipflow.tasks.contracts.store_chunks import ChunkSource, ShardTemplates, check_shapes
from lipflow.tasks.contracts.store_layout import ARRAY_DTYPES, StoreError
from lipflow.tasks.contracts.store_writer import StoreEncoding
from lipflow.tasks.prepare.batches import Batch
from lipflow.tasks.prepare.results import RESULT_READ_ERRORS, plain_json, read_rows
from lipflow.tasks.prepare.resume import result_path
from lipflow.tasks.prepare.video import order_rows

STATE_FILE = "state.json"


def shards_dir(store: Path) -> Path:
    """``.<speaker>.shards`` beside the store: shards written so far, and their state."""
    store = Path(store)
    return store.with_name(f".{store.stem}.shards")


def utterance_key(record: Mapping[str, Any]) -> tuple[str, str]:
    """The part of :func:`~lipflow.tasks.prepare.video.order_rows`' key a video decides."""
    return (str(record["speaker"]), str(record["utterance_id"]))


def streamable(batches: Sequence[Batch]) -> bool:
    """Whether batch order is store order: each batch's utterances sort strictly after the
    previous batch's (true for a plan over sorted videos with distinct utterance ids)."""
    previous: tuple[str, str] | None = None
    for batch in batches:
        keys = sorted(utterance_key(r) for r in batch.records)
        if not keys:
            continue
        if previous is not None and keys[0] <= previous:
            return False
        previous = keys[-1]
    return True


@dataclass
class _State:
    keys: list[str] = field(default_factory=list)  # consumed batches' keys, in plan order
    kept: list[int] = field(default_factory=list)  # kept clips of each consumed batch
    rows: list[list[dict[str, Any]]] = field(default_factory=list)  # their manifest rows
    shards: int = 0  # shards written (each clips_per_shard clips; the last may be short)
    files: list[list[str]] = field(default_factory=list)  # [array, chunk key] written
    shapes: dict[str, list[int]] | None = None

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, default=plain_json).encode()


class ShardStream:
    """Consumes finished batches in plan order (:meth:`add` in any order), writes each
    shard as soon as its clips are known, deletes the batch results it no longer needs,
    and moves the shards into the store at :meth:`finish`."""

    def __init__(self, work_store: Path, batches: Sequence[Batch], encoding: StoreEncoding,
                 attrs: Mapping[str, Any],
                 others_alive: Callable[[], bool] = lambda: False) -> None:
        self.work_store = Path(work_store)
        #: whether another run of the speaker is alive: it may still read the results
        #: this one has consumed, which then stay until the end (as remove_results does)
        self.others_alive = others_alive
        self.folder = shards_dir(self.work_store)
        self.batches = list(batches)
        self.encoding = encoding
        self.attrs = dict(attrs)
        self.per_shard = encoding.clips_per_shard
        self._templates: ShardTemplates | None = None
        self._pending: dict[int, list[dict[str, Any]]] = {}
        self.state = self._load()
        # kept clips of consumed batches not yet in a written shard, in store order (read
        # from their batch results only when their shard is written)
        self._queue: list[tuple[int, ChunkSource]] = []
        try:
            self._refill_queue()
        except StoreError:  # a waiting batch's result is gone: start the speaker afresh
            self._queue.clear()
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True, exist_ok=True)
            self.state = _State()

    # ------------------------------------------------------------------ state

    def _load(self) -> _State:
        try:
            data = json.loads((self.folder / STATE_FILE).read_text())
            state = _State(**data)
        except FileNotFoundError:
            state = None
        except (OSError, ValueError, TypeError):
            state = None
        plan = [b.key for b in self.batches]
        if state is None or plan[: len(state.keys)] != state.keys or not self._files_ok(state):
            shutil.rmtree(self.folder, ignore_errors=True)
            state = _State()
        self.folder.mkdir(parents=True, exist_ok=True)
        return state

    def _files_ok(self, state: _State) -> bool:
        return all((self.folder / key / chunk).is_file() for key, chunk in state.files)

    def _save(self) -> None:
        write_bytes_atomic(self.folder / STATE_FILE, self.state.to_json())

    def _refill_queue(self) -> None:
        """After a restart: the kept clips of consumed batches that no written shard holds
        yet, read again from their batch results (kept until those clips are written)."""
        start = self.state.shards * self.per_shard
        seen = 0
        for index, count in enumerate(self.state.kept):
            if seen + count > start:
                clips = self._kept_clips(index)
                self._queue.extend((index, clip) for clip in clips[max(0, start - seen):])
            seen += count

    def _kept_clips(self, index: int) -> list[ChunkSource]:
        batch = self.batches[index]
        try:
            rows = read_rows(result_path(self.work_store, batch.key), self.encoding)
        except (*RESULT_READ_ERRORS, FileNotFoundError) as err:
            raise StoreError(f"batch {index} of {self.work_store.stem}: its result is gone "
                             f"but its clips are not all in shards ({err})") from err
        return [row["clip_path"] for row in order_rows(rows) if row["kept"]]

    # ------------------------------------------------------------------ consuming

    @property
    def consumed(self) -> set[int]:
        """Indices of the batches already in shards or in the queue (no need to rerun)."""
        return set(range(len(self.state.keys)))

    def add(self, index: int, rows: list[dict[str, Any]]) -> None:
        """Batch ``index`` is done (its rows, as :func:`read_rows` gives them): consume it
        and every later one already done, write the shards they complete."""
        if index < len(self.state.keys):
            return  # consumed by an earlier run
        self._pending[index] = rows
        while len(self.state.keys) in self._pending:
            current = len(self.state.keys)
            ordered = order_rows(self._pending.pop(current))
            kept = [row for row in ordered if row["kept"]]
            self._queue.extend((current, row["clip_path"]) for row in kept)
            self.state.keys.append(self.batches[current].key)
            self.state.kept.append(len(kept))
            self.state.rows.append([{k: v for k, v in row.items() if k != "clip_path"}
                                    for row in ordered])
            while len(self._queue) >= self.per_shard:
                self._write_shard(self._queue[: self.per_shard])
                del self._queue[: self.per_shard]
            self._save()
            self._drop_results()

    def _write_shard(self, block: Sequence[tuple[int, ChunkSource]]) -> None:
        clips = [source() for _index, source in block]
        shapes = {key: list(clips[0][key].shape) for key in ARRAY_DTYPES}
        if self.state.shapes is None:
            self.state.shapes = shapes
        check_shapes(clips, self.state.shapes, self.state.shards * self.per_shard)
        if self._templates is None:
            self._templates = ShardTemplates(self.encoding,
                                             {k: tuple(v) for k, v in self.state.shapes.items()},
                                             self.attrs)
        for key, (chunk_key, data) in self._templates.encode(clips, self.state.shards).items():
            target = self.folder / key / chunk_key
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            partial.write_bytes(data)
            os.replace(partial, target)
            self.state.files.append([key, chunk_key])
        self.state.shards += 1

    def _drop_results(self) -> None:
        """Delete the results of consumed batches none of whose clips wait in the queue
        (none while another run of the speaker is alive)."""
        if self.others_alive():
            return
        waiting = {index for index, _clip in self._queue}
        for index, key in enumerate(self.state.keys):
            if index not in waiting:
                result_path(self.work_store, key).unlink(missing_ok=True)

    # ------------------------------------------------------------------ the end

    def finish(self) -> tuple[list[dict[str, Any]], Mapping[tuple[str, str], Path], int,
                              dict[str, tuple[int, ...]] | None]:
        """Write the last, short shard; return the manifest rows (kept first, numbered),
        the shard files by ``(array, key)``, the number of kept clips and their shapes."""
        if len(self.state.keys) != len(self.batches):
            missing = sorted(set(range(len(self.batches))) - set(range(len(self.state.keys))))
            raise StoreError(f"batches {missing[:5]} of {self.work_store.stem} never finished")
        if self._queue:
            self._write_shard(self._queue)
            self._queue.clear()
            self._save()
        rows = order_rows([row for batch in self.state.rows for row in batch])
        files = {(key, chunk): self.folder / key / chunk for key, chunk in self.state.files}
        shapes = ({k: tuple(v) for k, v in self.state.shapes.items()}
                  if self.state.shapes else None)
        return rows, files, sum(self.state.kept), shapes

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
