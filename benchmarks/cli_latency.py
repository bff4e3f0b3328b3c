"""How fast the CLI answers: ``--help``, bad input, and one flow run per Prefect mode.

Goals (wall clock, median of ``--repeat`` runs of the real ``lipflow`` executable):
every ``--help`` < 1 s; every bad input (exit 2, one ``error:`` line) < 2 s, since it is
answered before Prefect is imported or a server is contacted. Then, unless ``--no-flows``:
starting the local server once, and one small flow run (``download grid s1 --mirror
sample``) against it versus Prefect's ephemeral per-process server. Timings are printed,
never asserted in tests (the machine is shared); tests/test_cli_inputs.py checks the
behaviour instead.

    .venv/bin/python benchmarks/cli_latency.py [--repeat 3] [--no-flows]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIPFLOW = Path(sys.executable).with_name("lipflow")

HELP = [[], ["download"], ["download", "grid"], ["download", "lip2wav"],
        ["download", "youtube"], ["download", "local"], ["track"], ["prepare"], ["train"],
        ["evaluate"], ["sync-score"], ["serve"], ["refresh"], ["audit"], ["report"],
        ["server"], ["server", "status"]]

BAD = {
    "download grid s21": ["download", "grid", "s21"],
    "download grid --runner spark": ["download", "grid", "s1", "--runner", "spark"],
    "download lip2wav --split nope": ["download", "lip2wav", "chem", "--split", "nope"],
    "download youtube --list (line 2 is --exec=x)": [
        "download", "youtube", "--list", "{list}", "--speaker", "anna", "--language", "de"],
    "download local /no/videos": ["download", "local", "/no/videos", "--speaker", "a",
                                  "--language", "de"],
    "track /no/such.mpg": ["track", "/no/such.mpg", "{tmp}/out.mp4"],
    "prepare grid s1 --root /no/raw": ["prepare", "grid", "s1", "--root", "/no/raw"],
    "prepare mycorpus anna (no --fps)": ["prepare", "mycorpus", "anna"],
    "train resnet": ["train", "resnet"],
    "sync-score /no/store.zarr": ["sync-score", "/no/store.zarr"],
    "serve --limit 0": ["serve", "--limit", "0"],
    "audit --format xml": ["audit", "--format", "xml"],
}


def timed(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, str]:
    start = time.perf_counter()
    proc = subprocess.run([str(LIPFLOW), *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    return time.perf_counter() - start, proc.returncode, proc.stderr


def median_of(args: list[str], env: dict[str, str], cwd: Path, repeat: int) -> tuple[float, int,
                                                                                     str]:
    runs = [timed(args, env, cwd) for _ in range(repeat)]
    return statistics.median(r[0] for r in runs), runs[-1][1], runs[-1][2]


def verdict(seconds: float, goal_s: float) -> str:
    return f"(goal < {goal_s:g} s: goal {'met' if seconds < goal_s else 'missed'})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-flows", action="store_true", help="Skip the flow-run timings.")
    opts = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lipflow-cli-latency-") as scratch:
        tmp = Path(scratch)
        bad_list = tmp / "list.txt"
        bad_list.write_text("dQw4w9WgXcQ\n--exec=x\n")
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env.update(PREFECT_HOME=str(tmp / "prefect"), LIPFLOW_ROOT=str(ROOT))

        print(f"lipflow CLI latency, median of {opts.repeat} runs ({LIPFLOW})")
        for args in HELP:
            seconds, code, _ = median_of([*args, "--help"], env, tmp, opts.repeat)
            name = " ".join(["lipflow", *args, "--help"])
            print(f"help  {name}: {seconds:.2f} s  {verdict(seconds, 1.0)}"
                  + ("" if code == 0 else f"  [exit {code}]"))
        for name, template in BAD.items():
            args = [a.format(list=bad_list, tmp=tmp) for a in template]
            seconds, code, stderr = median_of(args, env, tmp, opts.repeat)
            one_line = stderr.startswith("error: ") and stderr.count("\n") == 1
            shape = "" if code == 2 and one_line else f"  [exit {code}, stderr {stderr[:80]!r}]"
            print(f"bad   lipflow {name}: {seconds:.2f} s  {verdict(seconds, 2.0)}{shape}")
        if not opts.no_flows:
            flows(env, tmp)


def flows(env: dict[str, str], tmp: Path) -> None:
    """Server start once, then a small flow against it, then the same flow ephemeral."""
    seconds, code, stderr = timed(["server", "start"], env, tmp)
    print(f"flow  lipflow server start (cold, fresh PREFECT_HOME): {seconds:.2f} s"
          + ("" if code == 0 else f"  [exit {code}: {stderr[-200:]}]"))
    try:
        seconds, _, _ = timed(["server", "status"], env, tmp)
        print(f"flow  lipflow server status (health check): {seconds:.2f} s")
        args = ["download", "grid", "s1", "--mirror", "sample", "--no-progress", "--root"]
        timed([*args, str(tmp / "warmup")], env, tmp)  # extracts the sample archives once
        seconds, code, _ = timed([*args, str(tmp / "local")], env, tmp)
        print(f"flow  download grid s1 --mirror sample, local server: {seconds:.2f} s"
              + ("" if code == 0 else f"  [exit {code}]"))
        ephemeral = {**env, "LIPFLOW_PREFECT_SERVER": "ephemeral"}
        seconds, code, _ = timed([*args, str(tmp / "ephemeral")], ephemeral, tmp)
        print(f"flow  download grid s1 --mirror sample, ephemeral server: {seconds:.2f} s"
              + ("" if code == 0 else f"  [exit {code}]"))
    finally:
        timed(["server", "stop"], env, tmp)


if __name__ == "__main__":
    main()
