"""The typed schema of ``params.yaml``: every key, its type, its one default and its meaning.

This module is the only place a default of a ``params.yaml`` key is written down; code
that needs one reads it from a validated model (``Preprocess().detect_every_frames``),
never from a literal of its own. The defaults are the project's own ``params.yaml``, so a
file that leaves a key out gets what the project ships. ``docs/params.md`` is rendered
from the ``Field`` descriptions here (:mod:`lipflow.tasks.settings.docs`).

Strict types: ``"1024"`` is not an int and ``true`` is not a number (an int is accepted
where a float is asked for). Every section forbids unknown keys, so a misspelt key fails
instead of silently falling back to a default.

Keys marked *optional* (``Field(json_schema_extra=OPTIONAL)``) have no value unless the
file sets one: the overrides of a training preset (``train.lip2wav.epochs`` wins over
``train.lip2wav.tiny.epochs``) and a Lip2Wav preset's own face size.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

#: ``json_schema_extra`` of a key that is absent unless the file sets it (see module doc).
OPTIONAL: dict[str, Any] = {"optional": True}

Detector = Literal["short_range", "full_range"]
Crop = Literal["full", "bottom_right", "chess"]
ModelName = Literal["lip2wav", "avsync", "gabor", "vcagan"]
Size = Literal["tiny", "full"]


def is_optional_key(model: type[BaseModel], name: str) -> bool:
    """Whether ``model.name`` is an optional key (absent unless set; see module doc)."""
    extra = model.model_fields[name].json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("optional"))


class Section(BaseModel):
    """A ``params.yaml`` mapping: strict types, no unknown keys, immutable once read."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="after")
    def _optional_keys_are_not_null(self) -> Section:
        """An optional key may be left out, but ``null`` would reach the code as a value."""
        for name in type(self).model_fields:
            if (is_optional_key(type(self), name) and name in self.model_fields_set
                    and getattr(self, name) is None):
                raise PydanticCustomError("optional_null", "may be left out but not null",
                                          {"key": name})
        return self


def _optional(description: str) -> Any:
    return Field(None, description=description, json_schema_extra=OPTIONAL)


# --------------------------------------------------------------------------- corpora


class Grid(Section):
    """``grid`` — GRID download and preparation."""

    mirror: str = Field("sample", description=(
        "`zenodo` (for real use), `sheffield`, `sample` (the bundled corpus), or a base "
        "http(s)/file URL holding `s{N}.zip` and `alignments.zip`"))
    raw_root: str = Field("data/raw/grid", description=(
        "where `ROOT/s{N}/*.mpg`, `ROOT/alignments/s{N}/*.align` and "
        "`ROOT/manifests/s{N}.parquet` live"))
    features_root: str = Field("data/features/grid", description=(
        "where `s{N}.zarr` and `s{N}.parquet` (clip manifest) are written"))
    speakers: list[str] = Field(["s1", "s16", "s25", "s27"], description=(
        "speakers to download and prepare (default: the bundled sample's); one DVC stage "
        "pair per speaker"))
    fps: float = Field(25, gt=0, description="GRID's frame rate (25)")
    language: str = Field("en", description="language code recorded in manifests")


class Lip2WavSpeaker(Section):
    """One Lip2Wav speaker's video settings."""

    fps: float = Field(gt=0, description="the speaker's frame rate")
    crop: Crop = Field("full", description=(
        "region searched for the face: `full`, `bottom_right` (a presenter's inset) or "
        "`chess` (the chess channel's webcam corner)"))
    face_size_px: int | None = _optional(
        "face crop side; absent: `preprocess.face_size_px`")
    detector: Detector = Field("full_range", description=(
        "BlazeFace model; `full_range` (the default here) finds the small, off-centre faces "
        "of YouTube lectures"))


def _lip2wav_presets() -> dict[str, Lip2WavSpeaker]:
    return {
        "chem": Lip2WavSpeaker(fps=30, crop="full", face_size_px=96),
        "chess": Lip2WavSpeaker(fps=30, crop="chess", face_size_px=48),
        "dl": Lip2WavSpeaker(fps=25, crop="bottom_right", face_size_px=48),
        "eh": Lip2WavSpeaker(fps=30, crop="bottom_right", face_size_px=48),
        "hs": Lip2WavSpeaker(fps=30, crop="full", face_size_px=48),
    }


