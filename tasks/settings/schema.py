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

Detector = Literal["short_range", "full_range", "auto"]
Crop = Literal["full", "bottom_right", "chess"]
ModelName = Literal["lip2wav", "avsync", "gabor", "gaborpic", "vcagan"]
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
        "where `s{N}.zarr` and `s{N}.parquet` (clip manifest) are written: a folder, or an "
        "`s3://BUCKET/PREFIX` URL (docs/operations.md, stores on S3)"))
    speakers: list[str] = Field(["s1", "s16", "s25", "s27"], description=(
        "speakers to download and prepare (default: the bundled sample's); one DVC stage "
        "pair per speaker"))
    fps: float = Field(25, gt=0, description="GRID's frame rate (25)")
    language: str = Field("en", description="language code recorded in manifests")
    detector: Detector | None = _optional(
        "face detector for GRID; absent: `preprocess.detector`")


class Lip2WavSpeaker(Section):
    """One Lip2Wav speaker's video settings."""

    fps: float = Field(gt=0, description="the speaker's frame rate")
    crop: Crop = Field("full", description=(
        "region searched for the face: `full`, `bottom_right` (a presenter's inset) or "
        "`chess` (the chess channel's webcam corner)"))
    face_size_px: int | None = _optional(
        "face crop side; absent: `preprocess.face_size_px`")
    detector: Detector = Field("full_range", description=(
        "face detector; `full_range` (the default here) finds the small, off-centre faces "
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


class UserCorpus(Section):
    """``user_corpus`` — every corpus without a section of its own (`local`, `youtube`, any
    `--corpus` name given to `lipflow download local|youtube`)."""

    fps: float = Field(25, gt=0, description=(
        "frame rate clips are resampled to; `lipflow prepare --fps` wins"))
    detector: Detector | None = _optional(
        "face detector for these corpora; absent: `preprocess.detector`; "
        "`lipflow prepare --detector` wins")


# --------------------------------------------------------------------------- preprocess


class Preprocess(Section):
    """``preprocess`` — clips, face tracking and crops."""

    clip_seconds: float = Field(3, gt=0, description=(
        "clip length (3 s: 75 frames at 25 fps, 90 at 30, 48000 samples)"))
    sample_rate_hz: int = Field(16000, gt=0, description="audio rate (16 kHz mono int16)")
    detector: Detector = Field("auto", description=(
        "face detector: a BlazeFace model (`short_range`: large faces, the best on "
        "near-profile heads; `full_range`: smaller faces) or `auto` for mixed footage: "
        "short-range first, full-range on frames where it finds nothing, then full-range on "
        "overlapping tiles of half the frame's short side where neither finds a face (65-px "
        "faces in 1080p and 4K frames, which both models miss on the whole frame). A frame "
        "with a face costs one short-range call, so GRID is unchanged. Measured on 12 real "
        "clips in docs/real_footage.md. Per corpus: `grid.detector`, "
        "`lip2wav.presets.<spk>.detector`, `user_corpus.detector`; the CLI's `--detector` "
        "wins"))
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
        "a final partial window shorter than this is not a clip; it gets a rejected manifest "
        "row, reason `tail shorter than ...`"))
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
    landmark_every_frames: int = Field(3, ge=1, description=(
        "run FaceMesh on every k-th frame of a kept clip (and its last) and interpolate "
        "between; the AV offset refits the lips between from the mouth crops. On three "
        "sets of ~100 GRID s1 clips (`benchmarks/av_offset.py --landmark-every K --first "
        "0/5/7`) known shifts are recovered within +-1 frame in 93.2 % of cases at k=3 "
        "(lips alone on every frame, before: 93.0 %), at a third of FaceMesh's cost; the "
        "mouth crops differ from k=1 by 0.47 grey levels on average (k=4: 91.8 %, 0.7)"))
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
        "clips per shard (64 GRID clips make a ~20 MB face shard with `delta` or `jpeg`, "
        "~130 MB lossless)"))
    codec: Literal["delta", "jpeg", "lz4", "zstd", "none"] = Field("delta", description=(
        "`delta` (near-lossless face: samples on a lattice of `delta_step`, coded as "
        "deltas between frames, bitshuffle + LZ4-HC; JPEG mouth; the other arrays lossless "
        "Blosc zstd: 0.70 GB per hour of GRID video, face 40.6 dB PSNR, max error 5, the "
        "loader ~3x the JPEG folders), `jpeg` (lossy face and mouth, one JPEG per chunk: "
        "about the same size and PSNR, read ~2.3x slower than `delta`), or lossless: `lz4` (Blosc "
        "lz4 + shuffle, 3.35 GB/h, the fastest to read: >= 10x the JPEG-folder loader), "
        "`zstd` (~15% smaller than lz4, ~10x slower to decode) or `none` "
        "(README storage table)"))
    compressor_level: int = Field(3, ge=1, le=22, description=(
        "level of the lossless compressor: lz4, delta and jpeg (their Blosc zstd) 1-9, "
        "zstd 1-22"))
    delta_step: int = Field(7, ge=1, le=255, description=(
        "lattice step of `face` samples under `codec: delta` (larger: smaller store, lower "
        "PSNR; 7 gives ~40.6 dB on GRID faces)"))
    delta_slack: int = Field(5, ge=0, le=255, description=(
        "under `codec: delta`, a `face` sample keeps its previous frame's value while "
        "within this many grey levels of it (the max error is max(slack, step // 2, 255 % step))"))
    jpeg_face_quality: int = Field(92, ge=1, le=100, description=(
        "JPEG quality of `face` chunks under `codec: jpeg` (4:4:4 chroma)"))
    jpeg_mouth_quality: int = Field(85, ge=1, le=100, description=(
        "JPEG quality of the grey `mouth` chunks under `codec: delta` and `codec: jpeg`"))
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
    """Lip2Wav's sizes (a key left out: the `train.lip2wav.speaker` preset's, the original's)."""

    face_size_px: int | None = _optional("face crop side the encoder reads (chem 96, others 48)")
    init_filters: int | None = _optional("encoder channels of the first 3D-conv block "
                                         "(doubled per block)")
    conv_blocks: int | None = _optional("encoder 3D-conv blocks (chem 5, others 4)")
    res_blocks: int | None = _optional("residual convs after each block's first conv (2)")
    stem_spatial_stride: int | None = _optional("first conv's spatial stride (2; tiny 8)")
    last_spatial_stride: int | None = _optional(
        "spatial stride of the conv ending the last block (3)")
    encoder_lstm: int | None = _optional(
        "encoder BiLSTM units per direction (chem 384, others 256)")
    speaker_embedding: int | None = _optional(
        "zero dims appended to the encoder output, as the original's (256; tiny 0)")
    hidden: int | None = _optional("non-autoregressive decoder width")
    conv_layers: int | None = _optional("non-autoregressive decoder 1-D conv layers")
    r: int | None = _optional("attention decoder: mel frames per step (2)")
    prenet: list[int] | None = _optional("attention decoder: prenet layer sizes ([256, 256])")
    decoder_layers: int | None = _optional("decoder LSTM layers (2)")
    decoder_lstm: int | None = _optional("decoder LSTM units per layer (1024; dl 256)")
    attention_dim: int | None = _optional("attention projection size (128)")
    location_filters: int | None = _optional("location-sensitive attention filters (32)")
    location_kernel: int | None = _optional("location-sensitive attention kernel (31)")
    postnet_channels: int | None = _optional("postnet channels (512)")
    postnet_layers: int | None = _optional("postnet layers (5; 0 = none)")
    postnet_kernel: int | None = _optional("postnet kernel (5)")
    tf_start_decay: int | None = Field(None, ge=0, json_schema_extra=OPTIONAL, description=(
        "step at which the teacher-forcing ratio starts its cosine decay (the speaker's: "
        "29000, chess 75000; tiny starts at once: a CPU-minute run never reaches 29k steps "
        "and a decoder only ever fed true frames cannot free-run)"))
    tf_decay_steps: int | None = Field(None, ge=1, json_schema_extra=OPTIONAL, description=(
        "steps the ratio takes to decay from 1 to 0 (the speaker's: chem 130000, chess "
        "200000, others 100000)"))
    bn_momentum: float | None = Field(None, gt=0, le=1, json_schema_extra=OPTIONAL, description=(
        "batch-norm running-statistics momentum (the original's 0.01, TF's decay 0.99); "
        "opt-in for short runs, whose encoder in eval mode is far off its train mode"))
    precise_bn_batches: int | None = Field(None, ge=0, json_schema_extra=OPTIONAL, description=(
        "precise batch norm (not the original's; 0 = off): after each epoch the encoder's "
        "running statistics are recomputed from this many training batches, weights fixed; "
        "tiny 100: after 3 CPU-min on GRID s1 held-out free-running mel L1 1.32 -> 0.61"))
    guided_attention: float | None = Field(None, ge=0, json_schema_extra=OPTIONAL, description=(
        "weight of a diagonal guided-attention loss (Tachibana et al. 2017; not in the "
        "original, 0 = none, as `full`): for CPU budgets, where the plain attention stays "
        "uniform for ~1k steps; with it the tiny attention is diagonal in ~900 steps (tiny: "
        "1.0)"))


