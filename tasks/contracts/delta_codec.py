"""The Zarr v3 filter of near-lossless ``face`` chunks: frames on a lattice, coded as deltas.

Why (``benchmarks/store_encoding.py --survey-clips``, README storage section): a JPEG chunk
decodes at ~60 us a 96 px RGB frame, about what a folder of Lip2Wav JPEGs costs to read,
so a JPEG store cannot be read much faster than the folders it replaces. Talking-head
crops change little from frame to frame, and this filter turns that into zeros that a
fast compressor packs: on GRID s1 faces ~4.2 KB a frame at 40.65 dB (max error 5; JPEG
q92 4:4:4 is 4.0 KB at 40.5 dB, max error ~28), read ~2.3x as fast as the JPEG chunks.

Encoding a chunk of frames ``(F, H, W[, C])`` (uint8):

1. **Lattice** (the lossy step): every sample goes to the nearest multiple of ``step``
   (at most 252 for step 7), except that a sample keeps its previous frame's value while
   the new sample is within ``slack`` of it, so pixels that only flicker with camera noise
   repeat exactly. The error is at most ``max(slack, step // 2, 255 % step)`` (the last
   term: samples above the top lattice point), 5 for the defaults.
2. **Deltas of lattice indices** ``k = value // step``: the first frame against the row
   above (``k[y, x] - k[y-1, x]``, per channel; LZ4 packs that ~2% smaller than the 2-D
   difference), every later frame against the frame before; wrapped to int8 and
   zigzag-mapped (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...), so the bytes are small
   non-negative numbers, mostly 0.
3. The store then bit-shuffles and LZ4-HC-compresses the chunk as one block (zarr's
   standard ``blosc`` codec, ``shuffle: bitshuffle``), which packs the mostly-zero bit
   planes tightly and decodes at several GB/s.

Decoding maps each byte back to ``step * delta`` (mod 256) with a few vectorised integer
passes, sums the first frame's columns with one integral image (OpenCV) and adds each later frame
to the one before: no transform, no entropy decoder. The arithmetic is mod 256 throughout,
which makes the int8 wrap in step 2 exact for every ``step``. Re-encoding decoded frames
gives the same bytes (they are on the lattice already), and encoding is deterministic.

The filter is registered with zarr as :data:`NAME` on import (and named by the package's
``zarr.codecs`` entry point), so plain ``zarr`` reads these arrays wherever lipflow is
installed; ``docs/contracts.md`` section 4 specifies it for readers without lipflow.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from zarr.abc.codec import ArrayArrayCodec
from zarr.core.common import parse_named_configuration
from zarr.registry import get_codec_class, register_codec

if TYPE_CHECKING:
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import NDBuffer

#: The filter's name in ``zarr.json``.
NAME = "lipflow.frame_delta"
#: Lattice spacing and hold threshold (``features.store.delta_step`` / ``delta_slack``):
#: on GRID s1 faces 40.65 dB and a 0.698 GB/h store; step 6 / slack 4 gives 42.1 dB but
#: 0.76 GB/h, over the 0.70 GB/h budget (the slack sets the size more than the step).
DEFAULT_STEP = 7
DEFAULT_SLACK = 5
#: LZ4-HC level of the chunks after the filter. Level 2 writes at ~50 us a frame, which
#: keeps ``prepare``'s store encoding at JPEG's cost; level 3 is ~9% smaller but ~2.3x as
#: slow to write, level 4 ~11% smaller and ~2.9x as slow. All decode alike.
LZ4HC_LEVEL = 2
#: Blosc block size of those chunks: larger than any chunk, so a chunk is one block
#: (~2% smaller than Blosc's automatic blocks); Blosc clamps it to the chunk's size.
BLOSC_BLOCKSIZE = 1 << 22


@functools.cache
def _tables(step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 lookup tables of the encoder: sample -> nearest lattice value, lattice value ->
    index, and int8 delta (as its byte) -> zigzag byte."""
    top = 255 // step
    samples = np.arange(256)
    nearest = np.minimum((samples + step // 2) // step, top) * step
    index = np.minimum(samples // step, top)
    signed = samples.astype(np.uint8).view(np.int8).astype(np.int64)
    zigzag = (signed << 1) ^ (signed >> 7)
    return (nearest.astype(np.uint8), index.astype(np.uint8), (zigzag % 256).astype(np.uint8))


def _rows(frames: np.ndarray) -> np.ndarray:
    """A 2-D view of contiguous uint8 data for OpenCV (which runs over it as one line)."""
    return frames.reshape(-1, frames.shape[-1])


def on_lattice(frames: np.ndarray, step: int = DEFAULT_STEP,
               slack: int = DEFAULT_SLACK) -> np.ndarray:
    """Step 1 of the module doc: ``frames`` ``(F, H, W[, C])`` uint8 on the lattice, each
    sample held at its previous frame's value while within ``slack`` of it."""
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    nearest = _tables(step)[0]
    lattice = cv2.LUT(_rows(frames), nearest).reshape(frames.shape)
    held = np.empty_like(lattice)
    held[0] = lattice[0]
    for t in range(1, len(frames)):
        # held[t] = held[t-1] where |x - held[t-1]| <= slack, else lattice[t]: OpenCV's
        # SIMD passes (a mask of 255 / 0 selects by xor-and-xor) beat numpy's masked copy
        previous, now = _rows(held[t - 1]), _rows(lattice[t])
        keep = cv2.compare(cv2.absdiff(_rows(frames[t]), previous), slack, cv2.CMP_LE)
        out = _rows(held[t])
        cv2.bitwise_xor(now, previous, dst=out)
        cv2.bitwise_and(out, keep, dst=out)
        cv2.bitwise_xor(out, now, dst=out)
    return held


def encode_frames(frames: np.ndarray, step: int = DEFAULT_STEP,
                  slack: int = DEFAULT_SLACK) -> np.ndarray:
    """Steps 1-2 of the module doc: the zigzag index deltas of ``frames``, same shape, uint8.
    Differences wrap mod 256 in uint8, which is the int8 wrap of the contract."""
    _, index, zigzag = _tables(step)
    k = cv2.LUT(_rows(on_lattice(frames, step, slack)), index).reshape(frames.shape)
    delta = np.empty_like(k)
    np.subtract(k[1:], k[:-1], out=delta[1:])
    first = delta[0]
    np.copyto(first, k[0])
    first[1:] -= k[0, :-1]
    return cv2.LUT(_rows(delta), zigzag).reshape(frames.shape)


def unzigzag(deltas: np.ndarray, step: int = DEFAULT_STEP,
             scratch: np.ndarray | None = None) -> np.ndarray:
    """Zigzag bytes ``z`` to ``step * ((z >> 1) ^ -(z & 1))`` mod 256, in place (any shape;
    ``scratch``, same shape and uint8, saves an allocation). Five vectorised passes cost
    less than half of one table lookup (a gather) over the same bytes."""
    signs = np.empty_like(deltas) if scratch is None else scratch
    np.bitwise_and(deltas, 1, out=signs)
    np.right_shift(deltas, 1, out=deltas)
    np.negative(signs, out=signs)
    np.bitwise_xor(deltas, signs, out=deltas)
    if step != 1:
        np.multiply(deltas, step, out=deltas)
    return deltas


def integrate(deltas: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Frames from :func:`unzigzag`'s deltas into ``out`` (same shape): the first frame's
    column sums from one integral image (``S[y+1, x+1] - S[y+1, x]``), then each later
    frame added to the one before, all mod 256. A leading run of a chunk's frames decodes
    on its own: pass ``deltas[:n]`` and ``out[:n]``."""
    sums = cv2.integral(deltas[0], sdepth=cv2.CV_32S).reshape(
        deltas.shape[1] + 1, deltas.shape[2] + 1, -1)
    first = np.subtract(sums[1:, 1:], sums[1:, :-1])
    np.copyto(out[0], first.reshape(out.shape[1:]), casting="unsafe")
    for t in range(1, len(deltas)):
        np.add(out[t - 1], deltas[t], out=out[t])
    return out


def decode_frames(deltas: np.ndarray, out: np.ndarray, step: int = DEFAULT_STEP,
                  scratch: np.ndarray | None = None) -> np.ndarray:
    """The inverse of :func:`encode_frames` into ``out`` (same shape, uint8): ``deltas`` is
    overwritten, ``scratch`` (same shape, uint8) saves an allocation."""
    return integrate(unzigzag(deltas, step, scratch), out)


@dataclass(frozen=True)
class FrameDelta(ArrayArrayCodec):
    """Array-to-array filter: uint8 frames to zigzag lattice-index deltas (module doc).

    Chunks are ``(1, F, H, W[, C])``: one clip's run of ``F`` frames.
    """

    is_fixed_size = True

    step: int = DEFAULT_STEP
    slack: int = DEFAULT_SLACK

    def __init__(self, *, step: int = DEFAULT_STEP, slack: int = DEFAULT_SLACK) -> None:
        if not 1 <= int(step) <= 255 or not 0 <= int(slack) <= 255:
            raise ValueError(f"{NAME}: step must be 1..255 and slack 0..255, got {step}, {slack}")
        object.__setattr__(self, "step", int(step))
        object.__setattr__(self, "slack", int(slack))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrameDelta:
        _, config = parse_named_configuration(data, NAME, require_configuration=False)
        return cls(**(config or {}))

    def to_dict(self) -> dict[str, Any]:
        return {"name": NAME, "configuration": {"step": self.step, "slack": self.slack}}

    def validate(self, *, shape: tuple[int, ...], dtype: Any, chunk_grid: Any) -> None:
        if np.dtype(dtype.to_native_dtype()) != np.uint8:
            raise ValueError(f"{NAME} encodes uint8 frames, not {dtype}")
        if len(shape) not in (4, 5):
            raise ValueError(f"{NAME} encodes (clips, frames, H, W[, C]) arrays, not {shape}")

    def resolve_metadata(self, chunk_spec: ArraySpec) -> ArraySpec:
        return chunk_spec

    async def _decode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> NDBuffer:
        deltas = np.array(chunk_array.as_numpy_array(), dtype=np.uint8)  # a writable copy
        frames = deltas.reshape(-1, *deltas.shape[2:])
        out = decode_frames(frames, np.empty_like(frames), self.step)
        return chunk_spec.prototype.nd_buffer.from_numpy_array(out.reshape(chunk_spec.shape))

    async def _encode_single(self, chunk_array: NDBuffer,
                             chunk_spec: ArraySpec) -> NDBuffer | None:
        chunk = chunk_array.as_numpy_array()
        encoded = encode_frames(chunk.reshape(-1, *chunk.shape[2:]), self.step, self.slack)
        return chunk_spec.prototype.nd_buffer.from_numpy_array(encoded.reshape(chunk.shape))

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        return input_byte_length


def register() -> None:
    """Make :data:`NAME` known to zarr, unless a codec of that name already is."""
    try:
        get_codec_class(NAME)
    except KeyError:
        register_codec(NAME, FrameDelta)


register()