class Lip2Wav(Section):
    """``lip2wav`` — Lip2Wav YouTube speakers."""

    raw_root: str = Field("data/raw/lip2wav", description="as `grid.raw_root`")
    features_root: str = Field("data/features/lip2wav", description="as `grid.features_root`")
    speakers: list[str] = Field([], description=(
        "any of `chem chess dl eh hs` (each needs a preset); empty by default (needs the "
        "internet)"))
    split: Literal["train", "val", "test", "all"] = Field("test", description=(
        "which published list to download"))
    limit_videos: int = Field(2, ge=0, description="at most this many videos per speaker (0 = all)")
    max_height_px: int = Field(720, gt=0, description="yt-dlp format cap")
    language: str = Field("en", description="language code recorded in manifests")
    presets: dict[str, Lip2WavSpeaker] = Field(default_factory=_lip2wav_presets, description=(
        "per speaker: `fps`, `crop`, `face_size_px`, optional `detector`"))

    @model_validator(mode="after")
    def _speakers_have_presets(self) -> Lip2Wav:
        missing = [s for s in self.speakers if s not in self.presets]
        if missing:
            raise ValueError(f"speakers {missing} have no entry under lip2wav.presets")
        return self


# --------------------------------------------------------------------------- preprocess


class Preprocess(Section):
    """``preprocess`` — clips, face tracking and crops."""

    clip_seconds: float = Field(3, gt=0, description=(
        "clip length (3 s: 75 frames at 25 fps, 90 at 30, 48000 samples)"))
    sample_rate_hz: int = Field(16000, gt=0, description="audio rate (16 kHz mono int16)")
    detector: Detector = Field("short_range", description=(
        "BlazeFace model: `short_range` (GRID) or `full_range`"))
    detect_every_frames: int = Field(37, ge=1, description=(
        "run the detector on every k-th frame (and the clip's last) and interpolate "
        "between. Measured on the sample (`benchmarks/detect_stride.py --strides 1 10 25 37 "
        "50 74 --refine-motion none 0.05`), the mean box deviation from every-frame "
        "detection, as % of face size, is 0.60% at k=10 (9 detections a clip), 0.81% at 25 "
        "(4.2), 0.84% at 37 (3.2 detections a clip, worst clip 2.5%, mouth centre 1.2%), "
        "0.99% at 50 and 1.14% at 74 (2 detections; mouth 2.1%). The default 37 (the first, "
        "middle and last frame of a 75-frame clip) keeps the mean under half the 2% bound at "
        "a third of k=10's detector time; `refine_motion` looks between detections where a "
        "long stride could miss something"))
    refine_motion: float | None = Field(0.05, ge=0, description=(
        "between two neighbouring strided detections that disagree (exactly one found a "
        "face, or the largest face's centre moved more than this fraction of its size) the "
        "frame halfway is detected too, recursively down to adjacent frames: a face lost or "
        "a head turned mid-stride is located to the frame for about log2(k) extra "
        "detections, and one missed detection does not sink a clip's detection rate. Two "
        "misses are not refined, so a faceless clip costs only the stride. `null` = plain "
        "stride. On the (nearly still) GRID sample 0.05 adds 0.2 detections a clip"))
    min_detection_rate: float = Field(0.8, ge=0, le=1, description=(
        "a clip with a smaller fraction of frames with a detected face is rejected"))
    min_face_score: float = Field(0.5, ge=0, le=1, description="detector confidence threshold")
    smooth_window_frames: int = Field(5, ge=1, description=(
        "moving-average window over boxes and keypoints"))
    min_clip_seconds: float = Field(1.0, ge=0, description=(
        "a final partial window shorter than this is dropped"))
    second_face: Literal["reject", "keep_largest"] = Field("reject", description=(
        "`reject` a clip with a second face of similar size, or `keep_largest`"))
    second_face_area_ratio: float = Field(0.6, gt=0, le=1, description=(
        "how large (vs the tracked face) a second face must be to count"))
    face_size_px: int = Field(96, ge=8, description="face crop side (96 for Lip2Wav)")
    face_margin: float = Field(0.25, ge=0, description=(
        "face box growth per side, as a fraction of its size"))
    mouth_preset: Literal["square", "cnn3d", "vcagan"] = Field("square", description=(
        "`square` (uses `mouth_height_px` x `mouth_width_px`), `cnn3d` (60x100) or `vcagan` "
        "(112x112 lower face: a 136-px mean-face window, as VCA-GAN's crop)"))
    mouth_height_px: int = Field(96, ge=8, description="mouth crop height (`square` preset)")
    mouth_width_px: int = Field(96, ge=8, description="mouth crop width (`square` preset)")
    mouth_alignment: Literal["landmarks", "keypoints"] = Field("landmarks", description=(
        "what places the mouth crop: `landmarks` (FaceMesh's 468 points on every frame, "
        "smoothed; eye corners and nose tip fitted to a mean face, the window fixed on the "
        "clip's mean mouth centre, as auto_avsr) or `keypoints` (BlazeFace's 4 keypoints, "
        "strided and interpolated). `benchmarks/mouth_jitter.py` on 49 GRID s1 clips: the "
        "lip corners move 1.05x less inside the landmark crop; FaceMesh runs anyway for "
        "`quality_signals`, so the alignment adds no cost (README)"))
    landmark_smooth_frames: int = Field(5, ge=1, description=(
        "moving-average window over the FaceMesh landmarks that place the crop"))
    landmark_every_frames: int = Field(1, ge=1, description=(
        "run FaceMesh on every k-th frame of a kept clip (and its last) and interpolate "
        "between. The AV offset needs the lips on every frame: on 98 GRID s1 clips "
        "(`benchmarks/av_offset.py --landmark-every K`) known shifts are recovered within "
        "+-1 frame in 88.5 % of cases at k=1 and 85.1 % at k=2, which halves FaceMesh's "
        "cost (k=3: under 70 %)"))
    quality_signals: bool = Field(True, description=(
        "run FaceMesh on kept clips for the manifest's `mouth_occluded_frac`, "
        "`av_offset_frames` and `av_sync_confidence` even under `mouth_alignment: keypoints`"))
    max_damaged_frames: int = Field(0, ge=0, description=(
        "a clip with more flat mid-grey frames than this (what an MPEG decoder shows for a "
        "missing reference frame: 11 of GRID s1's 1000 videos) is rejected as `corrupt "
        "video stream`"))
    max_decode_error_frames: int = Field(2, ge=0, description=(
        "a clip with more frames than this that the decoder marked corrupt (concealed "
        "errors) is rejected as `corrupt video stream`. Not 0: on GRID s1 one video has one "
        "marked frame that looks whole; a damaged stream marks dozens. A truncated file's "
        "partial last frame does not count"))
    max_mouth_occluded_frac: float | None = Field(None, ge=0, le=1, description=(
        "reject a clip whose `mouth_occluded_frac` is above this (`null`: report only)"))
    max_duplicate_frame_frac: float | None = Field(None, ge=0, le=1, description=(
        "reject a clip whose `duplicate_frame_frac` is above this (`null`: report only)"))
    max_abs_av_offset_frames: int | None = Field(None, ge=0, description=(
        "reject a clip whose |`av_offset_frames`| is above this while its "
        "`av_sync_confidence` is at least `min_av_sync_confidence` (`null`: report only)"))
    min_av_sync_confidence: float = Field(0.0, ge=0, description=(
        "the AV offset counts for `max_abs_av_offset_frames` only at this confidence"))
    require_audio: bool = Field(True, description=(
        "a video without an audio stream is rejected (`true`), or prepared as a silent clip "
        "(`false`: frames and crops stored, `wav` all zeros with `valid_samples` 0, mel and "
        "mfec those of silence; docs/contracts.md). `lipflow prepare --no-audio` and "
        "`lipflow download local --no-audio` set it false for one run. Recorded in a store's "
        "params only when false, so stores of audio-bearing videos do not change"))


