"""``evaluate``: both papers' protocols, reference rows, exclusion counts, clip-id wavs,
per-clip CSV and WER, on in-memory clips and on a store of the sample's real s1 clips."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lipflow.models import evaluation, runtime, training
from lipflow.models.checkpoints import BEST_NAME, LAST_NAME
from tests.support.seed_models import fake_clip, one_thread, tiny_cfg  # noqa: F401

MEL_PARAMS = {"hop_samples": 200, "max_abs_value": 4, "min_level_db": -100, "ref_level_db": 20}
PROTOCOL_KEYS = ("stoi", "estoi", "pesq")


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _stub_inverse_mel(mel: np.ndarray, params) -> np.ndarray:
    """A stand-in for Griffin-Lim: a loud tone (peaks above 1, as Griffin-Lim's do)."""
    hop = int(params["hop_samples"])
    env = np.repeat((mel.mean(axis=1) + 4.0) / 8.0, hop)
    t = np.arange(len(env)) / 16000.0
    return 2.0 * env * np.sin(2 * np.pi * 220 * t)


def test_clip_wav_names_come_from_clip_ids() -> None:
    assert evaluation.clip_wav_name("s1/bbaf2n/0") == "s1_bbaf2n_0.wav"
    assert evaluation.clip_wav_name("chem/v 1:2/3") == "chem_v_1_2_3.wav"
    with pytest.raises(runtime.TrainingError, match="no usable file name"):
        evaluation.clip_wav_name("//")


@pytest.mark.parametrize("model_name", ["lip2wav", "gabor"])
def test_in_memory_clips_get_counts_reference_rows_and_exclusions(model_name: str,
                                                                  tmp_path: Path) -> None:
    kind = "face" if model_name == "lip2wav" else "mouth"
    items = [fake_clip(i, frames=50, kind=kind, mouth_hw=(30, 50)) for i in range(3)]
    items[2]["wav"] = torch.zeros_like(items[2]["wav"])  # a silent reference
    loader = DataLoader(items, batch_size=2)
    cfg = tiny_cfg(model_name, epochs=1)
    result = training.train(model_name, loader, None, cfg, tmp_path / "ckpt")
    summary = evaluation.evaluate(
        model_name, result.checkpoint, loader, cfg, tmp_path / "eval",
        metrics_path=tmp_path / "metrics" / f"{model_name}.json", mel_params=MEL_PARAMS,
        # gabor predicts an auditory spectrogram: its own vocoder (NSL aud2wav), not a mel stub
        inverse_mel=_stub_inverse_mel if model_name == "lip2wav" else None,
    )
    written = json.loads((tmp_path / "metrics" / f"{model_name}.json").read_text())
    assert written["model"] == model_name and written["clips"] == 3
    for row in (written, written["ground_truth"], written["griffin_lim"]):
        for protocol in ("lip2wav_protocol", "vcagan_protocol"):
            block = row[protocol]
            for key in PROTOCOL_KEYS:
                assert block[f"{key}_clips"] == 2, (protocol, key)
                assert block[f"{key}_excluded"] == {"silent_reference": 1}, (protocol, key)
        # no manifest (no corpus, no transcripts): WER is counted as excluded, not dropped
        assert row["wer_general_lm"] is None
        assert row["wer_general_lm_excluded"] == {"no_transcript": 3}
    assert written["ground_truth"]["lip2wav_protocol"]["stoi"] == pytest.approx(1.0, abs=1e-6)
    assert written["ground_truth"]["vcagan_protocol"]["pesq"] > 4.0
    if model_name == "lip2wav":
        assert written["mcd_db_clips"] == 3 and written["mcd_db"] > 0
    else:  # the auditory spectrogram's corr2 instead of mel scores (the silent clip's is
        # undefined: a constant spectrogram)
        assert written["mcd_db_clips"] == 0
        assert written["mcd_db_excluded"] == {evaluation.NOT_A_MEL: 3}
        assert written["aud_corr2_clips"] == 2
        assert written["aud_corr2_excluded"] == {"constant_spectrogram": 1}
        assert -1.0 <= written["aud_corr2"] <= 1.0
        assert -1.0 <= written["aud_corr2_outliers_removed"] <= 1.0
    assert summary["lip2wav_protocol"]["stoi"] == written["lip2wav_protocol"]["stoi"]
    rows = _read_csv(tmp_path / "eval" / "clips.csv")
    assert [r["kind"] for r in rows] == ["model"] * 3 + ["ground_truth"] * 3 + ["griffin_lim"] * 3
    assert rows[2]["lip2wav_protocol.pesq"] == ""
    assert "lip2wav_protocol.pesq: silent_reference" in rows[2]["excluded"]
    score = "mcd_db" if model_name == "lip2wav" else "aud_corr2"
    assert rows[0][score] and not rows[3][score]  # spectrogram scores only for the model
    wavs = sorted(p.name for p in (tmp_path / "eval" / "wavs").iterdir())
    assert wavs == ["clip_0000.wav", "clip_0001.wav", "clip_0002.wav"]


def test_written_wav_is_the_peak_normalised_signal_that_was_scored(tmp_path: Path) -> None:
    from scipy.io import wavfile

    from lipflow.models import metrics

    item = fake_clip(0, frames=50, kind="mouth", mouth_hw=(30, 50))
    loader = DataLoader([item], batch_size=1)
    cfg = tiny_cfg("gabor", epochs=1)
    result = training.train("gabor", loader, None, cfg, tmp_path / "ckpt")
    summary = evaluation.evaluate("gabor", result.checkpoint, loader, cfg, tmp_path / "eval",
                                  mel_params=MEL_PARAMS, inverse_mel=_stub_inverse_mel)
    rate, pcm = wavfile.read(tmp_path / "eval" / "wavs" / "clip_0000.wav")
    assert rate == 16000 and pcm.dtype == np.int16 and int(np.abs(pcm).max()) == 32767
    ref = item["wav"].numpy()[: len(pcm)]
    rescored = metrics.lip2wav_protocol(ref, pcm)
    assert summary["lip2wav_protocol"]["stoi"] == pytest.approx(rescored["stoi"], abs=1e-9)
    assert summary["lip2wav_protocol"]["pesq"] == pytest.approx(rescored["pesq"], abs=1e-9)


def _sample_store(folder: Path) -> Path:
    """A store of the sample's three aligned s1 clips: real audio and its real mel, real
    clip ids and transcripts (tiny random mouth frames: nothing here scores video)."""
    from lipflow.tasks.contracts.clip_manifest import write_clip_manifest
    from lipflow.tasks.contracts.clip_record import save_clip
    from lipflow.tasks.contracts.store_layout import manifest_path_for
    from lipflow.tasks.contracts.store_writer import write_store
    from lipflow.tasks.corpora.grid import parse_alignment
    from lipflow.tasks.features.mel import mel_spectrogram
    from lipflow.tasks.media.audio import read_audio
    from tests.conftest import SAMPLE_GRID
    from tests.support.clips import clip_rows, store_attrs

    utterances = sorted(p.stem for p in (SAMPLE_GRID / "alignments" / "s1").glob("*.align"))
    rng = np.random.default_rng(0)
    paths = []
    for utt in utterances:
        wav = np.zeros(48000, dtype=np.int16)
        audio = read_audio(SAMPLE_GRID / "s1" / f"{utt}.mpg", 16000)[:48000]
        wav[: len(audio)] = audio
        arrays = {
            "face": rng.integers(0, 256, (75, 8, 8, 3), dtype=np.uint8),
            "mouth": rng.integers(0, 256, (75, 30, 50), dtype=np.uint8),
            "wav": wav,
            "mel": mel_spectrogram(wav),
            "mfec": rng.normal(size=(149, 40, 3)).astype(np.float32),
            "valid_frames": np.array(74),
            "valid_samples": np.array(74 * 640),
        }
        paths.append(save_clip(folder / "clips" / f"{utt}.npy", arrays))
    store = write_store(paths, folder / "s1.zarr", attrs=store_attrs("s1"), progress=False)
    rows = clip_rows(paths, splits=["test"] * len(paths))
    for row, utt in zip(rows, utterances, strict=True):
        words = parse_alignment(SAMPLE_GRID / "alignments" / "s1" / f"{utt}.align")
        row.update(clip_id=f"s1/{utt}/0", utterance_id=utt, source_path=f"s1/{utt}.mpg",
                   transcript=" ".join(w for w, _, _ in words))
    write_clip_manifest(rows, manifest_path_for(store))
    return store


def test_evaluate_on_the_sample_clips(tmp_path: Path) -> None:
    from lipflow.models.dataset import ClipWindowDataset
    from lipflow.tasks.settings.project import load_params, section

    store = _sample_store(tmp_path / "features")
    loader = DataLoader(ClipWindowDataset([store], modality="mouth"), batch_size=2)
    cfg = tiny_cfg("gabor", epochs=1, fps=25.0)
    result = training.train("gabor", loader, loader, cfg, tmp_path / "ckpt")
    assert result.best_checkpoint is not None
    mel_params = {**section(load_params(), "features.mel"), "griffin_lim_iters": 8}
    summary = evaluation.evaluate("gabor", result.best_checkpoint, loader, cfg,
                                  tmp_path / "eval", mel_params=mel_params)
    assert summary["clips"] == 3 and summary["asr"] == "pocketsphinx, grid grammar"
    gt = summary["ground_truth"]
    # the recogniser on the real audio gets every word of the three clips (see test_asr)
    assert gt["wer"] == 0.0 and gt["wer_clips"] == 3
    assert gt["lip2wav_protocol"]["stoi"] == pytest.approx(1.0, abs=1e-6)
    for kind in (summary, summary["griffin_lim"]):
        assert 0.0 <= kind["wer"] <= 1.5 and kind["wer_excluded"] == {}
        assert kind["lip2wav_protocol"]["stoi_clips"] == 3
    # Griffin-Lim of the true mel is the vocoder's ceiling: it beats the untrained model
    assert summary["griffin_lim"]["lip2wav_protocol"]["stoi"] > summary["lip2wav_protocol"]["stoi"]
    wavs = sorted(p.name for p in (tmp_path / "eval" / "wavs").iterdir())
    assert wavs == ["s1_bbaf2n_0.wav", "s1_bbal6n_0.wav", "s1_bbbf8p_0.wav"]
    rows = _read_csv(tmp_path / "eval" / "clips.csv")
    truth = {r["clip_id"]: r for r in rows if r["kind"] == "ground_truth"}
    assert truth["s1/bbaf2n/0"]["transcript"] == "bin blue at f two now"
    assert all(r["speaker"] == "s1" for r in truth.values())
    assert truth["s1/bbaf2n/0"]["hypothesis"] == "bin blue at f two now"
    assert truth["s1/bbaf2n/0"]["clip_wer"] == "0.0"


def test_evaluate_sync_model_writes_verification_scores(tmp_path: Path) -> None:
    items = [fake_clip(i, frames=25, kind="mouth", mouth_hw=(60, 100)) for i in range(8)]
    loader = DataLoader(items, batch_size=4)
    cfg = tiny_cfg("avsync", epochs=1, folds=3)
    result = training.train("avsync", loader, None, cfg, tmp_path / "ckpt")
    summary = evaluation.evaluate("avsync", result.checkpoint, loader, cfg, tmp_path / "eval")
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written == summary
    for key in ("eer", "auc", "ap", "eer_mean", "eer_std", "auc_mean", "ap_mean"):
        assert 0.0 <= written[key] <= 1.0, key
    assert written["pairs"] == 24 and written["genuine_pairs"] == 8
    assert len(_read_csv(tmp_path / "eval" / "pairs.csv")) == 24
    again = evaluation.evaluate("avsync", result.checkpoint, loader, cfg, tmp_path / "eval2")
    assert again == summary  # pairs are cut deterministically for scoring


def test_missing_checkpoint_messages(tmp_path: Path) -> None:
    with pytest.raises(runtime.TrainingError, match="run lipflow train gabor first"):
        evaluation.evaluate("gabor", tmp_path / BEST_NAME, [], {}, tmp_path)
    (tmp_path / LAST_NAME).write_bytes(b"")  # trained, but no epoch was kept as best
    with pytest.raises(runtime.TrainingError, match="never saw a finite validation loss"):
        evaluation.evaluate("gabor", tmp_path / BEST_NAME, [], {}, tmp_path)


def test_empty_validation_split_fails_before_training(tmp_path: Path) -> None:
    train_loader = DataLoader([fake_clip(0, frames=25, kind="mouth", mouth_hw=(30, 50))])
    with pytest.raises(runtime.TrainingError, match="validation part of the split holds no"):
        training.train("gabor", train_loader, DataLoader([]), tiny_cfg("gabor", epochs=1),
                       tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()  # nothing was trained or written
