"""``lipflow synthesize``: a tiny lip2wav trained on the sample turns silent videos of any
rate and length into a 16 kHz wav of their duration (and a muxed video); long videos are
stitched by cross-fading window mels; faceless stretches are silent and reported; and
``preprocess.require_audio: false`` prepares a silent video into a store."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from scipy.io import wavfile
from typer.testing import CliRunner

from lipflow.flows.cli import app
from lipflow.models.synthesize import (
    MelStitcher,
    load_synthesizer,
    synthesize_video,
    uncovered,
)
from lipflow.tasks.media.probe import probe
from lipflow.tasks.settings.project import load_params
from tests.conftest import PROJECT_ROOT
from tests.support.seed_models import one_thread  # noqa: F401
from tests.support.synth_media import (
    ROOT,
    SAMPLE,
    looped,
    ntsc_mp4,
    strip_audio,
    train_tiny_lip2wav,
    with_black_gap,
)

SR, HOP = 16000, 200
runner = CliRunner()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synthesize")


@pytest.fixture(scope="module")
def checkpoint(work: Path) -> Path:
    return train_tiny_lip2wav(work / "model")


@pytest.fixture(scope="module")
def synth(checkpoint: Path):
    return load_synthesizer("lip2wav", checkpoint, load_params(ROOT / "params.yaml"))


def decoded_duration_s(path: Path) -> float:
    """The video stream's span from its decoded frames: count / average rate."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return frames / float(stream.average_rate)


def stream_durations(path: Path) -> dict[str, list[float]]:
    with av.open(str(path)) as container:
        out: dict[str, list[float]] = {}
        for s in container.streams:
            out.setdefault(s.type, []).append(float(s.duration * s.time_base))
        return out


def run_cli(*args: str):
    result = runner.invoke(app, ["synthesize", *args])
    return result.exit_code, result.output


def read_wav(path: Path) -> np.ndarray:
    rate, pcm = wavfile.read(path)
    assert rate == SR and pcm.dtype == np.int16 and pcm.ndim == 1
    return pcm


@pytest.mark.parametrize("kind", ["silent_grid", "ntsc_mp4"])
def test_silent_video_to_wav_and_mux(kind: str, work: Path, checkpoint: Path) -> None:
    if kind == "silent_grid":
        video = strip_audio(SAMPLE, work / "silent.mpg")
    else:
        video = ntsc_mp4(SAMPLE, work / "ntsc.mp4")
        assert probe(video).avg_fps == pytest.approx(29.97, abs=0.01)
    assert not probe(video).has_audio
    out, muxed = work / f"{kind}.wav", work / f"{kind}.mp4"
    code, output = run_cli(str(video), "--model", "lip2wav", "--checkpoint", str(checkpoint),
                           "--out", str(out), "--mux", str(muxed))
    assert code == 0, output
    pcm = read_wav(out)
    assert abs(len(pcm) / SR - decoded_duration_s(video)) <= HOP / SR
    assert np.abs(pcm).max() > 0  # speech-like output, not silence
    info = probe(muxed)
    assert info.has_video and info.has_audio and info.audio_rate_hz == SR
    durations = stream_durations(muxed)
    assert len(durations["video"]) == 1 and len(durations["audio"]) == 1
    # AAC frames are 1024 samples: the track may end up to one of them after the video
    assert abs(durations["audio"][0] - durations["video"][0]) <= 1 / 25 + 1024 / SR


def test_keep_audio_adds_the_original_track(work: Path, checkpoint: Path) -> None:
    out, muxed = work / "kept.wav", work / "kept.mp4"
    code, output = run_cli(str(SAMPLE), "--model", "lip2wav", "--checkpoint", str(checkpoint),
                           "--out", str(out), "--mux", str(muxed), "--keep-audio")
    assert code == 0, output
    assert [len(v) for k, v in sorted(stream_durations(muxed).items())] == [2, 1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "avsync"], "avsync is a sync model"),
        (["--model", "wavenet"], "unknown model"),
        (["--model", "lip2wav", "--keep-audio"], "--keep-audio needs --mux"),
        (["--model", "lip2wav", "--checkpoint", "/no/such.pt"], "does not exist"),
    ],
)
def test_bad_arguments_are_one_line_errors(args: list[str], message: str, work: Path) -> None:
    code, output = run_cli(str(SAMPLE), *args, "--out", str(work / "x.wav"))
    assert code == 2 and message in output and "Traceback" not in output