# --------------------------------------------------------------------------- features


class Mel(Section):
    """``features.mel`` — Lip2Wav's ``melspectrogram`` hparams (and its inverse's)."""

    sample_rate_hz: int = Field(16000, gt=0, description="audio rate the mel is computed at")
    preemphasis: float = Field(0.97, description="pre-emphasis filter coefficient")
    n_fft: int = Field(800, gt=0, description="STFT size")
    hop_samples: int = Field(200, gt=0, description=(
        "STFT hop (200 at 16 kHz: 80 mel frames a second, 241 for a 3 s clip)"))
    win_samples: int = Field(800, gt=0, description="STFT window (periodic Hann), <= `n_fft`")
    n_mels: int = Field(80, gt=0, description="mel bands (Slaney scale and norm)")
    fmin_hz: float = Field(55, ge=0, description="lowest mel band edge")
    fmax_hz: float = Field(7600, gt=0, description="highest mel band edge, <= Nyquist")
    ref_level_db: float = Field(20, description="dB subtracted after the log")
    min_level_db: float = Field(-100, lt=0, description="floor of the dB scale")
    max_abs_value: float = Field(4, gt=0, description=(
        "values are normalised to `[-max_abs_value, max_abs_value]`"))
    griffin_lim_iters: int = Field(60, ge=1, description="inverse: Griffin-Lim rounds")
    power: float = Field(1.5, gt=0, description=(
        "inverse: magnitudes are raised to this power (1.5 sharpens harmonics)"))

    @model_validator(mode="after")
    def _consistent(self) -> Mel:
        if not self.fmin_hz < self.fmax_hz <= self.sample_rate_hz / 2:
            raise ValueError(f"needs fmin_hz < fmax_hz <= sample_rate_hz/2, got fmin_hz="
                             f"{self.fmin_hz}, fmax_hz={self.fmax_hz}, sample_rate_hz="
                             f"{self.sample_rate_hz}")
        if self.win_samples > self.n_fft:
            raise ValueError(f"needs win_samples <= n_fft, got {self.win_samples} > {self.n_fft}")
        return self

    @property
    def frames_per_second(self) -> float:
        """Mel frames a second (80 for 16 kHz with a 200-sample hop)."""
        return self.sample_rate_hz / self.hop_samples


