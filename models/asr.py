"""Offline speech recognition for scoring: word error rate of generated speech.

VCA-GAN reports the WER of an ASR system on the generated GRID speech; lipflow has no
network access when it scores, so the recogniser is pocketsphinx 5 with the English
acoustic model and CMU dictionary its wheel ships (:func:`pocketsphinx.get_model_path`).
Two ways to constrain it:

* ``grid`` -- a JSGF grammar of GRID's fixed sentence structure, command colour
  preposition letter digit adverb (the word lists are the 51 words of the s1
  alignments, ``sil``/``sp`` aside), over a lexicon of just those words
  (:func:`grid_lexicon`): the wheel's CMU pronunciations with the letter slot read as
  letter *names*. On ground-truth GRID s1 audio this gives a WER of about 0.1 (0.107 on
  all 1000 s1 clips, 0.033 on the first 40), so a model's WER reads against its
  ``ground_truth`` row, not against 0.
* ``none`` -- the general English trigram model of the wheel (much weaker: ~0.85 WER on
  GRID's unusual sentences), for corpora without a grammar; scores made with it are
  named ``wer_general_lm`` so they are never compared with grammar WERs.

Input is 16 kHz mono int16, what the stores hold and what evaluation writes. The front
end (noise removal, batch CMN, filters) is the model's own ``feat.params``; note that it
overrides the same keys given to ``pocketsphinx.Decoder(...)``, so trying another front
end means setting ``decoder.config[key]`` and calling ``decoder.reinit_feat()``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np

from lipflow.tasks.common.errors import LipflowError

Grammar = Literal["grid", "none"]
GRAMMARS: tuple[str, ...] = ("grid", "none")
SAMPLE_RATE_HZ = 16000

#: GRID's sentence slots in order, each with its words (checked against the alignments).
GRID_SLOTS: dict[str, tuple[str, ...]] = {
    "command": ("bin", "lay", "place", "set"),
    "colour": ("blue", "green", "red", "white"),
    "preposition": ("at", "by", "in", "with"),
    "letter": tuple("abcdefghijklmnopqrstuvxyz"),  # no w: its name has three syllables
    "digit": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    "adverb": ("again", "now", "please", "soon"),
}

#: Letter-slot pronunciations that replace the CMU dictionary's (ARPAbet phones). GRID
#: speakers say letter names, but CMU's first ``a`` is the article's schwa ``AH``: one
#: short, neutral phone that out-scores the real letter on any reduced syllable (s1
#: ``bbbf8p``, "by f eight", decoded as "by a three"; "z" and "s" heard as "a"). CMU's
#: ``z`` is American "zee"; GRID's speakers are British, so "zed" comes first, "zee" kept.
#: Measured on the 1000 ground-truth s1 clips: WER 0.118 with CMU's letters, 0.107 with these.
LETTER_NAMES: dict[str, tuple[str, ...]] = {
    "a": ("EY",),
    "z": ("Z EH D", "Z IY"),
}


class AsrError(LipflowError):
    """Audio the recogniser cannot read (wrong rate, channels or sample type)."""


def grid_jsgf() -> str:
    """The JSGF grammar of a GRID sentence: one word from each slot, in order."""
    lines = ["#JSGF V1.0;", "grammar grid;"]
    lines.append("public <sentence> = " + " ".join(f"<{slot}>" for slot in GRID_SLOTS) + ";")
    lines += [f"<{slot}> = {' | '.join(words)};" for slot, words in GRID_SLOTS.items()]
    return "\n".join(lines) + "\n"


def metric_name(grammar: Grammar) -> str:
    """The name a WER made with ``grammar`` is reported under."""
    return "wer" if grammar == "grid" else "wer_general_lm"


def check_grammar(grammar: str) -> Grammar:
    """``grammar`` if it is one lipflow knows, else a one-line :class:`AsrError`."""
    if grammar not in GRAMMARS:
        raise AsrError(f"unknown grammar {grammar!r}; choose from {', '.join(GRAMMARS)}")
    return grammar  # type: ignore[return-value]


def _model_root() -> Path:
    """The wheel's English model folder (acoustic model, CMU dictionary, trigram LM)."""
    import pocketsphinx

    return Path(pocketsphinx.get_model_path()) / "en-us"


