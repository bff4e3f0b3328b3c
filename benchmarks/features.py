"""Feature extraction time per 3-second clip: lipflow's mel vs librosa's own mel path, and MFEC.

    .venv/bin/python benchmarks/features.py [--repeats 30]

"librosa's path" is what a Lip2Wav-style pipeline written today would call:
pre-emphasis, ``librosa.feature.melspectrogram`` with settings equivalent to Lip2Wav's
(magnitude, reflect padding, Slaney basis, 80 bands, 55-7600 Hz), then the same dB and
normalisation. It rebuilds the mel basis on every call; lipflow caches it. Both outputs
are checked to agree before anything is timed. The clips are the six bundled GRID sample
clips' audio (16 kHz mono int16, 48000 samples). Each round times every clip with every method,
interleaved so a noisy, shared machine slows all methods alike; the figures are medians
over rounds of the per-clip mean, in milliseconds, all measured in this one run.

BLAS threads: by default the run is limited to one BLAS thread (``--blas-threads``, via
threadpoolctl, which librosa's scikit-learn dependency brings). A clip's mel is one small
matrix product (80x401 @ 401x241); on a busy 2-core machine OpenBLAS's thread hand-off
made that product ~25x slower (20 ms instead of 0.8 ms), drowning what is being measured.
Batch extraction parallelises across clips, not inside one product. ``0`` = BLAS default.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import librosa
import numpy as np
import scipy.signal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lipflow.tasks.features.mel import mel_spectrogram  # noqa: E402
from lipflow.tasks.features.mfec import mfec_cube  # noqa: E402
from lipflow.tasks.settings.schema import Mel  # noqa: E402
from tests.support.audio_features import SAMPLE_GRID, grid_clip  # noqa: E402


def librosa_mel(wav: np.ndarray, p: Mel | None = None) -> np.ndarray:
    """Lip2Wav's mel through ``librosa.feature.melspectrogram``; (frames, n_mels) float32."""
    p = p or Mel()
    y = scipy.signal.lfilter([1.0, -p.preemphasis], [1.0], wav.astype(np.float64) / 32768.0)
    mel = librosa.feature.melspectrogram(
        y=y, sr=p.sample_rate_hz, n_fft=p.n_fft, hop_length=p.hop_samples,
        win_length=p.win_samples, window="hann", center=True, pad_mode="reflect", power=1.0,
        n_mels=p.n_mels, fmin=p.fmin_hz, fmax=p.fmax_hz, htk=False, norm="slaney",
    )
    db = 20.0 * np.log10(np.maximum(10.0 ** (p.min_level_db / 20.0), mel)) - p.ref_level_db
    m = p.max_abs_value
    out = np.clip(2.0 * m * (db - p.min_level_db) / -p.min_level_db - m, -m, m)
    return out.T.astype(np.float32)


def per_clip_ms(fn: Callable[[np.ndarray], np.ndarray], clips: list[np.ndarray]) -> float:
    """Mean wall time of ``fn`` per clip over ``clips``, in milliseconds."""
    start = time.perf_counter()
    for clip in clips:
        fn(clip)
    return (time.perf_counter() - start) * 1000.0 / len(clips)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds (median taken)")
    parser.add_argument("--blas-threads", type=int, default=1, help="0 = the BLAS default")
    args = parser.parse_args()
    limit: contextlib.AbstractContextManager = contextlib.nullcontext()
    if args.blas_threads > 0:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(limits=args.blas_threads, user_api="blas")
    with limit:
        run(args.repeats, args.blas_threads)


def run(repeats: int, blas_threads: int) -> None:
    """Check agreement, warm up, time every method ``repeats`` times and print medians."""
    stems = sorted(f"{p.parent.name}/{p.stem}" for p in SAMPLE_GRID.glob("s*/*.mpg"))
    clips = [grid_clip(stem) for stem in stems]
    worst = max(float(np.abs(mel_spectrogram(c) - librosa_mel(c)).max()) for c in clips)
    if worst > 1e-3:
        raise SystemExit(f"lipflow and librosa mels disagree (max abs diff {worst:.2e})")
    for clip in clips:  # warm-up: imports, caches, FFT plans
        mfec_cube(clip)

    methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "lipflow mel": mel_spectrogram,
        "librosa mel": librosa_mel,
        "MFEC (speechpy)": mfec_cube,
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            times[name].append(per_clip_ms(fn, clips))

    medians = {name: statistics.median(values) for name, values in times.items()}
    threads = blas_threads or "default"
    print(f"{len(clips)} GRID clips x {repeats} rounds, 3 s each (48000 samples at 16 kHz), "
          f"BLAS threads: {threads}")
    print(f"mel agreement lipflow vs librosa: max abs diff {worst:.1e}")
    for name, ms in medians.items():
        print(f"{name:<18} {ms:8.2f} ms per clip (median)")
    ratio = medians["lipflow mel"] / medians["librosa mel"]
    print(f"ratio lipflow/librosa mel time: {ratio:.2f} (speed-up {1 / ratio:.2f}x)")


if __name__ == "__main__":
    main()