class Mfec(Section):
    """``features.mfec`` — speechpy ``lmfe`` + derivatives (the coupled 3D CNN's input)."""

    sample_rate_hz: int = Field(16000, gt=0, description="audio rate")
    input_units: Literal["float", "int16"] = Field("float", description=(
        "`float` feeds samples in [-1, 1) (int16/32768, as soundfile reads them), `int16` "
        "int16-valued floats (as scipy's wavfile); shifts the static channel by 2 ln 32768"))
    frame_seconds: float = Field(0.02, gt=0, description="frame length")
    stride_seconds: float = Field(0.02, gt=0, description=(
        "frame stride (0.02: 50 MFEC frames a second, 149 for a 3 s clip)"))
    n_filters: int = Field(40, gt=0, description="mel filters")
    n_fft: int = Field(1024, gt=0, description="FFT size, >= one frame of samples")

    @model_validator(mode="after")
    def _frame_fits(self) -> Mfec:
        if self.n_fft < round(self.frame_seconds * self.sample_rate_hz):
            raise ValueError(f"n_fft ({self.n_fft}) is shorter than a frame "
                             f"({self.frame_seconds} s at {self.sample_rate_hz} Hz)")
        return self

    @property
    def frames_per_second(self) -> float:
        """MFEC frames a second (50 for a 20 ms stride)."""
        return 1 / self.stride_seconds


class Store(Section):
    """``features.store`` — the Zarr store's layout and compression."""

    clips_per_shard: int = Field(64, ge=1, description=(
        "clips per shard (64 GRID clips make a ~20 MB face shard with `jpeg`, ~130 MB lossless)"))
    codec: Literal["jpeg", "lz4", "zstd", "none"] = Field("jpeg", description=(
        "`jpeg` (lossy face and mouth, one JPEG per chunk, the other arrays lossless Blosc "
        "zstd: 0.68 GB per hour of GRID video, 40.5 dB PSNR face), or lossless: `lz4` (Blosc "
        "lz4 + shuffle, 3.35 GB/h, the fastest to read: >= 10x the JPEG-folder loader), "
        "`zstd` (~15% smaller than lz4, ~10x slower to decode) or `none` "
        "(README storage table)"))
    compressor_level: int = Field(3, ge=1, le=22, description=(
        "level of the lossless compressor: lz4 and jpeg (its Blosc zstd) 1-9, zstd 1-22"))
    jpeg_face_quality: int = Field(92, ge=1, le=100, description=(
        "JPEG quality of `face` chunks under `codec: jpeg` (4:4:4 chroma)"))
    jpeg_mouth_quality: int = Field(85, ge=1, le=100, description=(
        "JPEG quality of the grey `mouth` chunks under `codec: jpeg`"))
    frames_per_chunk: int = Field(5, ge=0, description=(
        "face and mouth clips are cut into chunks of this many frames inside a shard, so a "
        "training window decodes only the frames it overlaps (5: a 25-frame window decodes "
        "25-30 frames, not 75; 0: one chunk per clip)"))


