"""The Zarr v3 codec of lossy ``face`` / ``mouth`` chunks: a run of frames as one JPEG.

Why JPEG (``benchmarks/store_encoding.py --survey-clips``, README storage table): on GRID
face crops, JPEG at quality 92 with 4:4:4 chroma is ~4.0 KB a frame at 40.5 dB and
decodes in 50-90 us a frame, the same decoder work a folder of Lip2Wav JPEGs costs.
AVIF (3.1 KB at 41.1 dB) and JPEG XL are smaller at the same PSNR but decode ~4x slower,
which would make the loader slower than the JPEG folder it replaces; near-lossless
JPEG-LS (5.7 KB at 42.3 dB, max error 3) decodes ~5x slower, LERC is 3.5x larger. Face
chunks keep full-resolution chroma: 4:2:0, Lip2Wav's ``cv2.imwrite`` default, costs
~4 dB on 96 px faces framed by GRID's blue background.

Why one JPEG per chunk, frames stacked vertically: a chunk ``(1, F, H, W[, 3])`` is
C-contiguous, so the ``(F*H, W[, 3])`` image is the same bytes; a frame height that is a
multiple of the 8/16-px JPEG block keeps frames from sharing blocks, and one decode call
per chunk costs less than F calls. Decoding is ``imagecodecs.jpeg8_decode`` then a reshape
to the chunk's shape, which is what imagecodecs' own Zarr codec of the same name
(``imagecodecs_jpeg``, in imagecodecs releases that ship ``imagecodecs.zarr``) does, so
such a reader opens these arrays without lipflow; this module registers the codec with
zarr on import (``lipflow.tasks.contracts.store_layout`` imports it, and the package's
``zarr.codecs`` entry point names it) for the imagecodecs release lipflow pins, which has
no Zarr v3 codecs of its own. Encoding is deterministic: the same frames give the same
bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import imagecodecs
import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import parse_named_configuration
from zarr.registry import get_codec_class, register_codec

if TYPE_CHECKING:
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer

#: The codec's name in ``zarr.json`` (imagecodecs' Zarr v3 name for JPEG).
NAME = "imagecodecs_jpeg"


def as_image(frames: np.ndarray, colour: bool) -> np.ndarray:
    """Frames ``(..., H, W, 3)`` (``colour``) or ``(..., H, W)`` as one ``(F*H, W[, 3])``
    image: a view of the same bytes when ``frames`` is contiguous."""
    frames = np.ascontiguousarray(frames)
    if colour:
        return frames.reshape(-1, frames.shape[-2], frames.shape[-1])
    return frames.reshape(-1, frames.shape[-1])


def is_colour(chunk_shape: tuple[int, ...]) -> bool:
    """Whether a store chunk holds RGB frames: ``face`` chunks are (1, F, H, W, 3), five
    axes; ``mouth`` chunks (1, F, H, W) are grey."""
    return len(chunk_shape) == 5


def encode_frames(frames: np.ndarray, colour: bool, quality: int, subsampling: str | None,
                  optimize: bool) -> bytes:
    """JPEG bytes of a run of uint8 frames (RGB when ``colour``, else grey)."""
    image = as_image(frames, colour)
    return bytes(imagecodecs.jpeg8_encode(
        image, level=quality, subsampling=subsampling if image.ndim == 3 else None,
        optimize=optimize))


@dataclass(frozen=True)
class JpegFrames(ArrayBytesCodec):
    """Array-to-bytes codec: a uint8 chunk of frames as one baseline JPEG (see module doc)."""

    is_fixed_size = False

    level: int = 92
    subsampling: str | None = None
    optimize: bool = True

    def __init__(self, *, level: int = 92, subsampling: str | None = None,
                 optimize: bool = True) -> None:
        object.__setattr__(self, "level", int(level))
        object.__setattr__(self, "subsampling", None if subsampling is None else str(subsampling))
        object.__setattr__(self, "optimize", bool(optimize))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JpegFrames:
        _, config = parse_named_configuration(data, NAME, require_configuration=False)
        return cls(**(config or {}))

    def to_dict(self) -> dict[str, Any]:
        config: dict[str, Any] = {"level": self.level, "optimize": self.optimize}
        if self.subsampling is not None:
            config["subsampling"] = self.subsampling
        return {"name": NAME, "configuration": config}

    def validate(self, *, shape: tuple[int, ...], dtype: Any, chunk_grid: Any) -> None:
        if np.dtype(dtype.to_native_dtype()) != np.uint8:
            raise ValueError(f"{NAME} encodes uint8 frames, not {dtype}")

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        decoded = imagecodecs.jpeg8_decode(chunk_bytes.as_numpy_array())
        return chunk_spec.prototype.nd_buffer.from_numpy_array(
            decoded.reshape(chunk_spec.shape))

    async def _encode_single(self, chunk_array: NDBuffer,
                             chunk_spec: ArraySpec) -> Buffer | None:
        encoded = encode_frames(chunk_array.as_numpy_array(), is_colour(chunk_spec.shape),
                                self.level, self.subsampling, self.optimize)
        return chunk_spec.prototype.buffer.from_bytes(encoded)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError  # variable size, like every compressor


def register() -> None:
    """Make ``imagecodecs_jpeg`` known to zarr, unless a codec of that name already is."""
    try:
        get_codec_class(NAME)
    except KeyError:
        register_codec(NAME, JpegFrames)


register()