class AVSyncSizes(Sizes):
    """AVSync's sizes (a key left out: the paper's, ``AVSyncConfig``)."""

    window_frames: int | None = Field(None, ge=1, json_schema_extra=OPTIONAL, description=(
        "mouth window in video frames (the paper: 9 = 0.3 s at 30 fps; 25 fps GRID: 8 = "
        "0.32 s); the mouth net's last conv spans it"))
    mfec_frames: int | None = Field(None, ge=1, json_schema_extra=OPTIONAL, description=(
        "speech window in 20-ms MFEC frames over the same span (the paper: 15; GRID: 16); "
        "a store whose frame rate does not make `window_frames` span this is an error"))
    mouth_hw: list[int] | None = _optional(
        "mouth net input (height, width): the store's crops must be this size (60x100: "
        "`preprocess.mouth_preset: cnn3d`); never resized")
    mouth_centre_crop: bool | None = _optional(
        "take the central `mouth_hw` of a larger stored crop (same mean-face scale: the "
        "central 60x96 of the 96x96 `square` crop is the `cnn3d` crop less 2 columns a "
        "side); off: any other crop size is an error")
    mouth_channels: list[int] | None = _optional(
        "mouth net conv1, conv2, conv31, conv32, conv4 channels (1x3x3 kernels)")
    mouth_fc: int | None = _optional("mouth net fc5 channels (a conv over the pooled plane)")
    speech_channels: list[int] | None = _optional(
        "speech net conv1, conv21, conv22, conv31, conv32 channels (frequency-only kernels)")
    speech_fc: int | None = _optional("speech net fc4 channels")
    embedding: int | None = _optional("embedding size (both nets' last conv)")
    bn_decay: float | None = Field(None, gt=0, lt=1, json_schema_extra=OPTIONAL, description=(
        "batch-norm moving-average decay: `full`/`grid` slim's default 0.999; `tiny` 0.9, "
        "because the eval-mode statistics that pair selection and scoring read settle over "
        "~1/(1 - decay) steps: at 0.999 a run of minutes (~1000 steps) scores with statistics "
        "still a third at their initial values (held-out EER at chance on GRID s1)"))