class Features(Section):
    """``features`` — mel, MFEC and the Zarr store."""

    mel: Mel = Field(default_factory=Mel)
    mfec: Mfec = Field(default_factory=Mfec)
    store: Store = Field(default_factory=Store)


# --------------------------------------------------------------------------- splits


class _Split(Section):
    corpus: str = Field("grid", description="the corpus section whose stores the split reads")


class SeenSplit(_Split):
    """``kind: seen``: the same speakers in every part."""

    kind: Literal["seen"] = Field(description="`seen`")
    speakers: list[str] = Field(description="speakers of every part")
    val_per_speaker: int = Field(0, ge=0, description="clips per speaker put in val")
    test_per_speaker: int = Field(0, ge=0, description="clips per speaker put in test")


class UnseenSplit(_Split):
    """``kind: unseen``: disjoint speaker lists."""

    kind: Literal["unseen"] = Field(description="`unseen`")
    train: list[str] = Field([], description="training speakers")
    val: list[str] = Field([], description="validation speakers")
    test: list[str] = Field([], description="test speakers")


class ListsSplit(_Split):
    """``kind: lists``: the manifest's own split column (Lip2Wav's published lists)."""

    kind: Literal["lists"] = Field(description="`lists`")
    speakers: list[str] = Field([], description="speakers to keep (empty = all)")


class ListsFileSplit(_Split):
    """``kind: lists_file``: utterance lists in files (VCA-GAN's published GRID protocols).

    A line names one utterance as ``[part/]speaker/.../utterance[.ext]``
    (``s1/video/sbag8n.mp4``, ``val/s20/prwo5p``), matched to the clip manifest's
    ``speaker`` and ``utterance_id``; a line with a part prefix counts only for that part.
    """

    kind: Literal["lists_file"] = Field(description="`lists_file`")
    lists: str = Field(description=(
        "folder of the list files: a name under `models/split_lists/` (shipped with "
        "lipflow, so DVC tracks it) or a path"))
    train_list: str | None = _optional("file in `lists` of the train part (absent: none)")
    val_list: str | None = _optional("file in `lists` of the val part (absent: none)")
    test_list: str | None = _optional(
        "file in `lists` of the test part (absent: none); may be the val list")
    speakers: list[str] = Field([], description=(
        "speakers to keep (empty = every speaker the lists name)"))


Split = Annotated[SeenSplit | UnseenSplit | ListsSplit | ListsFileSplit,
                  Field(discriminator="kind")]


def _vcagan_lists(train: str, val: str, test: str) -> ListsFileSplit:
    return ListsFileSplit(corpus="grid", kind="lists_file", lists="vcagan_grid",
                          train_list=train, val_list=val, test_list=test)


def _splits() -> dict[str, SeenSplit | UnseenSplit | ListsSplit | ListsFileSplit]:
    return {
        "sample": SeenSplit(corpus="grid", kind="seen", speakers=["s1", "s16", "s25", "s27"],
                            val_per_speaker=1, test_per_speaker=1),
        "seen4": _vcagan_lists("train_4.txt", "val_4.txt", "test_4.txt"),
        "seen4_random": SeenSplit(corpus="grid", kind="seen", speakers=["s1", "s2", "s4", "s29"],
                                  val_per_speaker=50, test_per_speaker=50),
        "overlap": _vcagan_lists("overlap_train.txt", "overlap_val.txt", "overlap_val.txt"),
        "unseen": _vcagan_lists("unseen_splits.txt", "unseen_splits.txt", "unseen_splits.txt"),
        "lip2wav_chem": ListsSplit(corpus="lip2wav", kind="lists", speakers=["chem"]),
    }


#: What the project's named splits are for (docs only).
SPLIT_NOTES = {
    "sample": "the bundled corpus: a smoke test of the whole DAG, not a benchmark",
    "seen4": ("GRID s1, s2, s4, s29 by the published lists of Lip2Wav and VCA-GAN: "
              "3586 / 199 / 200 utterances"),
    "seen4_random": "the same four speakers, about 900 / 50 / 50 clips per speaker, seeded",
    "overlap": ("VCA-GAN's 33-speaker overlapped protocol, 24407 train / 8415 val utterances; "
                "test is the val list, on which VCA-GAN reports its figures"),
    "unseen": ("VCA-GAN's unseen-speaker protocol: 16 train, 7 val, 10 test speakers "
               "(15888 / 7000 / 9982 utterances)"),
    "lip2wav_chem": "Lip2Wav `chem` by its published lists",
}


