"""Helpers shared by the benchmark scripts: CPU clocks, medians, goal lines, sample records.

Benchmarks print figures as ratios against a baseline measured in the same run (never
absolute timings compared with a constant in a test): the machine is shared and noisy,
a ratio of two things measured side by side is not. Importing this module pins BLAS and
OpenMP to one thread *before* numpy loads (environment variables, inherited by child
processes too), so lipflow and every baseline run under the same threading.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SAMPLE_GRID = ROOT / "data" / "samples" / "grid"
BLAS_NOTE = ("BLAS/OpenMP threads: 1 (OPENBLAS_NUM_THREADS=1 and threadpoolctl), OpenCV threads: 1 "
             "(as lipflow's per-video work sets them), same for all")


def blas_threads() -> str:
    """What threadpoolctl reports for the loaded BLAS libraries (``n/a`` when none)."""
    from threadpoolctl import threadpool_info

    counts = sorted({str(info["num_threads"]) for info in threadpool_info()
                     if info.get("user_api") == "blas"})
    return ",".join(counts) or "n/a"


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Limit BLAS and OpenCV to one thread (the env vars cover libraries not loaded yet).

    lipflow's per-video work runs inside ``lipflow.tasks.common.native_threads.one_native_thread``;
    the
    same context around every way measured puts the baselines under the same threading.
    """
    from lipflow.tasks.common.native_threads import one_native_thread

    with one_native_thread():
        yield


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children.

    Counts every thread (MediaPipe's and PyAV's workers) and waited-for subprocesses
    (an ffmpeg call), so it is the work done, whatever the machine's load.
    """
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass(frozen=True)
class Timing:
    """One measurement: CPU seconds (all threads and children) and wall seconds."""

    cpu_s: float
    wall_s: float


def measure(fn: Callable[[], Any]) -> Timing:
    """Run ``fn`` once and return its CPU and wall time."""
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    fn()
    return Timing(cpu_s=cpu_seconds() - cpu0, wall_s=time.perf_counter() - wall0)


def median_timing(timings: list[Timing]) -> Timing:
    """Median CPU and median wall (each taken on its own) over repeats."""
    return Timing(cpu_s=statistics.median(t.cpu_s for t in timings),
                  wall_s=statistics.median(t.wall_s for t in timings))


def verdict(met: bool) -> str:
    return "goal met" if met else "goal missed"


def ratio_line(name: str, value: float, goal: str, met: bool | None) -> str:
    """One ``ratio`` line in the format every benchmark uses (the smoke test parses it).

    ``ratio <name>: <value>x  (goal <goal>: goal met|goal missed)``; ``met=None`` prints
    the figure without a goal.
    """
    tail = f"  (goal {goal}: {verdict(met)})" if met is not None else ""
    return f"ratio {name}: {value:.2f}x{tail}"


def sample_videos(root: Path = SAMPLE_GRID) -> list[Path]:
    """The bundled GRID sample videos, in a stable order."""
    return sorted(root.glob("s*/*.mpg"))


def grid_record(video: Path, root: Path = SAMPLE_GRID) -> dict[str, Any]:
    """A raw-manifest row (the fields preprocess_video reads) for a GRID sample video."""
    from lipflow.tasks.corpora.grid import parse_alignment

    align = root / "alignments" / video.parent.name / f"{video.stem}.align"
    words = ([{"word": w, "start_s": s, "end_s": e} for w, s, e in parse_alignment(align)]
             if align.is_file() else None)
    return {
        "corpus": "grid", "speaker": video.parent.name, "utterance_id": video.stem,
        "language": "en", "split": None,
        "video_path": video.relative_to(root).as_posix(), "word_timings": words,
    }
