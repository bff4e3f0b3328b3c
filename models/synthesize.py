"""From a (silent) video to speech with a trained speech model: ``lipflow synthesize``.

The video is read as ``prepare`` reads it: resampled to the model's frame rate by the same
time rule (:func:`lipflow.tasks.media.video.iter_frames`), cut into windows of the model's
clip length and tracked and cropped by the same code
(:mod:`lipflow.tasks.prepare.window_crops`), so the model sees what it was trained on.

**Any length.** Windows of ``T`` frames (the model's window, else the clip length) start
every ``T - overlap`` frames (15 by default, Lip2Wav's ``overlap``); each window's
predicted mel is placed at its start time and the overlap with the window before is
cross-faded linearly (the original cuts instead: it drops the later window's first
``mel_overlap`` frames) (:class:`MelStitcher`), giving one mel of the
video's duration. That mel becomes a waveform by Griffin-Lim
(:func:`lipflow.tasks.features.mel.inv_mel_spectrogram`) in pieces of at most
:data:`GL_CHUNK_FRAMES` mel frames (20 s) overlapping by :data:`GL_OVERLAP_FRAMES` (1 s),
whose waveforms are cross-faded (:func:`waveform_from_mel`): Griffin-Lim's working memory
(STFTs of the whole signal, ~1 GB for 10 min) stays that of 20 s whatever the length, and a
video up to 20 s is one piece, exactly as before. Only the frames of one window and the
mel frames are held, so a long video costs mel memory (25 KB a second) and the output
waveform (64 KB a second), not frames.

**Faces.** A window whose face track is rejected (no face, a second face, too few
detections) contributes the mel of silence; the stretch that no kept window covers is
zeroed in the output and reported as a warning with its times in the video. A video
without any kept window is a :class:`NoFaceError`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lipflow.models.registry import spec
from lipflow.tasks.common.atomic import atomic_path
from lipflow.tasks.common.errors import ConfigError, LipflowError, MediaError
from lipflow.tasks.features.mel import inv_mel_spectrogram, mel_settings, mel_spectrogram
from lipflow.tasks.media.probe import probe
from lipflow.tasks.media.video import iter_frames
from lipflow.tasks.prepare.window_crops import WindowCropper, frame_windows
from lipflow.tasks.prepare.windows import frames_per_clip, samples_per_clip
from lipflow.tasks.settings.schema import Preprocess
from lipflow.tasks.settings.validation import typed_section

#: Frames shared by consecutive windows (0.6 s at 25 fps): long enough for a smooth
#: cross-fade, short enough that a 3 s window adds 25% work.
DEFAULT_OVERLAP_FRAMES = 15

#: Containers ``--mux`` writes (the video stream is copied, the speech is AAC).
MUX_SUFFIXES = (".mp4", ".mov", ".mkv")


class NoFaceError(LipflowError):
    """No window of the video has a face the model could read."""


def speech_model(model_name: str) -> None:
    """ConfigError unless ``model_name`` is a registry model that predicts speech."""
    model = spec(model_name)
    if model.kind != "speech":
        speech = ", ".join(name for name, s in _speech_models().items() if s)
        raise ConfigError(f"{model_name} is a {model.kind} model, it predicts no speech; "
                          f"synthesize needs one of: {speech}")


def _speech_models() -> dict[str, bool]:
    from lipflow.models.registry import MODELS

    return {name: s.kind == "speech" for name, s in MODELS.items()}


# --------------------------------------------------------------------------- stitching


class MelStitcher:
    """Place window mels at their offsets; cross-fade each overlap linearly.

    Windows come in time order. Inside an overlap of ``n`` mel frames, frame ``j`` is
    ``(1 - a_j) * earlier + a_j * later`` with ``a_j = (j + 1) / (n + 1)``: a convex blend
    that starts at the earlier window and ends at the later one. Outside overlaps the
    output is the window's own mel. Frames before the next window's offset are final and
    are kept; only the current window's frames stay open.
    """

    def __init__(self) -> None:
        self._done: list[np.ndarray] = []
        self._done_frames = 0
        self._open: np.ndarray | None = None
        self._open_at = 0

    def add(self, offset: int, mel: np.ndarray) -> None:
        """Add the mel (frames, bands) of the window whose first frame is at ``offset``."""
        mel = np.asarray(mel, dtype=np.float32)
        if self._open is None:
            if offset != self._done_frames:
                raise ValueError(f"the first window must start at mel frame 0, not {offset}")
            self._open, self._open_at = mel.copy(), offset
            return
        open_end = self._open_at + len(self._open)
        if not self._open_at <= offset <= open_end:
            raise ValueError(f"window at mel frame {offset} leaves a gap or goes back "
                             f"(the one before covers {self._open_at}..{open_end})")
        keep = offset - self._open_at
        self._done.append(self._open[:keep])
        self._done_frames += keep
        over = self._open[keep:]
        n = min(len(over), len(mel))
        a = (np.arange(1, n + 1, dtype=np.float32) / (n + 1))[:, None]
        blended = (1 - a) * over[:n] + a * mel[:n]
        self._open = np.concatenate([blended, mel[n:]]).astype(np.float32, copy=False)
        self._open_at = offset

    def finish(self, frames: int) -> np.ndarray:
        """The stitched mel cut (or padded with its last frame) to exactly ``frames``."""
        parts = self._done + ([self._open] if self._open is not None else [])
        if not parts:
            raise ValueError("no window was added")
        mel = np.concatenate(parts)
        if len(mel) < frames:
            mel = np.concatenate([mel, np.repeat(mel[-1:], frames - len(mel), axis=0)])
        return mel[:frames]


def join_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, merged ``[start, end)`` ranges."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def uncovered(total: int, covered: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``[0, total)`` outside the ``covered`` ranges."""
    out, at = [], 0
    for start, end in join_ranges(covered):
        if start > at:
            out.append((at, min(start, total)))
        at = max(at, end)
    if at < total:
        out.append((at, total))
    return [r for r in out if r[1] > r[0]]