# --------------------------------------------------------------------------- train


class Sizes(Section):
    """Keys every model's ``tiny``/``full`` preset has."""

    epochs: int | None = _optional("training epochs")
    batch_size: int | None = _optional("clips per batch")


class Lip2WavSizes(Sizes):
    """Lip2Wav's sizes (a key left out: the paper's size, ``Lip2WavConfig``)."""

    channels: list[int] | None = _optional("encoder channels per 3D-conv stage")
    res_blocks: int | None = _optional("residual blocks after each downsampling conv")
    stem_spatial_stride: int | None = _optional("first conv's spatial stride")
    hidden: int | None = _optional("non-autoregressive decoder width")
    conv_layers: int | None = _optional("non-autoregressive decoder 1-D conv layers")
    r: int | None = _optional("attention decoder: mel frames per step")
    prenet: list[int] | None = _optional("attention decoder: prenet layer sizes")
    attention_rnn: int | None = _optional("attention LSTM size")
    decoder_rnn: int | None = _optional("decoder LSTM size")
    attention_dim: int | None = _optional("attention projection size")
    location_filters: int | None = _optional("location-sensitive attention filters")
    location_kernel: int | None = _optional("location-sensitive attention kernel")
    postnet_channels: int | None = _optional("postnet channels")
    postnet_layers: int | None = _optional("postnet layers (0 = none)")


class AVSyncSizes(Sizes):
    """AVSync's sizes (a key left out: the paper's, ``AVSyncConfig``)."""

    mouth_hw: list[int] | None = _optional("mouth crops are resized to this (height, width)")
    mouth_channels: list[int] | None = _optional("mouth branch channels")
    speech_channels: list[int] | None = _optional("speech branch channels")
    embedding: int | None = _optional("embedding size")


class GaborSizes(Sizes):
    """The Gabor model's sizes (a key left out: ``GaborConfig``'s)."""

    hidden: int | None = _optional("LSTM size")


class VcaGanSizes(Sizes):
    """VCA-GAN's sizes (a key left out: the paper's size, ``VcaGanConfig``)."""

    window_frames: int | None = Field(None, ge=20, json_schema_extra=OPTIONAL, description=(
        "training window in video frames (the paper: 40 = 1.6 s; at least 20, the "
        "discriminators' last 5x5 conv)"))
    window_stride_frames: int | None = Field(None, ge=1, json_schema_extra=OPTIONAL,
                                             description=(
        "frames between training windows' starts (the paper: 1, every window; the tiny "
        "preset: 20, two windows a sample clip, for CPU seconds)"))
    image_hw: list[int] | None = _optional("grey mouth crops are resized to this (height, width)")
    front_channels: int | None = _optional("3-D conv stem channels")
    trunk_channels: list[int] | None = _optional("ResNet trunk channels of its 4 stages")
    trunk_blocks: int | None = _optional("basic blocks per trunk stage")
    gru_hidden: int | None = _optional("sentence GRU size (per direction)")
    gru_layers: int | None = _optional("sentence GRU layers")
    context_dim: int | None = _optional("visual context (`sent`) channels")
    noise_channels: int | None = _optional("generator noise channels")
    bottleneck_channels: list[int] | None = _optional("generator bottleneck blocks' channels (3)")
    stage_channels: list[int] | None = _optional("generator g1, g2, g3 channels")
    attention_dim: int | None = _optional("visual context attention size")
    disc_channels: int | None = _optional("discriminators' first conv channels (doubled per block)")
    disc_max_channels: int | None = _optional("discriminators' largest channel count")
    postnet_channels: list[int] | None = _optional("postnet channels (first conv, residual blocks)")
    sync_channels: list[int] | None = _optional("sync discriminator conv channels")