def test_long_video_is_stitched_by_cross_fades(work: Path, synth) -> None:
    video = looped(SAMPLE, work / "looped.mp4", loops=10)
    windows = []
    result = synthesize_video(synth, video, on_window=windows.append)
    assert abs(len(result.wav) / SR - decoded_duration_s(video)) <= HOP / SR
    assert len(windows) >= 12 and all(w.face for w in windows)
    assert not result.warnings
    mel = result.mel
    checked_joins = 0
    for i in range(len(mel)):
        cover = [w for w in windows if w.mel_offset <= i < w.mel_offset + len(w.mel)]
        assert 1 <= len(cover) <= 2, i
        own = [w.mel[i - w.mel_offset] for w in cover]
        if len(cover) == 1:
            np.testing.assert_array_equal(mel[i], own[0])  # away from joins: the window's
        else:
            lo, hi = np.minimum(*own), np.maximum(*own)
            assert np.all(mel[i] >= lo - 1e-5) and np.all(mel[i] <= hi + 1e-5)  # convex
            later = cover[1]
            first_shared = later.mel_offset
            n = cover[0].mel_offset + len(cover[0].mel) - first_shared
            a = (i - first_shared + 1) / (n + 1)
            np.testing.assert_allclose(mel[i], (1 - a) * own[0] + a * own[1], atol=1e-5)
            checked_joins += 1
    assert checked_joins >= 11 * 40  # 48 shared mel frames at every join


def test_attention_lip2wav_long_video_windows_are_stitched(work: Path) -> None:
    """The published model (attention decoder) through the same long-video path: 3-s
    windows (its ``window_seconds``) every 60 frames, their mels cross-faded."""
    checkpoint = train_tiny_lip2wav(work / "attention", epochs=1, decoder="attention")
    synth = load_synthesizer("lip2wav", checkpoint, load_params(ROOT / "params.yaml"))
    assert synth.cfg["decoder"] == "attention" and synth.clip_frames == 75
    video = looped(SAMPLE, work / "looped3.mp4", loops=3)
    windows = []
    result = synthesize_video(synth, video, on_window=windows.append)
    assert abs(len(result.wav) / SR - decoded_duration_s(video)) <= HOP / SR
    assert [w.start_frame for w in windows] == list(range(0, 60 * len(windows), 60))
    assert len(windows) >= 3 and all(w.face for w in windows)
    assert all(w.mel.shape == (241, 80) for w in windows)
    mel, joins = result.mel, 0
    for i in range(min(len(mel), windows[-1].mel_offset)):
        cover = [w for w in windows if w.mel_offset <= i < w.mel_offset + len(w.mel)]
        if len(cover) == 1:
            np.testing.assert_array_equal(mel[i], cover[0].mel[i - cover[0].mel_offset])
        else:
            early, late = cover
            n = early.mel_offset + len(early.mel) - late.mel_offset
            a = (i - late.mel_offset + 1) / (n + 1)
            np.testing.assert_allclose(
                mel[i], (1 - a) * early.mel[i - early.mel_offset]
                + a * late.mel[i - late.mel_offset], atol=1e-5)
            joins += 1
    assert joins >= 2 * 48  # 15 frames = 48 mel frames shared at each join


def test_stitcher_blend_weights_run_from_the_earlier_window_to_the_later() -> None:
    stitcher = MelStitcher()
    stitcher.add(0, np.zeros((10, 2)))
    stitcher.add(6, np.ones((10, 2)))
    mel = stitcher.finish(16)
    np.testing.assert_array_equal(mel[:6, 0], 0)
    np.testing.assert_allclose(mel[6:10, 0], [0.2, 0.4, 0.6, 0.8])
    np.testing.assert_array_equal(mel[10:, 0], 1)
    assert uncovered(10, [(0, 3), (2, 5), (8, 9)]) == [(5, 8), (9, 10)]


def test_faceless_stretch_is_silent_and_reported(work: Path, checkpoint: Path) -> None:
    video = with_black_gap(SAMPLE, work / "gap.mp4", black_s=3.0)  # face 0-3 s, 6-9 s
    out = work / "gap.wav"
    code, output = run_cli(str(video), "--model", "lip2wav", "--checkpoint", str(checkpoint),
                           "--out", str(out))
    assert code == 0, output
    warnings = [line for line in output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, output
    # windows of 3 s every 2.4 s: those overlapping the black part fail the detection rate,
    # so the silent stretch starts where the face ends and ends where a window sees one
    assert "from 3.00 s to 7.20 s" in warnings[0]
    pcm = read_wav(out)
    assert abs(len(pcm) / SR - decoded_duration_s(video)) <= HOP / SR
    assert np.all(pcm[3 * SR : int(7.2 * SR)] == 0)
    assert np.abs(pcm[: 3 * SR]).max() > 0 and np.abs(pcm[int(7.3 * SR):]).max() > 0


def test_no_face_at_all_is_a_one_line_error(work: Path, checkpoint: Path) -> None:
    from tests.support.synth_media import ffmpeg

    black = work / "black.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=360x288:r=25:d=4", "-c:v", "mpeg4", str(black))
    code, output = run_cli(str(black), "--model", "lip2wav", "--checkpoint", str(checkpoint),
                           "--out", str(work / "black.wav"))
    assert code == 2 and "no face found" in output and "Traceback" not in output
    assert not (work / "black.wav").exists()


