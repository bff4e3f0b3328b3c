"""What the orchestration costs: ``dvc repro`` of the bundled sample, and one no-op stage.

A fresh copy of the project (what git tracks, as a clean clone holds it, with this
checkout's ``.venv`` on PATH) is reproduced from nothing with ``dvc repro``; each stage's
wall time is read from when DVC announces it. Then one stage that has nothing to do is
forced to run again (``dvc repro -f download_grid@s1``: the sample is already there, so
the command only validates, finds every file present and writes the same manifest): its
wall time is the per-stage overhead a user pays for DVC + the ``lipflow`` process +
Prefect (the median of ``--noop-runs`` runs: one run moves by ~0.2 s on a shared machine).
Compute is the rest: each stage's wall minus that overhead.

    python benchmarks/dag_overhead.py [--keep DIR [--reuse]] [--noop-runs 5]

``--reuse`` with ``--keep``: a copy reproduced there before is not built again, only the
no-op stage is timed (for trying a change to the per-stage cost).

Goals (issue: orchestration that costs seconds): the sample DAG <= 90 s wall on 2 cores,
per-stage overhead <= 3 s.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE = re.compile(r"^Running stage '(?P<name>[^']+)'")


def tool_env() -> dict[str, str]:
    """lipflow's environment for dvc/lipflow subprocesses, with no LIPFLOW_ROOT override."""
    from lipflow.tasks.common.executables import tool_env as lipflow_tool_env

    env = lipflow_tool_env()
    env.pop("LIPFLOW_ROOT", None)
    return env


def copy_project(dest: Path) -> Path:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@lipflow.invalid"]
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                [*git, "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dest, check=True, env=tool_env())
    return dest


def timed_repro(repo: Path, *args: str) -> tuple[float, dict[str, float]]:
    """Wall time of ``dvc repro ARGS`` and of each stage it ran (announcement to next)."""
    start = time.perf_counter()
    marks: list[tuple[str, float]] = []
    proc = subprocess.Popen(["dvc", "repro", *args], cwd=repo, env=tool_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    tail = []
    for line in proc.stdout:
        tail = (tail + [line])[-40:]
        match = STAGE.match(line)
        if match:
            marks.append((match["name"], time.perf_counter()))
    if proc.wait() != 0:
        raise SystemExit("dvc repro failed:\n" + "".join(tail))
    end = time.perf_counter()
    stages = {name: (marks[i + 1][1] if i + 1 < len(marks) else end) - t
              for i, (name, t) in enumerate(marks)}
    return end - start, stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it")
    parser.add_argument("--reuse", action="store_true",
                        help="with --keep: time only the no-op stage of the copy built there")
    parser.add_argument("--noop-runs", type=int, default=5)
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="lipflow-dag-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.reuse and args.keep and (work / "repo" / "dvc.lock").is_file():
        repo, total, stages = work / "repo", None, {}
    else:
        repo = copy_project(work / "repo")
        total, stages = timed_repro(repo)
    noops = [timed_repro(repo, "-f", "-s", "download_grid@s1")[0]
             for _ in range(max(1, args.noop_runs))]
    noop = statistics.median(noops)
    print(f"no-op stage (dvc repro -f -s download_grid@s1), {len(noops)} runs: "
          + ", ".join(f"{s:.2f}" for s in noops) + f" s; median {noop:.2f} s")
    if total is None:
        print(f"ratio per-stage overhead / 3 s: {noop / 3:.2f}x  "
              f"(goal <= 1.00x: goal {'met' if noop <= 3 else 'missed'})")
        return
    print(f"dvc repro of the sample from a clean copy: {total:.1f} s wall, "
          f"{len(stages)} stages, {os.cpu_count()} cores")
    for name, seconds in stages.items():
        print(f"  {name:28s} {seconds:6.1f} s wall, ~{max(0.0, seconds - noop):5.1f} s compute")
    compute = sum(max(0.0, s - noop) for s in stages.values())
    print(f"per-stage overhead (the no-op stage's median): {noop:.2f} s")
    print(f"compute inside stages ~{compute:.1f} s; overhead ~{total - compute:.1f} s "
          f"({(total - compute) / total:.0%} of the wall time)")
    print(f"ratio sample DAG wall / 90 s: {total / 90:.2f}x  "
          f"(goal <= 1.00x: goal {'met' if total <= 90 else 'missed'})")
    print(f"ratio per-stage overhead / 3 s: {noop / 3:.2f}x  "
          f"(goal <= 1.00x: goal {'met' if noop <= 3 else 'missed'})")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