class GaborSizes(Sizes):
    """The Gabor models' sizes (a key left out: ``GaborConfig``'s, the paper's)."""

    hidden: int | None = _optional("LSTM size (the paper: 512)")
    dense: int | None = _optional("dense layer before the output (the paper: 2048)")
    ae_widths: list[int] | None = _optional(
        "autoencoder encoder widths before the 32-d bottleneck (the paper: 512, 128, 64)")
    lstm_layers: int | None = _optional(
        "LSTM blocks (the paper: 1 in GaborFea2Speech, 2 in GaborPic2Speech)")
    ae_epochs: int | None = Field(None, ge=0, json_schema_extra=OPTIONAL, description=(
        "first epochs that train the autoencoder alone; then it is frozen and the lip "
        "network trains on its bottleneck (the paper: 150 autoencoder epochs before the "
        "lip network's); `epochs` counts both phases, and the lip network always gets the "
        "last epoch (a one-epoch run trains both together); 0 = both together"))


class GaborPicSizes(GaborSizes):
    """GaborPic2Speech's sizes: the feature model's plus the picture front end."""

    picture_hw: list[int] | None = _optional(
        "Gabor pictures are resized to this (height, width) (the paper: 40x80)")
    conv_channels: int | None = _optional("Conv3D channels (the paper: 16)")


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
    """``train.lip2wav`` — Lip2Wav lip-to-speech.

    `speaker` picks the original's per-speaker architecture and teacher-forcing schedule
    (Rudrabha/Lip2Wav `synthesizer/presets/<speaker>.json` over `synthesizer/hparams.py`);
    the `tiny`/`full` preset keys, then keys set here, override it. `full` sets no size,
    so it is the speaker's published model. Parameters of each speaker's model (attention
    decoder), as built by `lipflow models lip2wav --size full` with that speaker, equal to
    the count of the original's TensorFlow variables made by hand from its layer sizes
    (`tests/test_models_lip2wav.py::original_parameters`):

    | speaker | face | 3D-conv channels | BiLSTM | decoder LSTMs | forcing decay | parameters |
    |---|---|---|---|---|---|---|
    | `chem` | 96 px | 5 blocks: 24, 48, 96, 192, 384 | 384 | 2 x 1024 | 29k / 130k | 43,623,104 |
    | `chess` | 48 px | 4 blocks: 32, 64, 128, 256 | 256 | 2 x 1024 | 75k / 200k | 31,588,528 |
    | `dl` | 48 px | 4 blocks: 32, 64, 128, 256 | 256 | 2 x 256 | 29k / 100k | 16,418,992 |
    | `eh` | 48 px | 4 blocks: 32, 64, 128, 256 | 256 | 2 x 1024 | 29k / 100k | 31,588,528 |
    | `hs` | 48 px | 4 blocks: 32, 64, 128, 256 | 256 | 2 x 1024 | 29k / 100k | 31,588,528 |

    `chem` by module: encoder 3D convs 17,248,464, encoder BiLSTM 2,362,368, prenet
    86,528, decoder LSTMs 17,833,984, attention 267,520, frame projection 327,840, postnet
    with its projection 5,496,400. The `tiny` preset has 269,960 parameters. All share
    the prenet 2 x 256, attention 128-d with 32 filters of 31, `r` 2, a 5 x 512 postnet,
    zoneout 0.1, dropout 0.5 and a 256-d zero speaker embedding (an SV2TTS leftover of the
    original, kept so the counts match). `dl` is the one 25-fps speaker (75-frame windows);
    GRID (25 fps, 96-px faces here) uses `chem`'s plan.
    """

    decoder: Literal["attention", "nonautoregressive"] = Field("attention", description=(
        "`attention` (the paper's Tacotron-2 decoder, Rayhane-mamah's layout) or "
        "`nonautoregressive` (lipflow's faster one-pass decoder)"))
    speaker: Literal["chem", "chess", "dl", "eh", "hs"] = Field("chem", description=(
        "the original's per-speaker preset the sizes start from (see the table above)"))
    zoneout: float = Field(0.1, ge=0, lt=1, description="zoneout of every LSTM")
    dropout: float = Field(0.5, ge=0, lt=1, description="prenet and postnet dropout")
    stop_token: bool = Field(False, description=(
        "add the stop-token layer and its BCE loss (the original comments it out: windows "
        "have a fixed length)"))
    window_seconds: float = Field(3.0, gt=0, description=(
        "training window, drawn afresh at a random start of each clip every step (3 s: 90 "
        "frames at 30 fps, 75 at 25); a clip no longer than it is used whole"))
    guided_attention_sigma: float = Field(0.2, gt=0, description=(
        "width of the guided-attention band (Tachibana et al. 2017's g), as a fraction of "
        "the clip"))
    lr_start_decay: int = Field(150000, ge=0, description=(
        "step after which the learning rate decays exponentially"))
    lr_decay_steps: int = Field(50000, ge=1, description="steps per `lr_decay_rate` factor")
    lr_decay_rate: float = Field(0.5, gt=0, le=1, description="learning-rate decay factor")
    lr_final: float = Field(1e-5, gt=0, description="the learning rate never goes below this")
    adam_eps: float = Field(1e-6, gt=0, description="Adam epsilon (betas 0.9, 0.999)")
    reg_weight: float = Field(1e-7, ge=0, description=(
        "L2 weight on conv, dense and batch-norm weights (not LSTMs, biases, projections)"))
    tiny: Lip2WavSizes = Field(default_factory=lambda: Lip2WavSizes(
        epochs=2, batch_size=2, face_size_px=96, init_filters=8, conv_blocks=3, res_blocks=1,
        stem_spatial_stride=8, encoder_lstm=32, speaker_embedding=0, hidden=64,
        conv_layers=2, r=5, prenet=[64, 64], decoder_layers=2, decoder_lstm=64,
        attention_dim=32, location_filters=8, location_kernel=15, postnet_channels=32,
        postnet_layers=2,
        # CPU-budget aids, not the original's (full keeps the published model): forcing
        # decays from step 0; precise batch norm after each epoch; guided attention (on
        # GRID s1 in 10 CPU-min: mel L1 0.536 against the position mean's 0.601; without
        # it 0.608); bn_momentum stays opt-in
        tf_start_decay=0, tf_decay_steps=800, precise_bn_batches=100,
        guided_attention=1.0))
    full: Lip2WavSizes = Field(default_factory=lambda: Lip2WavSizes(
        epochs=300, batch_size=24))