# --------------------------------------------------------------------------- windows


@dataclass(frozen=True)
class Window:
    """One window of the video: where it is, whether it had a face, the mel it gave."""

    start_frame: int
    valid_frames: int
    mel_offset: int
    mel: np.ndarray
    face: bool
    reason: str | None = None


@dataclass
class Synthesis:
    """What :func:`synthesize_video` made: the waveform and what it found on the way."""

    wav: np.ndarray  # float32 in [-1, 1] at sample_rate_hz
    mel: np.ndarray
    sample_rate_hz: int
    fps: float
    num_frames: int
    duration_s: float
    windows: int
    silent: list[tuple[float, float]] = field(default_factory=list)  # seconds, no face

    @property
    def warnings(self) -> list[str]:
        """One line per stretch without a face (absolute times in the video)."""
        return [f"no face from {a:.2f} s to {b:.2f} s of the video: silence there"
                for a, b in self.silent]


@dataclass(frozen=True)
class Synthesizer:
    """A loaded speech model and the settings that turn a video into its inputs."""

    model_name: str
    model: Any
    cfg: Mapping[str, Any]
    preprocess: Mapping[str, Any]
    mel_params: Mapping[str, Any]
    overlap_frames: int = DEFAULT_OVERLAP_FRAMES

    @property
    def fps(self) -> float:
        return float(self.cfg["fps"])

    @property
    def clip_frames(self) -> int:
        """Frames of one window: the model's own window (``window_seconds``, Lip2Wav's 3 s:
        90 frames at 30 fps, 75 at 25, as the original's inference) or the stores' clip."""
        window_s = self.cfg.get("window_seconds")
        clip_s = (float(window_s) if window_s else
                  float(typed_section(Preprocess, self.preprocess, "preprocess").clip_seconds))
        return frames_per_clip(self.fps, clip_s)

    @property
    def sample_rate_hz(self) -> int:
        return mel_settings(self.mel_params).sample_rate_hz

    @property
    def hop_samples(self) -> int:
        """Samples per frame of what the model predicts: the store's mel hop, or the
        model's own (``SPECTROGRAM_FRAMES_PER_SECOND`` of its nets module: VCA-GAN 100)."""
        rate = getattr(spec(self.model_name).module, "SPECTROGRAM_FRAMES_PER_SECOND", None)
        if rate is None:
            return mel_settings(self.mel_params).hop_samples
        return round(self.sample_rate_hz / float(rate))

    @property
    def mel_per_frame(self) -> float:
        """Spectrogram frames per video frame (3.2 at 25 fps with a 200-sample hop at 16 kHz)."""
        return self.sample_rate_hz / self.hop_samples / self.fps

    def window_mel_frames(self) -> int:
        """Mel frames a window predicts: those of its clip's audio, as in the stores."""
        clip_s = self.clip_frames / self.fps
        return 1 + samples_per_clip(self.sample_rate_hz, clip_s) // self.hop_samples

    def silence_mel(self) -> np.ndarray:
        """The spectrogram of a clip of zeros: what a faceless window contributes (the
        store's mel, or the model's own ground truth, :attr:`ModelSpec.target`)."""
        samples = samples_per_clip(self.sample_rate_hz, self.clip_frames / self.fps)
        target = spec(self.model_name).target
        if target is None:
            return mel_spectrogram(np.zeros(samples, dtype=np.int16), self.mel_params)
        import torch

        silent = {"wav": torch.zeros(1, samples, dtype=torch.int16),
                  "video": torch.zeros(1, self.clip_frames, 1, 1, dtype=torch.uint8)}
        return target(silent)[0].float().cpu().numpy()

    def windows(self, video: Path) -> Iterator[Window]:
        """The video's windows in time order, each with its predicted (or silent) mel."""
        import torch

        t = self.clip_frames
        if not 0 <= self.overlap_frames < t:
            raise ConfigError(f"overlap must be 0..{t - 1} frames, got {self.overlap_frames}")
        model_spec = spec(self.model_name)
        cropper = WindowCropper(self.preprocess, streams=(model_spec.modality,))
        m = self.window_mel_frames()
        silence = self.silence_mel()[:m]
        device = next(self.model.parameters()).device
        frames = iter_frames(video, self.fps, pixels="yuv")
        for start, images in frame_windows(frames, t, t - self.overlap_frames):
            crops = cropper(images, t, first_frame=start, fps=self.fps)
            valid = len(images)
            del images
            offset = round(start * self.mel_per_frame)
            if not crops.track.kept:
                yield Window(start, valid, offset, silence, False, crops.track.reject_reason)
                continue
            video_in = crops.face if model_spec.modality == "face" else crops.mouth
            batch = {"video": torch.from_numpy(np.ascontiguousarray(video_in))[None].to(device),
                     "mel": torch.zeros(1, m, silence.shape[1], device=device),
                     "valid_frames": torch.tensor([valid], device=device)}
            with torch.no_grad():
                mel = model_spec.predict(self.model, batch)
            yield Window(start, valid, offset, mel[0].float().cpu().numpy(), True)