def test_no_audio_prepare_gives_silent_clips_in_a_store(work: Path) -> None:
    from lipflow.tasks.contracts.clip_manifest import read_clip_manifest
    from lipflow.tasks.contracts.store_reader import read_store
    from lipflow.tasks.corpora.local import register_local
    from lipflow.tasks.prepare.speaker import pack_store, speaker_jobs, store_attributes
    from lipflow.tasks.prepare.video import preprocess_video
    from lipflow.tasks.settings.paths import clip_manifest_path

    src = work / "mine"
    src.mkdir()
    strip_audio(SAMPLE, src / "quiet.mpg")
    raw, features = work / "raw", work / "features"
    with pytest.raises(Exception, match="no usable video"):  # the default wants audio
        register_local(src, "anna", "en", raw)
    register_local(src, "anna", "en", raw, require_audio=False)

    params = load_params(ROOT / "params.yaml")
    (default_job,) = speaker_jobs(params, "local", ["anna"], raw, features, fps=25.0)
    record = {"corpus": "local", "speaker": "anna", "utterance_id": "quiet", "language": "en",
              "split": None, "video_path": "anna/quiet.mpg"}
    (rejected,) = preprocess_video(record, raw, work, default_job.settings)
    assert not rejected["kept"] and "no audio stream" in rejected["reject_reason"]
    assert "require_audio" not in default_job.params_record["preprocess"]

    params["preprocess"] = {**params["preprocess"], "require_audio": False}
    (job,) = speaker_jobs(params, "local", ["anna"], raw, features, fps=25.0)
    rows = preprocess_video(record, raw, work, job.settings)
    assert [r["kept"] for r in rows] == [True] and rows[0]["reject_reason"] is None
    store = pack_store(job, rows, store_attributes(job, "test"), progress=False)
    group = read_store(store)
    assert list(group["valid_samples"][:]) == [0]
    assert int(group["valid_frames"][0]) == 75
    assert not np.any(group["wav"][0])
    assert group.attrs["params"]["preprocess"]["require_audio"] is False
    manifest = read_clip_manifest(clip_manifest_path(store))
    assert list(manifest["valid_samples"]) == [0] and manifest["reject_reason"].isna().all()


def test_griffin_lim_in_pieces_is_one_call_for_short_mels_and_smooth_at_joins() -> None:
    """Long mels are inverted in 20-s pieces (bounded memory), cross-faded without clicks."""
    from lipflow.models.synthesize import GL_CHUNK_FRAMES, GL_OVERLAP_FRAMES, waveform_from_mel
    from lipflow.tasks.features.mel import inv_mel_spectrogram, mel_spectrogram
    from lipflow.tasks.media.audio import read_audio

    pcm = read_audio(PROJECT_ROOT / "data/samples/grid/s1/bbaf2n.mpg", 16000)
    speech = pcm.astype(np.float32) / 32768
    mel = mel_spectrogram(np.tile(speech, 10))  # ~30 s: two pieces
    short = mel[:GL_CHUNK_FRAMES]
    assert np.array_equal(waveform_from_mel(short, None), inv_mel_spectrogram(short, None))
    wav = waveform_from_mel(mel, None)
    hop = 200
    assert len(wav) == (len(mel) - 1) * hop and np.all(np.isfinite(wav))
    jumps = np.abs(np.diff(wav))
    join = (GL_CHUNK_FRAMES - GL_OVERLAP_FRAMES) * hop
    fade = GL_OVERLAP_FRAMES * hop
    at_join = jumps[join - fade: join + 2 * fade].max()
    elsewhere = np.concatenate([jumps[: join - fade], jumps[join + 2 * fade:]]).max()
    assert at_join <= elsewhere  # no discontinuity larger than the signal's own


def test_vcagan_synthesizes_through_its_own_vocoder(work: Path) -> None:
    """VCA-GAN predicts a 321-bin linear spectrogram at 100 frames a second, not the
    store's mel: synthesize stitches it at its own hop and vocodes it with its own
    Griffin-Lim. An untrained tiny checkpoint is enough to check that path (the wav's
    length, a muxed file), not the speech."""
    from lipflow.models.checkpoints import save_best
    from lipflow.models.registry import spec
    from tests.support.seed_models import tiny_cfg

    cfg = tiny_cfg("vcagan", seed=0, fps=25.0)
    model = spec("vcagan").build(cfg)
    ckpt = work / "vcagan" / "best.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    save_best(ckpt, "vcagan", model, cfg, 0)
    video = strip_audio(SAMPLE, work / "silent_vcagan.mpg")
    out, muxed = work / "vcagan.wav", work / "vcagan.mp4"
    code, output = run_cli(str(video), "--model", "vcagan", "--checkpoint", str(ckpt),
                           "--out", str(out), "--mux", str(muxed))
    assert code == 0, output
    pcm = read_wav(out)
    assert abs(len(pcm) / SR - decoded_duration_s(video)) <= 160 / SR
    synth = load_synthesizer("vcagan", ckpt, load_params(ROOT / "params.yaml"))
    assert synth.hop_samples == 160 and synth.mel_per_frame == 4
    assert synth.silence_mel().shape == (4 * synth.clip_frames, 321)
    assert probe(muxed).has_audio