def grid_lexicon(cmudict: Path | None = None) -> dict[str, tuple[str, ...]]:
    """Each grammar word's pronunciations: the CMU dictionary's, or :data:`LETTER_NAMES`'.

    ``cmudict`` defaults to the one the pocketsphinx wheel ships. Alternates keep CMU's
    order (``white``, ``with``, ``again`` and ``zero`` have two).
    """
    path = Path(cmudict) if cmudict is not None else _model_root() / "cmudict-en-us.dict"
    if not path.is_file():
        raise AsrError(f"no pronunciation dictionary at {path}")
    words = [w for slot in GRID_SLOTS.values() for w in slot]  # grammar order
    wanted = set(words) - set(LETTER_NAMES)
    found: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            entry, _, phones = line.partition(" ")
            base = entry.split("(", 1)[0]
            if base in wanted:
                found.setdefault(base, []).append(" ".join(phones.split()))
    lexicon = {w: LETTER_NAMES.get(w) or tuple(found.get(w, ())) for w in words}
    missing = sorted(w for w, prons in lexicon.items() if not prons)
    if missing:
        raise AsrError(f"{path} has no pronunciation for {', '.join(missing)}")
    return lexicon


@cache
def _decoder(grammar: Grammar):
    """One pocketsphinx decoder per grammar, built once (loading takes ~0.3 s)."""
    import pocketsphinx

    root = _model_root()
    common = {"hmm": os.fspath(root / "en-us"), "samprate": SAMPLE_RATE_HZ, "loglevel": "FATAL"}
    if grammar == "grid":
        # Only the grammar's words, so the lexicon is exactly grid_lexicon's (the search
        # is built when the grammar is added, after every word is in).
        decoder = pocketsphinx.Decoder(lm=None, dict=None, **common)
        for word, prons in grid_lexicon(root / "cmudict-en-us.dict").items():
            for n, phones in enumerate(prons, start=1):
                decoder.add_word(word if n == 1 else f"{word}({n})", phones, False)
        decoder.add_jsgf_string("grid", grid_jsgf())
        decoder.activate_search("grid")
    else:
        decoder = pocketsphinx.Decoder(lm=os.fspath(root / "en-us.lm.bin"),
                                       dict=os.fspath(root / "cmudict-en-us.dict"), **common)
    return decoder


def transcribe(pcm: np.ndarray, grammar: Grammar = "grid") -> str:
    """The words heard in ``pcm`` (16 kHz mono int16), lower case, space separated.

    Empty when nothing is recognised (silence, or no grammar path fits).
    """
    arr = np.asarray(pcm)
    if arr.dtype != np.int16 or arr.ndim != 1:
        raise AsrError(f"asr needs 1-D int16 audio, got {arr.dtype} of shape {arr.shape}")
    decoder = _decoder(check_grammar(grammar))
    decoder.start_utt()
    decoder.process_raw(np.ascontiguousarray(arr).tobytes(), full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return " ".join(hyp.hypstr.split()) if hyp is not None else ""


def read_wav_16k(path: Path) -> np.ndarray:
    """A wav file's samples, checked to be 16 kHz mono int16 (the recogniser's input)."""
    from scipy.io import wavfile

    path = Path(path)
    if not path.is_file():
        raise AsrError(f"no such file: {path}")
    try:
        rate, data = wavfile.read(path)
    except ValueError as err:
        raise AsrError(f"{path} is not a readable wav file ({err})") from err
    if rate != SAMPLE_RATE_HZ or data.ndim != 1 or data.dtype != np.int16:
        shape = "mono" if data.ndim == 1 else f"{data.shape[1]} channels"
        raise AsrError(
            f"{path} is {rate} Hz {shape} {data.dtype}; asr needs 16 kHz mono int16 "
            f"(e.g. ffmpeg -i IN -ac 1 -ar 16000 -c:a pcm_s16le OUT.wav)"
        )
    return data


def transcribe_files(paths: Iterable[Path], grammar: Grammar = "grid") -> list[tuple[Path, str]]:
    """``(path, words)`` for each wav file; every file is checked before any is decoded."""
    audio = [(Path(p), read_wav_16k(Path(p))) for p in paths]
    return [(p, transcribe(pcm, grammar)) for p, pcm in audio]


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER (``jiwer.wer``): word edits over all clips / reference words over all clips.

    Pooled, not a mean of per-clip rates, as ASR papers count it. An empty hypothesis
    counts every reference word as deleted; references must hold words.
    """
    import jiwer

    if len(references) != len(hypotheses):
        raise AsrError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not references or not all(r.strip() for r in references):
        raise AsrError("word error rate needs non-empty reference transcripts")
    return float(jiwer.wer(list(references), list(hypotheses)))
