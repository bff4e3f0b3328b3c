"""Smoke runs of the benchmark scripts: they run end to end and print well-formed ratios.

Only the shape of the output is checked (every expected ratio line is there, its number
parses, and its "goal met/missed" verdict agrees with the number and the stated goal),
never a timing: timings belong to the benchmark run on a quiet machine, not to a test.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RATIO = re.compile(
    r"^ratio (?P<name>.+?): (?P<value>\d+\.\d{2})x"
    r"(?:  \(goal (?P<op><=|>=) (?P<target>[\d.]+)x: goal (?P<verdict>met|missed)\))?$"
)
PEAK_RSS = re.compile(
    r"^peak RSS at [\d.]+ min: (?P<mb>\d+\.\d) MB  "
    r"\(goal < (?P<limit>[\d.]+) MB: goal (?P<verdict>met|missed)\)$"
)


def run_script(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / args[0]), *args[1:]],
        capture_output=True, text=True, cwd=ROOT, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def ratio_lines(stdout: str) -> dict[str, re.Match[str]]:
    found = {}
    for line in stdout.splitlines():
        match = RATIO.match(line)
        if match:
            found[match["name"]] = match
    return found


def check_verdict(match: re.Match[str]) -> None:
    """The printed verdict must follow from the printed value and goal."""
    value = float(match["value"])
    assert math.isfinite(value) and value > 0
    if match["op"] is None:
        return
    target = float(match["target"])
    met = value >= target if match["op"] == ">=" else value <= target
    # the value is printed rounded to 2 decimals; allow that rounding at the boundary
    if abs(value - target) > 0.005:
        assert (match["verdict"] == "met") == met, match.group(0)


def test_preprocess_benchmark_prints_its_ratios() -> None:
    out = run_script("preprocess.py", "--quick")
    ratios = ratio_lines(out)
    goals = {
        "lipflow realtime per core (video s / CPU s)": (">=", "15"),
        "lipflow / decode-only CPU time": ("<=", "3"),
        "baseline / lipflow CPU time (lipflow speed-up)": (">=", "3"),
    }
    for name, (op, target) in goals.items():
        assert name in ratios, f"missing ratio line {name!r} in:\n{out}"
        assert (ratios[name]["op"], ratios[name]["target"]) == (op, target)
        check_verdict(ratios[name])
    for name in ("lipflow / decode-only wall time", "baseline / lipflow wall time"):
        assert name in ratios and ratios[name]["verdict"] is None
        check_verdict(ratios[name])
    for way in ("decode-only floor", "lipflow preprocess", "Lip2Wav-style baseline"):
        assert re.search(rf"^{way} +cpu +\d+\.\d+ s  wall +\d+\.\d+ s  realtime per core", out,
                         re.M), out
    assert "BLAS/OpenMP threads: 1" in out and "threadpoolctl reports 1" in out


def test_long_video_benchmark_prints_rss_ratio_and_goal(tmp_path: Path) -> None:
    out = run_script("long_video.py", "--quick", "--minutes", "0.05", "0.1",
                     "--cache-dir", str(tmp_path))
    ratios = ratio_lines(out)
    rss = ratios.get("peak RSS 0.1 min / 0.05 min")
    assert rss is not None, out
    assert (rss["op"], rss["target"]) == ("<=", "1.10")
    check_verdict(rss)
    for name in ("peak RSS above imports 0.1 min / 0.05 min",
                 "realtime per core at 0.1 min (video s / CPU s)"):
        assert name in ratios, out
        check_verdict(ratios[name])
    peaks = [PEAK_RSS.match(line) for line in out.splitlines()]
    peak = next(m for m in peaks if m is not None)
    assert (float(peak["mb"]) < float(peak["limit"])) == (peak["verdict"] == "met")
    # both lengths were made at 360p and went through preprocessing in full
    assert re.search(r"^0\.05 min 360p .*: 3 s of video at 30 fps, 1 clips kept", out, re.M), out
    assert re.search(r"^0\.1 min 360p .*: 6 s of video at 30 fps, 2 clips kept", out, re.M), out
    assert sorted(p.name for p in tmp_path.glob("*.mp4")) == [
        "talking_head_0.05min_360p.mp4", "talking_head_0.1min_360p.mp4"]


def test_gpu_step_benchmark_takes_every_models_step_on_cpu() -> None:
    """The GPU check runs on CPU too (fp32 only there): a row per model, VCA-GAN's step is
    its D+G step, and its Griffin-Lim timing line is printed."""
    out = run_script("gpu_step.py", "--device", "cpu", "--size", "tiny", "--batch", "2",
                     "--frames", "40", "--steps", "1")
    for model in ("lip2wav", "avsync", "gabor", "gaborpic", "vcagan"):
        assert re.search(rf"^{model} +fp32 +\d+\.\d{{3}} +\d+$", out, re.M), out
    assert re.search(r"^vcagan Griffin-Lim of one batch \(2 clips\): \d+\.\d\d s$", out, re.M)