def video_duration_s(video: Path, frames: int, fps: float) -> float:
    """The video's duration: the header's when it agrees with the decoded frame count.

    ``frames`` at ``fps`` were read, so the real span lies in ``[frames, frames + 1) / fps``
    (:mod:`lipflow.tasks.media.video`); a header outside that is not believed.
    """
    low, high = frames / fps, (frames + 1) / fps
    try:
        header = probe(video).duration_s
    except MediaError:
        return low
    return min(max(header, low), high - 1e-6) if header > 0 else low


def synthesize_video(synth: Synthesizer, video: Path,
                     on_window: Callable[[Window], None] | None = None) -> Synthesis:
    """Speech for ``video``: windows predicted, mels stitched, one Griffin-Lim.

    ``on_window`` sees every window as it is made (tests and progress). Raises
    :class:`NoFaceError` when no window has a face.
    """
    from lipflow.models.runtime import seed_everything

    seed_everything(int(synth.cfg.get("seed", 0)))  # the attention prenet keeps dropout
    stitcher = MelStitcher()
    face_ranges: list[tuple[int, int]] = []
    count, end_frame = 0, 0
    for window in synth.windows(Path(video)):
        count += 1
        end_frame = window.start_frame + window.valid_frames
        if window.face:
            face_ranges.append((window.start_frame, end_frame))
        stitcher.add(window.mel_offset, window.mel)
        if on_window is not None:
            on_window(window)
    if count == 0:
        raise MediaError(f"{video}: no video frames at {synth.fps:g} fps")
    if not face_ranges:
        raise NoFaceError(f"{video}: no face found in any of its {count} windows "
                          f"({end_frame / synth.fps:.2f} s); nothing to read lips from")
    rate = synth.sample_rate_hz
    duration = video_duration_s(Path(video), end_frame, synth.fps)
    samples = round(duration * rate)
    mel = stitcher.finish(1 + samples // synth.hop_samples)
    wav = waveform_from_mel(mel, synth.mel_params, to_waveform=spec(synth.model_name).to_waveform,
                            hop_samples=synth.hop_samples)
    wav = np.clip(np.pad(wav[:samples], (0, max(0, samples - len(wav)))), -1.0, 1.0)
    silent = uncovered(end_frame, face_ranges)
    for a, b in silent:
        wav[round(a / synth.fps * rate):round(b / synth.fps * rate)] = 0
    return Synthesis(wav=wav.astype(np.float32), mel=mel, sample_rate_hz=rate,
                     fps=synth.fps, num_frames=end_frame, duration_s=duration, windows=count,
                     silent=[(a / synth.fps, b / synth.fps) for a, b in silent])


#: Griffin-Lim runs on pieces of the stitched mel this long (20 s at 80 mel frames a second)
GL_CHUNK_FRAMES = 1600
#: and this much overlap (1 s), cross-faded linearly in the waveform.
GL_OVERLAP_FRAMES = 80


def waveform_from_mel(mel: np.ndarray, mel_params: Any, chunk_frames: int = GL_CHUNK_FRAMES,
                      overlap_frames: int = GL_OVERLAP_FRAMES,
                      to_waveform: Callable[[np.ndarray, Any], np.ndarray] = inv_mel_spectrogram,
                      hop_samples: int | None = None) -> np.ndarray:
    """Griffin-Lim of ``mel`` in overlapping pieces, cross-faded: bounded working memory.

    ``to_waveform`` is the model's vocoder of one piece (default: Griffin-Lim of the
    store's mel) and ``hop_samples`` its hop (default: the mel's); a vocoder that returns
    a longer piece (VCA-GAN pads to ``frames * hop``) is cut to the piece's span.

    The result has the length one :func:`inv_mel_spectrogram` call would give,
    ``(frames - 1) * hop`` samples; a mel of at most ``chunk_frames`` frames is exactly that
    call. Each piece starts with a zero filter state (inverse pre-emphasis) and its own
    phase estimate; both settle inside the overlap, where the piece fades in.
    """
    frames = len(mel)
    if frames <= chunk_frames:
        return to_waveform(mel, mel_params)
    if not 0 < overlap_frames < chunk_frames // 2:
        raise ValueError(f"overlap {overlap_frames} must be in (0, {chunk_frames // 2})")
    hop = hop_samples or mel_settings(mel_params).hop_samples
    out = np.zeros((frames - 1) * hop, dtype=np.float64)
    weight = np.zeros_like(out)
    fade = (overlap_frames - 1) * hop  # samples two neighbouring pieces share
    step = chunk_frames - overlap_frames
    starts = list(range(0, frames - overlap_frames, step))
    for i, start in enumerate(starts):
        stop = min(start + chunk_frames, frames)
        piece = to_waveform(mel[start:stop], mel_params).astype(np.float64)
        piece = piece[:(stop - start - 1) * hop]
        w = np.ones(len(piece))
        if i > 0:
            w[:fade] = np.linspace(0.0, 1.0, fade, endpoint=False)
        if i < len(starts) - 1:
            w[len(piece) - fade:] = np.linspace(1.0, 0.0, fade, endpoint=False)
        at = start * hop
        out[at:at + len(piece)] += piece * w
        weight[at:at + len(piece)] += w
    return (out / np.maximum(weight, 1e-12)).astype(np.float32)


# --------------------------------------------------------------------------- files


def load_synthesizer(model_name: str, checkpoint: Path, params: Mapping[str, Any],
                     overlap_frames: int = DEFAULT_OVERLAP_FRAMES,
                     device: str | None = None) -> Synthesizer:
    """The model of ``checkpoint`` (``lipflow train``'s ``best.pt``) ready to synthesize."""
    from lipflow.models.evaluation import load_model
    from lipflow.models.runtime import select_device

    speech_model(model_name)
    model, cfg = load_model(model_name, Path(checkpoint), select_device(device))
    return Synthesizer(model_name, model, cfg, params["preprocess"], params["features"]["mel"],
                       overlap_frames)


def write_wav(path: Path, wav: np.ndarray, sample_rate_hz: int) -> Path:
    """16-bit PCM mono wav, written atomically."""
    from scipy.io import wavfile

    pcm = np.clip(np.rint(np.asarray(wav, dtype=np.float64) * 32767), -32768, 32767)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        wavfile.write(tmp, sample_rate_hz, pcm.astype(np.int16))
    return path


def mux(video: Path, wav: Path, out: Path, keep_audio: bool = False) -> Path:
    """``video``'s video stream copied, ``wav`` as its (AAC) audio; the original audio as a
    second track when ``keep_audio``. The video is not re-encoded."""
    from lipflow.tasks.common.executables import ffmpeg_exe

    out = Path(out)
    if out.suffix.lower() not in MUX_SUFFIXES:
        raise ConfigError(f"--mux {out}: the container must be one of {' '.join(MUX_SUFFIXES)}")
    cmd = [ffmpeg_exe(), "-v", "error", "-nostdin", "-y", "-i", str(video), "-i", str(wav),
           "-map", "0:v:0", "-map", "1:a:0"]
    if keep_audio:
        cmd += ["-map", "0:a:0"]
    cmd += ["-c:v", "copy", "-c:a", "aac", "-b:a", "128k", "-metadata:s:a:0", "title=synthesized"]
    if keep_audio:
        cmd += ["-metadata:s:a:1", "title=original"]
    with atomic_path(out) as tmp:
        result = subprocess.run([*cmd, "-f", _muxer(out), str(tmp)], capture_output=True,
                                text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["ffmpeg failed"])[-1]
            raise MediaError(f"--mux {out}: ffmpeg could not copy {video}'s video stream "
                             f"({last})")
    return out


def _muxer(out: Path) -> str:
    return {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}[out.suffix.lower()]


def check_inputs(video: Path, out: Path, mux_out: Path | None, keep_audio: bool) -> None:
    """One-line errors for bad arguments, before a model is loaded."""
    if not Path(video).is_file():
        raise MediaError(f"{video}: no such file")
    if Path(out).suffix.lower() != ".wav":
        raise ConfigError(f"--out {out}: must be a .wav file")
    if keep_audio and mux_out is None:
        raise ConfigError("--keep-audio needs --mux (it adds the original audio to that file)")
    if mux_out is not None and Path(mux_out).suffix.lower() not in MUX_SUFFIXES:
        raise ConfigError(f"--mux {mux_out}: the container must be one of "
                          f"{' '.join(MUX_SUFFIXES)}")
    info = probe(video)
    if not info.has_video:
        raise MediaError(f"{video}: has no video stream")
    if keep_audio and not info.has_audio:
        raise ConfigError(f"--keep-audio: {video} has no audio track to keep")


def synthesize_file(model_name: str, video: Path, out: Path, params: Mapping[str, Any],
                    checkpoint: Path | None = None, mux_out: Path | None = None,
                    keep_audio: bool = False) -> Synthesis:
    """``lipflow synthesize``: the wav at ``out`` (and the muxed video at ``mux_out``)."""
    from lipflow.models.outputs import checkpoint_dir

    check_inputs(Path(video), Path(out), mux_out, keep_audio)
    ckpt = Path(checkpoint) if checkpoint else checkpoint_dir(model_name) / "best.pt"
    synth = load_synthesizer(model_name, ckpt, params)
    result = synthesize_video(synth, Path(video))  # the caller reports result.warnings
    write_wav(Path(out), result.wav, result.sample_rate_hz)
    if mux_out is not None:
        mux(Path(video), Path(out), Path(mux_out), keep_audio)
    return result

