"""Offline ASR (pocketsphinx, GRID grammar) on the sample's real s1 audio, and ``lipflow asr``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lipflow.models import asr
from lipflow.tasks.corpora.grid import parse_alignment
from lipflow.tasks.media.audio import read_audio
from tests.conftest import SAMPLE_GRID

UTTERANCES = sorted(p.stem for p in (SAMPLE_GRID / "alignments" / "s1").glob("*.align"))


def _truth(utt: str) -> str:
    align = SAMPLE_GRID / "alignments" / "s1" / f"{utt}.align"
    return " ".join(w for w, _, _ in parse_alignment(align))


@pytest.fixture(scope="module")
def sample_wavs(tmp_path_factory) -> dict[str, Path]:
    """The ground-truth audio of the sample's aligned s1 clips as 16 kHz mono int16 wavs."""
    from scipy.io import wavfile

    folder = tmp_path_factory.mktemp("asr")
    out = {}
    for utt in UTTERANCES:
        out[utt] = folder / f"{utt}.wav"
        wavfile.write(out[utt], 16000, read_audio(SAMPLE_GRID / "s1" / f"{utt}.mpg", 16000))
    return out


def test_grammar_word_lists_cover_the_sample_alignments() -> None:
    words = {w for slot in asr.GRID_SLOTS.values() for w in slot}
    assert len(words) == 51 and "w" not in words
    for utt in UTTERANCES:
        sentence = _truth(utt).split()
        assert all(w in slot for w, slot in zip(sentence, asr.GRID_SLOTS.values(), strict=True))
    assert asr.grid_jsgf().count("|") == sum(len(s) - 1 for s in asr.GRID_SLOTS.values())


def test_ground_truth_sample_audio_is_transcribed(sample_wavs) -> None:
    """Every aligned sample clip reads as its alignment's words (bbbf8p has a letter f)."""
    got = {p.stem: words for p, words in asr.transcribe_files(sample_wavs.values())}
    assert set(got) == set(UTTERANCES) == {"bbaf2n", "bbal6n", "bbbf8p"}
    assert got == {utt: _truth(utt) for utt in UTTERANCES}


def test_lexicon_reads_letter_names(tmp_path: Path) -> None:
    """CMU's pronunciations except the letter names; the article's schwa is not a letter."""
    lexicon = asr.grid_lexicon()
    assert list(lexicon) == [w for slot in asr.GRID_SLOTS.values() for w in slot]
    assert lexicon["a"] == ("EY",) and lexicon["z"][0] == "Z EH D"
    assert lexicon["f"] == ("EH F",) and lexicon["eight"] == ("EY T",)
    assert lexicon["white"] == ("W AY T", "HH W AY T")  # CMU's alternates kept, in order
    small = tmp_path / "small.dict"
    small.write_text("bin B IH N\nblue B L UW\n")
    with pytest.raises(asr.AsrError, match="no pronunciation for again, at, b, by"):
        asr.grid_lexicon(small)
    with pytest.raises(asr.AsrError, match="no pronunciation dictionary"):
        asr.grid_lexicon(tmp_path / "missing.dict")


def test_word_error_rate_known_values() -> None:
    assert asr.word_error_rate(["bin blue at f two now"], ["bin blue at f two now"]) == 0.0
    assert asr.word_error_rate(["a b c d", "e f"], ["a x c d", ""]) == pytest.approx(3 / 6)
    with pytest.raises(asr.AsrError, match="non-empty reference"):
        asr.word_error_rate([""], ["a"])


def test_silence_and_bad_input() -> None:
    assert asr.transcribe(np.zeros(16000, dtype=np.int16)) == ""  # silence: no words
    with pytest.raises(asr.AsrError, match="int16"):
        asr.transcribe(np.zeros(16000, dtype=np.float32))
    with pytest.raises(asr.AsrError, match="unknown grammar"):
        asr.check_grammar("lrs3")


def test_cli_prints_path_tab_words(sample_wavs, tmp_path: Path) -> None:
    from scipy.io import wavfile

    lipflow = Path(sys.executable).with_name("lipflow")
    paths = [sample_wavs[utt] for utt in UTTERANCES]
    out = subprocess.run([lipflow, "asr", *map(str, paths)], capture_output=True, text=True,
                         check=True)
    assert out.stdout == "".join(f"{p}\t{_truth(p.stem)}\n" for p in paths)
    path = sample_wavs["bbaf2n"]
    general = subprocess.run([lipflow, "asr", "--grammar", "none", str(path)],
                             capture_output=True, text=True, check=True)
    assert general.stdout.startswith(f"{path}\t")
    stereo = tmp_path / "stereo.wav"
    wavfile.write(stereo, 44100, np.zeros((100, 2), dtype=np.int16))
    bad = subprocess.run([lipflow, "asr", str(path), str(stereo)], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stdout == ""  # nothing decoded before every file is checked
    assert bad.stderr.startswith("error: ") and "16 kHz mono int16" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
