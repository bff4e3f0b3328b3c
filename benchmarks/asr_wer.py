"""WER of ``lipflow asr`` (GRID grammar) on ground-truth GRID audio, against the CMU lexicon.

    .venv/bin/python benchmarks/asr_wer.py [--root DIR] [--speaker s1] [--limit 40]

``DIR`` holds ``<speaker>/*.mpg`` and ``alignments/<speaker>/*.align`` (GRID's layout; the
default is the bundled sample). The first ``--limit`` aligned clips, in name order, are
read the way lipflow reads a video's audio (:func:`lipflow.tasks.media.audio.read_audio`,
16 kHz mono int16) and transcribed twice over the same grammar and acoustic model:

* ``cmu`` -- the wheel's whole CMU dictionary (what ``lipflow asr`` used before
  :data:`lipflow.models.asr.LETTER_NAMES`: letter ``a`` as the schwa ``AH``, ``z`` as "zee");
* ``lipflow`` -- :func:`lipflow.models.asr.transcribe`, the grammar's own lexicon.

Printed: pooled WER (jiwer), sentences fully right, word errors per grammar slot, and the
clips each way gets wrong. The references are the alignments' words (``sil``/``sp`` aside).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

from _common import ROOT, SAMPLE_GRID

sys.path.insert(0, str(ROOT))


def cmu_decoder():
    """The GRID grammar over the wheel's full CMU dictionary (the lexicon before the fix)."""
    import pocketsphinx

    from lipflow.models import asr

    root = Path(pocketsphinx.get_model_path()) / "en-us"
    decoder = pocketsphinx.Decoder(hmm=os.fspath(root / "en-us"), lm=None, loglevel="FATAL",
                                   dict=os.fspath(root / "cmudict-en-us.dict"),
                                   samprate=asr.SAMPLE_RATE_HZ)
    decoder.add_jsgf_string("grid", asr.grid_jsgf())
    decoder.activate_search("grid")

    def transcribe(pcm) -> str:
        decoder.start_utt()
        decoder.process_raw(pcm.tobytes(), full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return " ".join(hyp.hypstr.split()) if hyp is not None else ""

    return transcribe


def report(name: str, refs: dict[str, str], hyps: dict[str, str]) -> None:
    from lipflow.models import asr

    slots: Counter[str] = Counter()
    for clip, ref in refs.items():
        hyp, words = hyps[clip].split(), ref.split()
        if len(hyp) != len(asr.GRID_SLOTS) or len(words) != len(asr.GRID_SLOTS):
            slots["(length)"] += 1
            continue
        slots.update(s for s, r, h in zip(asr.GRID_SLOTS, words, hyp, strict=True) if r != h)
    wer = asr.word_error_rate(list(refs.values()), [hyps[c] for c in refs])
    exact = sum(hyps[c] == r for c, r in refs.items())
    print(f"{name:8s} WER {wer:.4f} ({wer * 100:.1f}%)  sentences right {exact}/{len(refs)}  "
          f"errors by slot {dict(slots.most_common())}")
    for clip, ref in refs.items():
        if hyps[clip] != ref:
            print(f"    {clip}: {ref} -> {hyps[clip]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=SAMPLE_GRID, help="GRID folder")
    parser.add_argument("--speaker", default="s1")
    parser.add_argument("--limit", type=int, default=40, help="first N aligned clips")
    args = parser.parse_args()

    from lipflow.models import asr
    from lipflow.tasks.corpora.grid import parse_alignment
    from lipflow.tasks.media.audio import read_audio

    aligns = args.root / "alignments" / args.speaker
    clips = [p for p in sorted((args.root / args.speaker).glob("*.mpg"))
             if (aligns / f"{p.stem}.align").is_file()][:args.limit]
    if not clips:
        sys.exit(f"error: no aligned clips under {args.root / args.speaker}")
    refs = {p.stem: " ".join(w for w, _, _ in parse_alignment(aligns / f"{p.stem}.align"))
            for p in clips}
    audio = {p.stem: read_audio(p, asr.SAMPLE_RATE_HZ) for p in clips}
    print(f"{len(clips)} clips of {args.root / args.speaker} ({clips[0].stem} .. {clips[-1].stem})")
    cmu = cmu_decoder()
    report("cmu", refs, {c: cmu(pcm) for c, pcm in audio.items()})
    report("lipflow", refs, {c: asr.transcribe(pcm) for c, pcm in audio.items()})


if __name__ == "__main__":
    main()
