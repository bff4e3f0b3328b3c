"""Face-chunk codecs that use the frames' temporal redundancy, for the survey in
``benchmarks/store_encoding.py``: the one lipflow ships (``features.store.codec: delta``,
:mod:`lipflow.tasks.contracts.delta_codec`) and the candidates measured on the way to it.

Why these two families: JPEG codes each frame alone, and the loader spends nearly all its
time in JPEG decode, so a codec that is both as small and faster to decode has to code
frames against each other.

- **H.264 4:4:4 through PyAV** (already a lipflow dependency): one stream per 5-frame
  chunk, the chunk's first frame an IDR picture, so a chunk decodes on its own. RGB
  (``libx264rgb``) avoids a colour conversion on both sides.
- **Near-lossless temporal delta of values** ("tdelta", the first try): every sample is
  put on the lattice ``step * k + step // 2`` (max error ``step // 2`` before
  hysteresis) and keeps the previous frame's value while it stays within ``slack`` of it,
  so static pixels repeat exactly across frames; then the chunk's first frame is coded
  against the row above and each later frame against the frame before (uint8, mod 256),
  and a general-purpose compressor packs the mostly-zero result. Decoding is the
  decompressor plus one cumulative sum per frame: no transform, no entropy decoder.
- **The shipped ``delta``**: the same lattice, but deltas of lattice *indices*,
  zigzag-mapped to small non-negative bytes, bit-shuffled and LZ4-HC-compressed by Blosc:
  as small as "tdelta + zstd" and as fast to read as "tdelta + LZ4-HC".
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import av
import imagecodecs
import numpy as np

#: (name, encode(frames (F, H, W, 3) uint8 -> bytes), decode(bytes) -> (F, H, W, 3) uint8)
Codec = tuple[str, Callable[[np.ndarray], bytes], Callable[[bytes], np.ndarray]]


def near_lossless(frames: np.ndarray, step: int, slack: int) -> np.ndarray:
    """``frames`` on the lattice ``step * k + step // 2``, each sample held at its previous
    frame's value while within ``slack`` of it (see module doc)."""
    x = frames.astype(np.int16)
    offset = step // 2
    top = offset + (255 - offset) // step * step
    lattice = np.clip((x - offset + step // 2) // step * step + offset, offset, top)
    out = np.empty_like(lattice)
    out[0] = lattice[0]
    for t in range(1, len(x)):
        out[t] = np.where(np.abs(x[t] - out[t - 1]) <= slack, out[t - 1], lattice[t])
    return out.astype(np.uint8)


def frame_delta(frames: np.ndarray) -> np.ndarray:
    """First frame minus the row above it, later frames minus the frame before (mod 256)."""
    delta = np.empty_like(frames)
    delta[1:] = frames[1:] - frames[:-1]
    delta[0, 0] = frames[0, 0]
    delta[0, 1:] = frames[0, 1:] - frames[0, :-1]
    return delta


def undo_frame_delta(delta: np.ndarray) -> np.ndarray:
    """The inverse of :func:`frame_delta`: one cumulative sum down the first frame, then one
    addition per later frame."""
    frames = np.empty_like(delta)
    np.cumsum(delta[0], axis=0, dtype=np.uint8, out=frames[0])
    for t in range(1, len(delta)):
        np.add(frames[t - 1], delta[t], out=frames[t])
    return frames


def tdelta_codecs(frame_shape: tuple[int, ...], step: int = 7, slack: int = 5) -> list[Codec]:
    """Near-lossless temporal delta packed by zstd (fast to write, ~1 GB/s to read) and by
    LZ4-HC (several GB/s to read, slow to write)."""
    def decoder(decompress: Callable[[bytes], bytes]) -> Callable[[bytes], np.ndarray]:
        return lambda blob: undo_frame_delta(
            np.frombuffer(decompress(blob), np.uint8).reshape(-1, *frame_shape))

    def prepared(frames: np.ndarray) -> np.ndarray:
        return frame_delta(near_lossless(frames, step, slack))

    name = f"tdelta step {step} slack {slack}"
    return [
        *[(f"{name} + zstd {level}",
           lambda x, level=level: imagecodecs.zstd_encode(prepared(x), level=level),
           decoder(imagecodecs.zstd_decode)) for level in (1, 5)],
        *[(f"{name} + LZ4-HC {level}",
           lambda x, level=level: imagecodecs.lz4_encode(prepared(x), level=level, hc=True),
           decoder(imagecodecs.lz4_decode)) for level in (4, 9)],
    ]


def shipped_delta_codec(frame_shape: tuple[int, ...]) -> Codec:
    """``features.store.codec: delta`` as the store writes and reads a face chunk."""
    from numcodecs import Blosc

    from lipflow.tasks.contracts.delta_codec import (
        BLOSC_BLOCKSIZE,
        LZ4HC_LEVEL,
        decode_frames,
        encode_frames,
    )

    blosc = Blosc("lz4hc", LZ4HC_LEVEL, Blosc.BITSHUFFLE, blocksize=BLOSC_BLOCKSIZE)

    def decode(blob: bytes) -> np.ndarray:
        deltas = np.frombuffer(blosc.decode(blob), np.uint8).reshape(-1, *frame_shape).copy()
        return decode_frames(deltas, np.empty_like(deltas))

    return (f"**delta (shipped): lattice 7 / slack 5, index deltas, bitshuffle + LZ4-HC "
            f"{LZ4HC_LEVEL}**", lambda x: blosc.encode(encode_frames(x)), decode)


def _h264_encode(frames: np.ndarray, crf: int) -> bytes:
    """One H.264 4:4:4 RGB stream (IDR first, no B-frames, one thread: deterministic)."""
    ctx = av.CodecContext.create("libx264rgb", "w")
    ctx.height, ctx.width = frames.shape[1:3]
    ctx.pix_fmt = "bgr24"
    ctx.time_base = Fraction(1, 25)
    ctx.options = {"crf": str(crf), "preset": "medium", "bframes": "0", "threads": "1"}
    out = bytearray()
    for frame in frames:
        for packet in ctx.encode(av.VideoFrame.from_ndarray(frame, "rgb24")):
            out += bytes(packet)
    for packet in ctx.encode(None):
        out += bytes(packet)
    return bytes(out)


def _h264_decode(blob: bytes) -> np.ndarray:
    """RGB frames of one stream: a fresh single-threaded decoder, planes reordered."""
    ctx = av.CodecContext.create("h264", "r")
    ctx.thread_count = 1
    planes = []
    for packet in [*ctx.parse(blob), *ctx.parse(None)]:
        planes += [f.to_ndarray() for f in ctx.decode(packet)]
    planes += [f.to_ndarray() for f in ctx.decode(None)]
    return np.stack(planes)  # PyAV returns gbrp frames as (H, W, 3) in RGB order


def h264_codecs() -> list[Codec]:
    """H.264 4:4:4 RGB at two quality settings."""
    return [(f"H.264 4:4:4 RGB crf {crf} (PyAV)", lambda x, crf=crf: _h264_encode(x, crf),
             _h264_decode) for crf in (10, 14)]