class AVSyncTrain(ModelTrain, AVSyncSizes):
    """``train.avsync`` — the coupled 3D CNN audio-visual sync model (Torfi et al. 2017).

    Source: the original code, astorfi/lip-reading-deeplearning (``code/training_evaluation``:
    ``nets/lipread_mouth.py``, ``nets/lipread_speech.py``, ``auxiliary/losses.py``,
    ``train.py``). ``full`` is the published net: 9x60x100 mouth cubes at 30 fps, 15x40x3 MFEC
    cubes (planes as channels), 774,912 parameters (mouth 610,096, speech 164,816). ``grid`` is
    the same net for 25 fps GRID: 8 frames = 0.32 s = 16 MFEC frames (both windows cover the
    same span; 7 frames = 0.28 s is as near 0.3 s, 8 keeps at least the paper's span), 766,720
    parameters (mouth 593,712, speech 173,008); pick it with `train.avsync.preset: grid`.
    ``tiny`` (sample DAG, CPU seconds): 33,952 parameters. The counts are the original's
    trainable variables counted by hand (conv weights, batch norm offsets, PReLU slopes,
    last-layer biases; tests/test_models_avsync.py) and are what `lipflow models avsync --size
    full|grid|tiny` prints. `full` and `grid` need 60x100 crops (`preprocess.mouth_preset:
    cnn3d`); any other store is an error at the first batch, never a resize.
    """

    preset: Literal["tiny", "full", "grid"] | None = _optional(
        "this model's preset, winning over `train.size`: `full` is the published net "
        "(9 frames at 30 fps), `grid` the same net for 25 fps GRID (8 frames, 16 MFEC frames)")
    lr: float = Field(0.01, gt=0, description="Adam learning rate (the original's 0.01)")
    adam_eps: float = Field(1.0, gt=0, description="Adam epsilon (the original's 1.0)")
    lr_decay: float = Field(0.94, gt=0, le=1, description=(
        "learning-rate factor every `lr_decay_epochs` (the original's staircase 0.94)"))
    lr_decay_epochs: int = Field(5, ge=1, description="epochs between learning-rate decays")
    grad_clip: float = Field(0.0, ge=0, description=(
        "gradient norm clip (0 = none, as the original)"))
    margin: float = Field(100.0, gt=0, description=(
        "contrastive margin on impostor distances (the original's 100)"))
    selection_margin: float = Field(10.0, ge=0, description=(
        "online pair selection: impostors kept when closer than max genuine + this (the "
        "original's `hard_margin` 10), distances measured in eval mode"))
    min_shift_frames: int = Field(4, ge=1, description=(
        "time-shifted impostors are at least this far off"))
    folds: int = Field(10, ge=2, description="folds of the EER/AUC/AP mean and std")
    # tiny: bn_decay 0.9 (see the key) and batches of 16, not 4: with 4 clips (12 pairs) a
    # step's batch statistics are noisy and 3 CPU minutes on GRID s1 stayed near chance
    # (held-out EER 0.45 at 0.9; 0.38 with 16)
    tiny: AVSyncSizes = Field(default_factory=lambda: AVSyncSizes(
        epochs=2, batch_size=16, window_frames=8, mfec_frames=16, mouth_hw=[60, 96],
        mouth_centre_crop=True, mouth_channels=[4, 8, 16, 16, 32], mouth_fc=32,
        speech_channels=[4, 8, 8, 16, 16], speech_fc=32, embedding=16, bn_decay=0.9))
    full: AVSyncSizes = Field(default_factory=lambda: AVSyncSizes(
        epochs=100, batch_size=32, window_frames=9, mfec_frames=15, mouth_hw=[60, 100],
        mouth_centre_crop=False, mouth_channels=[16, 32, 64, 64, 128], mouth_fc=256,
        speech_channels=[16, 32, 32, 64, 64], speech_fc=128, embedding=64,
        bn_decay=0.999))
    grid: AVSyncSizes = Field(default_factory=lambda: AVSyncSizes(
        epochs=100, batch_size=32, window_frames=8, mfec_frames=16, mouth_hw=[60, 100],
        mouth_centre_crop=False, mouth_channels=[16, 32, 64, 64, 128], mouth_fc=256,
        speech_channels=[16, 32, 32, 64, 64], speech_fc=128, embedding=64,
        bn_decay=0.999))