class ModelTrain(Section):
    """Knobs of every model's ``train.<model>`` section (besides its presets)."""

    lr: float = Field(0.001, gt=0, description="Adam learning rate")
    weight_decay: float | None = _optional("Adam weight decay")
    grad_clip: float | None = _optional("gradient norm clip (0 = none)")
    amp: Literal["auto", "bf16", "fp16", "none"] | None = _optional(
        "mixed precision on GPU: `auto` (bf16 where supported), `bf16`, `fp16`, `none`")
    device: str | None = _optional("torch device (`auto`: CUDA when present)")
    best_by: Literal["stoi", "loss"] | None = _optional(
        "which epoch `best.pt` keeps: highest val STOI (default of speech models, as VCA-GAN "
        "and Lip2Wav chose) or lowest val loss (default of the sync model)")
    val_stoi_clips: int | None = Field(None, ge=0, json_schema_extra=OPTIONAL, description=(
        "val clips scored for STOI each epoch, the first of the val part (default 8: "
        "Griffin-Lim and STOI cost ~1 s a clip on a CPU; 0 = none)"))


class Lip2WavTrain(ModelTrain, Lip2WavSizes):
    """``train.lip2wav`` — Lip2Wav lip-to-speech."""

    decoder: Literal["nonautoregressive", "attention"] = Field("nonautoregressive", description=(
        "`nonautoregressive` (fast) or `attention` (the paper's Tacotron-2 decoder)"))
    tiny: Lip2WavSizes = Field(default_factory=lambda: Lip2WavSizes(
        epochs=2, batch_size=2, channels=[8, 16, 32], res_blocks=1, stem_spatial_stride=8,
        hidden=64, conv_layers=2, r=5, prenet=[64, 64], attention_rnn=64, decoder_rnn=64,
        attention_dim=32, location_filters=8, location_kernel=15, postnet_channels=32,
        postnet_layers=2))
    full: Lip2WavSizes = Field(default_factory=lambda: Lip2WavSizes(
        epochs=300, batch_size=32, channels=[32, 64, 128, 256, 512], res_blocks=2,
        stem_spatial_stride=2, hidden=256, conv_layers=3, r=2, prenet=[256, 256],
        attention_rnn=1024, decoder_rnn=1024, attention_dim=128, location_filters=32,
        location_kernel=31, postnet_channels=512, postnet_layers=5))


class AVSyncTrain(ModelTrain, AVSyncSizes):
    """``train.avsync`` — the coupled 3D CNN audio-visual sync model."""

    window_frames: int = Field(8, ge=2, description=(
        "0.32 s at 25 fps (the paper: 9 frames at 30 fps)"))
    margin: float = Field(1.0, gt=0, description="contrastive margin on the embedding distance")
    selection_margin: float = Field(0.5, ge=0, description=(
        "impostors kept when closer than max genuine + this"))
    min_shift_frames: int = Field(4, ge=1, description=(
        "time-shifted impostors are at least this far off"))
    folds: int = Field(10, ge=2, description="folds of the EER/AUC/AP mean and std")
    tiny: AVSyncSizes = Field(default_factory=lambda: AVSyncSizes(
        epochs=2, batch_size=4, mouth_hw=[30, 50], mouth_channels=[8, 16, 32],
        speech_channels=[8, 16, 32], embedding=64))
    full: AVSyncSizes = Field(default_factory=lambda: AVSyncSizes(
        epochs=100, batch_size=32, mouth_hw=[60, 100], mouth_channels=[16, 32, 64, 128],
        speech_channels=[16, 32, 64, 128], embedding=64))


class GaborTrain(ModelTrain, GaborSizes):
    """``train.gabor`` — Gabor mouth features to speech."""

    tiny: GaborSizes = Field(default_factory=lambda: GaborSizes(
        epochs=2, batch_size=2, hidden=32))
    full: GaborSizes = Field(default_factory=lambda: GaborSizes(
        epochs=200, batch_size=32, hidden=256))


