"""A torch ``Dataset`` of aligned video / mel / MFEC / waveform windows from feature stores.

Each store (``<speaker>.zarr``, docs/contracts.md section 4) comes with its clip manifest
(``<speaker>.parquet`` beside it, section 3); only ``kept`` rows are used, optionally
filtered by ``split`` and by a caller's predicate.

Alignment rule (one rule for every stream, exact rational arithmetic, no float drift):
a window of ``W`` video frames starting at frame ``s`` maps to stream frames

    start = floor(s * rate / fps),   length = floor(W * rate / fps)

where ``rate`` is the stream's frames per second: mel ``sample_rate_hz / hop_samples``
(16000 / 200 = 80, so 3.2 mel frames per video frame at 25 fps and 8/3 at 30 fps), MFEC
``1 / stride_seconds`` (50: 2 per video frame at 25 fps, 5/3 at 30) and audio
``sample_rate_hz`` (640 samples per frame at 25 fps). This is Lip2Wav's rule
(``start_idx = int(80 * frame / fps)``, fixed step ``T * 80 / fps``): every window of a
given ``W`` has the same length in every stream, so windows batch without padding, and
``floor(s*r) + floor(W*r) <= floor((s+W)*r)`` keeps the span inside the clip.

Whole clips (``window_frames=None``, ``W = T``) therefore give ``T * 80 / fps = 240`` mel
frames for a 3-second clip, the 240 Lip2Wav trains on: the 241st, centred frame that the
STFT adds at the very end is dropped. MFEC: speechpy drops the last partial 20 ms frame,
so a 3-second clip has 149 MFEC frames but a whole-clip window spans 150; a frame past
the end (only ever the clip's last 20 ms) repeats the last frame (edge padding).

Arrays are opened lazily, once per process, on the first ``__getitem__``: open handles
are never pickled (``__getstate__`` drops them), so the dataset works with
``DataLoader(num_workers=...)`` under both fork and spawn. Each array is read through
:class:`lipflow.tasks.contracts.store_reader.ClipReader` (one ``pread`` per read, one decode
per chunk, shard indexes cached; zarr's own ``array[i]`` costs ~1 ms of overhead per call,
more than the decode), falling back to a plain ``zarr.Array`` for a layout that reader does
not know.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import zarr
from torch.utils.data import Dataset

from lipflow.tasks.common.errors import LipflowError
from lipflow.tasks.common.object_store import is_url, join, location
from lipflow.tasks.contracts.clip_manifest import read_clip_manifest
from lipflow.tasks.contracts.store_layout import StoreError, manifest_path_for
from lipflow.tasks.contracts.store_publish import check_manifest
from lipflow.tasks.contracts.store_reader import ClipReader, open_group, read_store
from lipflow.tasks.settings.schema import Features

STREAMS = ("video", "mel", "mfec", "wav")


def loader_start_method() -> str | None:
    """How DataLoader workers should start: ``forkserver`` where the platform has it.

    Why not fork (Linux's default): workers forked from a process that has run a Prefect
    flow exit with code 1 when they finish (Prefect 3.8 leaves state behind that does
    not survive a fork), which fails the loader. A fork server is a clean process started
    once, so workers never inherit the flow's state; the dataset opens its stores lazily
    per worker, so nothing else changes. None (the platform default, spawn on macOS and
    Windows) where there is no fork server.
    """
    import multiprocessing

    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else None


class DatasetError(LipflowError):
    """The dataset's stores, manifests or arguments do not fit together."""


def _fraction(value: float | int | str) -> Fraction:
    return Fraction(str(value)).limit_denominator(10_000)


def _nested(mapping: Mapping[str, Any], *keys: str) -> Any:
    node: Any = mapping
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


class StoreTiming:
    """Frame rates of one store's streams, for the alignment rule in the module docstring."""

    def __init__(self, fps: Fraction, sample_rate_hz: Fraction, mel_rate: Fraction,
                 mfec_rate: Fraction, num_frames: int) -> None:
        self.fps = fps
        self.num_frames = num_frames
        self.rates = {"mel": mel_rate, "mfec": mfec_rate, "wav": sample_rate_hz}
        self._per_frame = {
            stream: (ratio.numerator, ratio.denominator)
            for stream, ratio in ((k, r / fps) for k, r in self.rates.items())
        }

    @classmethod
    def from_store(cls, path: Path, group: zarr.Group) -> StoreTiming:
        """Read fps from the store's attrs and derive the sample rate from its shapes."""
        attrs = dict(group.attrs)
        if not attrs.get("fps"):
            raise DatasetError(f"store {path} has no 'fps' attribute; rebuild it")
        fps = _fraction(attrs["fps"])
        num_frames, num_samples = group["face"].shape[1], group["wav"].shape[1]
        if num_frames == 0:
            raise DatasetError(f"store {path} has clips of zero frames")
        sample_rate = Fraction(num_samples) * fps / num_frames
        params = attrs.get("params") or {}
        defaults = Features()  # a store that does not record them was made with the defaults
        hop = _nested(params, "features", "mel", "hop_samples") or defaults.mel.hop_samples
        stride = (_nested(params, "features", "mfec", "stride_seconds")
                  or defaults.mfec.stride_seconds)
        return cls(fps, sample_rate, sample_rate / int(hop), 1 / _fraction(stride), num_frames)

    def per_frame(self, stream: str) -> Fraction:
        """Stream frames per video frame (mel: 16/5 at 25 fps, 8/3 at 30 fps)."""
        return self.rates[stream] / self.fps

    def span(self, stream: str, start_frame: int, window_frames: int) -> tuple[int, int]:
        """(start, length) in ``stream`` frames of a video window (floor rule).

        Integer floor division on the ratio's numerator and denominator: exact like
        ``Fraction`` arithmetic, without its cost on every item (frames are >= 0).
        """
        num, den = self._per_frame[stream]
        return start_frame * num // den, window_frames * num // den


class ClipWindowDataset(Dataset):
    """Aligned windows of video frames, mel, MFEC and audio from one or more stores.

    Each item is a dict of tensors: ``video`` uint8 ``(W, F, F, 3)`` for ``face`` or
    ``(W, H, W')`` for ``mouth``; ``mel`` float32 ``(M, 80)``; ``mfec`` float32
    ``(E, 40, 3)``; ``wav`` int16 ``(S,)`` (only the streams in ``include``), plus int64
    scalars ``valid_frames`` (frames of the window before the clip's padding),
    ``start_frame``, ``store_id`` (position in ``stores``), ``store_index`` (clip row in
    that store) and ``clip_index`` (row of :attr:`clips`, whose ``clip_id`` names it).

    ``window_frames=None`` yields whole clips (padding included; ``valid_frames`` says how
    much is real). Otherwise windows start every ``stride_frames`` (default: the window,
    i.e. no overlap) and lie wholly inside the clip's valid frames; clips shorter than a
    window yield none. ``splits`` keeps rows whose manifest ``split`` is listed;
    ``split_filter``, a function of the manifest DataFrame returning a boolean mask,
    filters further (e.g. ``lambda m: m.detection_rate > 0.95``). ``reader="zarr"`` reads
    through ``zarr.Array`` instead of
    :class:`~lipflow.tasks.contracts.store_reader.ClipReader` (same values, ~1 ms slower per
    array per item; for comparison, or a layout of another writer).
    """

    def __init__(
        self,
        stores: Sequence[Path],
        *,
        modality: Literal["face", "mouth"],
        window_frames: int | None = None,
        splits: Sequence[str] | None = None,
        split_filter: Callable[[pd.DataFrame], Any] | None = None,
        stride_frames: int | None = None,
        include: Sequence[str] = STREAMS,
        reader: Literal["direct", "zarr"] = "direct",
    ) -> None:
        if modality not in ("face", "mouth"):
            raise DatasetError(f"modality must be 'face' or 'mouth', got {modality!r}")
        unknown = sorted(set(include) - set(STREAMS))
        if unknown:
            raise DatasetError(f"include has unknown streams {unknown}; choose from {STREAMS}")
        if reader not in ("direct", "zarr"):
            raise DatasetError(f"reader must be 'direct' or 'zarr', got {reader!r}")
        if window_frames is not None and window_frames < 1:
            raise DatasetError(f"window_frames must be >= 1, got {window_frames}")
        stride = stride_frames if stride_frames is not None else window_frames
        if stride is not None and stride < 1:
            raise DatasetError(f"stride_frames must be >= 1, got {stride_frames}")
        self.stores = [location(p) for p in stores]  # a local folder or a published URL
        if not self.stores:
            raise DatasetError("ClipWindowDataset needs at least one store")
        self.modality = modality
        self.window_frames = window_frames
        self.stride_frames = stride
        self.include = tuple(include)
        self.reader = reader
        self.timings: list[StoreTiming] = []
        clips = []
        for store_id, path in enumerate(self.stores):
            group = read_store(path)  # metadata only; handles are dropped at once
            self.timings.append(StoreTiming.from_store(path, group))
            clips.append(self._select(store_id, path, group, splits, split_filter))
        self.clips = pd.concat(clips, ignore_index=True)
        self._windows = self._index_windows()
        # (store_id, store_index, valid_frames) per clip: plain ints are faster than .iloc
        self._clip_table = self.clips[["store_id", "store_index", "valid_frames"]].to_numpy(
            dtype=np.int64
        )
        self._arrays: list[dict[str, _Reader]] | None = None
        self._pid: int | None = None

    @staticmethod
    def _select(store_id: int, path: Path | str, group: zarr.Group,
                splits: Sequence[str] | None,
                split_filter: Callable[[pd.DataFrame], Any] | None) -> pd.DataFrame:
        if is_url(path):  # the manifest must be the one published with the store
            check_manifest(str(path), str(manifest_path_for(path)))
        manifest = read_clip_manifest(manifest_path_for(path))
        kept = manifest[manifest["kept"]].reset_index(drop=True)
        stored = group["valid_frames"].shape[0]
        if len(kept) != stored or list(kept["store_index"]) != list(range(stored)):
            raise DatasetError(
                f"clip manifest {manifest_path_for(path)} has {len(kept)} kept rows but "
                f"store {path} holds {stored} clips, or they are out of order; rebuild both"
            )
        if splits is not None:
            kept = kept[kept["split"].isin(list(splits))]
        if split_filter is not None:
            kept = kept[np.asarray(split_filter(kept), dtype=bool)]
        return kept.assign(store_id=store_id).reset_index(drop=True)

    def _index_windows(self) -> np.ndarray:
        """One row (clip_index, start_frame) per window, as a compact int64 array."""
        rows: list[tuple[int, int]] = []
        for clip_index, clip in enumerate(self.clips.itertuples(index=False)):
            if self.window_frames is None:
                rows.append((clip_index, 0))
                continue
            valid = min(int(clip.valid_frames), self.timings[clip.store_id].num_frames)
            last = valid - self.window_frames
            rows.extend((clip_index, s) for s in range(0, last + 1, self.stride_frames))
        return np.asarray(rows, dtype=np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self._windows)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_arrays"] = None  # open zarr handles stay in the process that opened them
        state["_pid"] = None
        return state

    def _open(self) -> list[dict[str, _Reader]]:
        if self._arrays is None or self._pid != os.getpid():
            needed = [self.modality if s == "video" else s for s in self.include]
            self._arrays = [{key: _reader(p, key, self.reader) for key in needed}
                            for p in self.stores]
            self._pid = os.getpid()
        return self._arrays

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        clip_index, start = (int(v) for v in self._windows[index])
        store_id, row, clip_valid = (int(v) for v in self._clip_table[clip_index])
        timing = self.timings[store_id]
        width = self.window_frames or timing.num_frames
        arrays = self._open()[store_id]
        item: dict[str, torch.Tensor] = {}
        for stream in self.include:
            if stream == "video":
                frames = arrays[self.modality].read(row, start, start + width)
                item["video"] = torch.from_numpy(frames)
            else:
                first, length = timing.span(stream, start, width)
                item[stream] = torch.from_numpy(_read_span(arrays[stream], row, first, length))
        valid = min(max(clip_valid - start, 0), width)
        item.update(
            valid_frames=torch.tensor(valid),
            start_frame=torch.tensor(start),
            store_id=torch.tensor(store_id),
            store_index=torch.tensor(row),
            clip_index=torch.tensor(clip_index),
        )
        return item


class _ZarrReader:
    """:class:`ClipReader`'s ``read`` over a plain ``zarr.Array`` (any layout zarr reads)."""

    def __init__(self, array: zarr.Array) -> None:
        self.array = array
        self.shape = array.shape

    def read(self, clip: int, first: int = 0, stop: int | None = None) -> np.ndarray:
        return np.array(self.array[clip, first:stop])  # a writable copy, like ClipReader


_Reader = ClipReader | _ZarrReader


def _reader(store: Path | str, key: str, kind: str) -> _Reader:
    if kind == "direct":
        try:
            return ClipReader(join(store, key))
        except StoreError:
            pass  # a layout ClipReader does not know: zarr reads anything
    if is_url(store):
        return _ZarrReader(open_group(store)[key])
    return _ZarrReader(zarr.open_array(str(join(store, key)), mode="r"))


def _read_span(array: _Reader, row: int, first: int, length: int) -> np.ndarray:
    """``array[row, first:first+length]``, repeating the last frame past the clip's end."""
    available = array.shape[1]
    values = array.read(row, first, min(first + length, available))
    missing = length - values.shape[0]
    if missing > 0:
        pad = [(0, missing)] + [(0, 0)] * (values.ndim - 1)
        values = np.pad(values, pad, mode="edge")
    return np.ascontiguousarray(values)