class GaborTrain(ModelTrain, GaborSizes):
    """``train.gabor`` — GaborFea2Speech: seven Gabor lip features to an auditory spectrogram.

    As the original repository (zhongpingDong12/lip2Speech, ``codes/train_GaborFea2Speech.py``,
    ``codes/train_autoencoder.py``): 26-step slices of 21 features (7 + 2 differences) ->
    LSTM 512 -> dense 2048 -> 832 sigmoid outputs (the 32-d bottleneck x 26 steps) of an
    autoencoder (128-512-128-64-32-64-128-128) on the NSL auditory spectrogram; loss
    -corr2 + MSE. The paper trained 30 epochs with Adam 1e-4 (lr / 5 after 4 epochs without
    a better val loss, not reproduced), batches of one data part (about 13 clips x 15
    slices); the autoencoder 150 epochs before, alone (here: in the same stage).
    Parameters, `full` (``lipflow models gabor --size full``): lip network 30,070,592,
    autoencoder 170,848. Source of the published counts: Keras' ``model.summary()`` of the
    original's layers, counted by hand: LSTM 4 x 512 x (21 + 512 + 1) = 1,093,632, its
    batch norm 2,048 (1,024 trainable), dense 13,312 x 2,048 + 2,048 = 27,265,024, batch
    norm 8,192 (4,096), output 2,048 x 832 + 832 = 1,704,768: 30,073,664, of which
    30,068,544 trainable; torch's LSTM has a second bias (+2,048): 30,070,592, equal. The
    autoencoder: 172,704 in Keras, 170,848 trainable, torch's 170,848. `tiny`: 114,624 +
    19,232.
    """

    ae_weight: float = Field(1.0, ge=0, description=(
        "weight of the autoencoder's loss in the validation loss, and in training when "
        "`ae_epochs` is 0"))
    jpeg: bool = Field(True, description=(
        "Gabor pictures take the original's JPEG round trip (cv2.imwrite, quality 95)"))
    tiny: GaborSizes = Field(default_factory=lambda: GaborSizes(
        epochs=2, batch_size=2, hidden=32, dense=64, ae_widths=[64, 32, 32], ae_epochs=1))
    full: GaborSizes = Field(default_factory=lambda: GaborSizes(
        epochs=180, batch_size=13, hidden=512, dense=2048, ae_widths=[512, 128, 64],
        lstm_layers=1, ae_epochs=150))