class VcaGanTrain(ModelTrain, VcaGanSizes):
    """``train.vcagan`` — VCA-GAN lip-to-speech (a GAN: two optimisers, its own step)."""

    lr: float = Field(0.0001, gt=0, description="Adam learning rate of both optimisers")
    weight_decay: float = Field(0.00001, ge=0, description="Adam weight decay of both")
    grad_clip: float = Field(0.0, ge=0, description=(
        "gradient norm clip of each optimiser's parameters (0 = none, as the paper)"))
    milestones: list[int] = Field([500, 800], description=(
        "epochs at which both learning rates drop by `gamma` (MultiStepLR)"))
    gamma: float = Field(0.1, gt=0, description="learning-rate factor at each milestone")
    rec_weight: float = Field(50.0, ge=0, description=(
        "weight of the reconstruction loss in the generator loss"))
    tiny: VcaGanSizes = Field(default_factory=lambda: VcaGanSizes(
        epochs=2, batch_size=2, window_frames=40, window_stride_frames=20, image_hw=[32, 32],
        front_channels=8,
        trunk_channels=[8, 16, 32, 32], trunk_blocks=1, gru_hidden=32, gru_layers=1,
        context_dim=32, noise_channels=8, bottleneck_channels=[32, 32, 32],
        stage_channels=[16, 8, 4], attention_dim=16, disc_channels=8, disc_max_channels=32,
        postnet_channels=[16, 32], sync_channels=[8, 16]))
    full: VcaGanSizes = Field(default_factory=lambda: VcaGanSizes(
        epochs=500, batch_size=22, window_frames=40, window_stride_frames=1,
        image_hw=[112, 112], front_channels=64,
        trunk_channels=[64, 128, 256, 512], trunk_blocks=2, gru_hidden=512, gru_layers=2,
        context_dim=512, noise_channels=128, bottleneck_channels=[512, 256, 256],
        stage_channels=[128, 64, 32], attention_dim=256, disc_channels=32,
        disc_max_channels=512, postnet_channels=[128, 256], sync_channels=[128, 256]))


class Train(Section):
    """``train`` — seed models (``models/``).

    ``size`` picks each model's preset; keys set directly under ``train.<model>`` override
    the preset, so ``dvc exp run -S train.lip2wav.lr=3e-4`` works in either size.
    """

    models: list[ModelName] = Field(["lip2wav", "avsync", "gabor", "vcagan"], description=(
        "models with a `train@`/`evaluate@` stage pair"))
    split: str = Field("sample", description="the active split (a name under `splits`)")
    loader_workers: int = Field(0, ge=0, description="DataLoader worker processes")
    seed: int = Field(0, description="seeds Python, numpy and torch")
    size: Size = Field("tiny", description=(
        "`tiny` (CPU minutes on the sample) or `full` (the papers' sizes)"))
    cpu_threads: int = Field(0, ge=0, description=(
        "torch intra-op threads (0 = torch's default; 1 helps on a crowded CPU)"))
    lip2wav: Lip2WavTrain = Field(default_factory=Lip2WavTrain)
    avsync: AVSyncTrain = Field(default_factory=AVSyncTrain)
    gabor: GaborTrain = Field(default_factory=GaborTrain)
    vcagan: VcaGanTrain = Field(default_factory=VcaGanTrain)


# --------------------------------------------------------------------------- runtime


class Runtime(Section):
    """``runtime`` — where tasks run."""

    runner: Literal["thread", "process", "dask", "ray"] = Field("process", description=(
        "task runner; the CLI's `--runner` wins"))
    address: str | None = Field(None, description=(
        "an existing Dask scheduler (`tcp://host:8786`) or Ray head; null = start one"))
    max_workers: int | None = Field(None, ge=1, description="local pool size (null = one per core)")
    task_seconds_of_video: float = Field(300.0, gt=0, description=(
        "`prepare` packs videos into one task until they hold this many seconds (300 = 100 "
        "GRID videos; a longer video is a task of its own); the CLI's `--task-seconds` wins"))


class Schedule(Section):
    """``schedule`` — ``lipflow serve``."""

    refresh_cron: str = Field("0 3 * * *", description=(
        "cron of the nightly `refresh` deployment (download + dvc repro + dvc push)"))
    timezone: str = Field("UTC", description="its time zone")


# --------------------------------------------------------------------------- the file


class Params(Section):
    """The whole of ``params.yaml``, grouped by stage. Names carry their units."""

    grid: Grid = Field(default_factory=Grid)
    lip2wav: Lip2Wav = Field(default_factory=Lip2Wav)
    preprocess: Preprocess = Field(default_factory=Preprocess)
    features: Features = Field(default_factory=Features)
    splits: dict[str, Split] = Field(default_factory=_splits, description=(
        "named train/val/test splits (`models/splits.py`); `train.split` picks one"))
    train: Train = Field(default_factory=Train)
    runtime: Runtime = Field(default_factory=Runtime)
    schedule: Schedule = Field(default_factory=Schedule)

    @model_validator(mode="after")
    def _active_split_exists(self) -> Params:
        if self.train.split not in self.splits:
            raise ValueError(f"train.split '{self.train.split}' is not a name under splits "
                             f"(known: {', '.join(sorted(self.splits))})")
        return self
