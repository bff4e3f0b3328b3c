"""The near-lossless ``face`` filter ``lipflow.frame_delta`` (docs/contracts.md section 4)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from numcodecs import Blosc

from lipflow.tasks.contracts.delta_codec import (
    NAME,
    FrameDelta,
    decode_frames,
    encode_frames,
    on_lattice,
)


def _noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _reference(frames: np.ndarray, step: int, slack: int) -> np.ndarray:
    """The contract's step 1 written plainly, one sample at a time in numpy."""
    x = frames.astype(np.int64)
    nearest = np.minimum((x + step // 2) // step, 255 // step) * step
    out = np.empty_like(x)
    out[0] = nearest[0]
    for t in range(1, len(x)):
        out[t] = np.where(np.abs(x[t] - out[t - 1]) <= slack, out[t - 1], nearest[t])
    return out.astype(np.uint8)


@pytest.mark.parametrize(("step", "slack"), [(7, 5), (1, 0), (3, 1), (4, 2), (16, 9), (255, 0)])
@pytest.mark.parametrize("shape", [(5, 12, 10, 3), (4, 9, 14)])
def test_decode_inverts_encode_onto_the_lattice_within_the_bound(
    step: int, slack: int, shape: tuple[int, ...]
) -> None:
    frames = _noise(shape, seed=step)
    deltas = encode_frames(frames, step, slack)
    assert deltas.shape == frames.shape and deltas.dtype == np.uint8
    decoded = decode_frames(deltas.copy(), np.empty_like(frames), step)
    np.testing.assert_array_equal(decoded, on_lattice(frames, step, slack))
    np.testing.assert_array_equal(decoded, _reference(frames, step, slack))
    bound = max(slack, step // 2, 255 % step)  # 255 % step: above the top lattice point
    assert np.abs(decoded.astype(int) - frames).max() <= bound
    assert (decoded % step == 0).all()
    # decoded frames are on the lattice already: encoding them again gives the same bytes
    np.testing.assert_array_equal(encode_frames(decoded, step, slack), deltas)


def test_flicker_within_the_slack_becomes_zero_deltas_and_zeros_stay_zero() -> None:
    base = (_noise((1, 16, 16, 3)) // 7 * 7).clip(7, 245).repeat(5, axis=0)  # on the lattice
    wobble = np.random.default_rng(1).integers(-2, 3, base.shape)
    frames = np.clip(base.astype(int) + wobble, 0, 255).astype(np.uint8)
    frames[:, :4] = 0  # padded rows, e.g. frames past a clip's end
    deltas = encode_frames(frames)
    assert not deltas[1:].any()  # every later frame repeats the first exactly
    decoded = decode_frames(deltas.copy(), np.empty_like(frames))
    assert not decoded[:, :4].any()
    assert not encode_frames(np.zeros((5, 8, 8), np.uint8)).any()


def test_encoding_is_deterministic_and_packs_a_still_smooth_scene_small() -> None:
    y, x = np.mgrid[0:96, 0:96]
    picture = np.stack([y * 2, x * 2, y + x], axis=-1) + _noise((96, 96, 3)) % 3
    frames = np.repeat(picture[None].astype(np.uint8), 5, axis=0)
    packed = Blosc("lz4hc", 4, Blosc.BITSHUFFLE).encode(encode_frames(frames))
    assert packed == Blosc("lz4hc", 4, Blosc.BITSHUFFLE).encode(encode_frames(frames))
    # the later frames are all zero deltas and the first is mostly so: a few % of raw
    assert len(packed) < frames.nbytes / 20


def test_plain_zarr_reads_the_filter_in_a_process_that_never_imports_lipflow(
    tmp_path: Path,
) -> None:
    frames = _noise((2, 10, 8, 8, 3))
    array = zarr.create_array(str(tmp_path / "a.zarr"), shape=frames.shape,
                              chunks=(1, 5, 8, 8, 3), dtype="uint8", fill_value=0,
                              filters=[FrameDelta(step=7, slack=5)])
    array[:] = frames
    expected = np.stack([np.concatenate([on_lattice(clip[t : t + 5]) for t in (0, 5)])
                         for clip in frames])
    np.testing.assert_array_equal(array[:], expected)
    assert array.metadata.to_dict()["codecs"][0]["name"] == NAME
    code = ("import sys, zarr, numpy as np; a = zarr.open_array(sys.argv[1], mode='r'); "
            "np.save(sys.argv[2], a[:]); print('lipflow' in ' '.join(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.zarr"),
                          str(tmp_path / "read.npy")], capture_output=True, text=True,
                         check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "read.npy"), expected)
    assert out.stdout.strip() == "True"  # zarr found the filter through the entry point


def test_filter_rejects_what_it_cannot_encode() -> None:
    with pytest.raises(ValueError, match="step must be 1..255"):
        FrameDelta(step=0)
    with pytest.raises(ValueError, match="encodes uint8 frames"):
        zarr.create_array(zarr.storage.MemoryStore(), shape=(1, 5, 4, 4), chunks=(1, 5, 4, 4),
                          dtype="float32", filters=[FrameDelta()])