class GaborPicTrain(ModelTrain, GaborPicSizes):
    """``train.gaborpic`` — GaborPic2Speech: Gabor pictures to an auditory spectrogram.

    As the original (``codes/train_GaborPic2Speech.py``): 26-step slices of 40x80 Gabor
    pictures and their two differences (3 channels) -> Conv3D 16 (3x3x3) -> max-pool
    (2, 2, 1) -> two LSTM 512 -> dense 2048 -> 832 sigmoid outputs; the target, loss and
    autoencoder are GaborFea2Speech's. The paper trained 50 epochs, Adam 1e-4. Parameters,
    `full`: lip network 58,345,600, autoencoder 170,848. Published count, by hand from the
    Keras layers: conv 3 x 16 x 27 + 16 = 1,312, its batch norm 104 (Keras' default axis -1
    normalised the 26 time steps of the channels-first output: 52 trainable), LSTM 4 x 512
    x (12,800 + 512 + 1) = 27,265,024, batch norm 2,048, LSTM 4 x 512 x (512 + 512 + 1) =
    2,099,200, batch norm 2,048, dense 27,265,024, batch norm 8,192, output 1,704,768:
    58,347,720, 58,341,524 trainable; torch: two second LSTM biases (+4,096) and a batch
    norm over the 16 channels (32, not 52): 58,345,600, equal. `tiny` (20x40 pictures, 4
    conv channels): 223,184 + 19,232.
    """

    ae_weight: float = Field(1.0, ge=0, description="as `train.gabor.ae_weight`")
    jpeg: bool = Field(True, description="as `train.gabor.jpeg`")
    tiny: GaborPicSizes = Field(default_factory=lambda: GaborPicSizes(
        epochs=2, batch_size=2, hidden=32, dense=64, ae_widths=[64, 32, 32],
        picture_hw=[20, 40], conv_channels=4, ae_epochs=1))
    full: GaborPicSizes = Field(default_factory=lambda: GaborPicSizes(
        epochs=200, batch_size=13, hidden=512, dense=2048, ae_widths=[512, 128, 64],
        lstm_layers=2, picture_hw=[40, 80], conv_channels=16, ae_epochs=150))


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

    models: list[ModelName] = Field(["lip2wav", "avsync", "gabor", "gaborpic", "vcagan"],
                                    description=(
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
    gaborpic: GaborPicTrain = Field(default_factory=GaborPicTrain)
    vcagan: VcaGanTrain = Field(default_factory=VcaGanTrain)


# --------------------------------------------------------------------------- runtime


class Runtime(Section):
    """``runtime`` — where tasks run."""

    runner: Literal["thread", "process", "dask", "ray"] = Field("process", description=(
        "task runner; the CLI's `--runner` wins"))
    address: str | None = Field(None, description=(
        "an existing Dask scheduler (`tcp://host:8786`) or Ray head; null = start one"))
    max_workers: int | None = Field(None, ge=1, description="local pool size (null = one per core)")
    task_seconds_of_video: float = Field(192.0, gt=0, description=(
        "`prepare` packs videos into one task until they hold this many seconds (192 = 64 "
        "GRID videos: one store shard of 3-s clips, so results waiting for an earlier "
        "batch stay near a shard per worker; a longer video is a task of its own); the "
        "CLI's `--task-seconds` wins"))


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
    user_corpus: UserCorpus = Field(default_factory=UserCorpus)
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
