"""The real ``lipflow prepare`` CLI on a whole speaker, every process counted.

``benchmarks/preprocess.py`` times six sample clips inside one function; users run the CLI
on a speaker of 1000 videos with a process pool and a Prefect server. This script runs
exactly that and counts the CPU time of **every** process involved: the ``lipflow``
process and all its children through ``RUSAGE_CHILDREN`` (the pool's fork server, and
through it the workers it forked: lipflow stops and reaps the fork server when the pool
closes, so their CPU reaches this count), plus any
Prefect server process already running on this machine (its CPU delta over the run, read
from ``/proc``), because a server burning a core is part of what the user pays. Then it
runs the same videos through the bare per-video function (``preprocess_video``) in a plain
loop in one process, and prints both as realtime factors per core and their ratio.

    python benchmarks/prepare_scale.py --root RAW --speaker s1 [--limit-bare 200]

``RAW`` is a GRID raw root as ``lipflow download grid`` leaves it (``RAW/s1/*.mpg``,
``RAW/manifests/s1.parquet``). Goals (issue: orchestration that costs seconds): end to end
>= 20x realtime per core on GRID, and within 1.3x of the bare function.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_seconds, ratio_line  # noqa: E402


def _proc_cpu(pid: int) -> float:
    """utime + stime of one process from /proc (seconds); 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def prefect_server_pids() -> list[int]:
    """Processes running a Prefect server (``prefect server start`` or uvicorn of it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "prefect" in cmd and ("server" in cmd or "uvicorn" in cmd) and "benchmarks" not in cmd:
            pids.append(int(entry.name))
    return pids


def video_seconds(raw: Path, speaker: str) -> tuple[float, list[dict]]:
    from lipflow.tasks.contracts.raw_manifest import read_raw_manifest
    from lipflow.tasks.media.probe import probe

    records = read_raw_manifest(raw / "manifests" / f"{speaker}.parquet").to_dict("records")
    total = 0.0
    for r in records:
        try:
            total += probe(raw / r["video_path"]).duration_s
        except Exception:  # noqa: BLE001 - an unreadable video counts as 0 s
            continue
    return total, records


def run_cli(raw: Path, speaker: str, out: Path, extra: list[str]) -> tuple[float, float, float]:
    """(wall s, CPU s of lipflow and its children, CPU s of Prefect server processes)."""
    lipflow = Path(sys.executable).with_name("lipflow")
    servers = {pid: _proc_cpu(pid) for pid in prefect_server_pids()}
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    # in its own process: a fork of the warm command server is no child of ours, and its
    # CPU time would escape RUSAGE_CHILDREN (the server saves ~2 s of imports, nothing here)
    subprocess.run([str(lipflow), "prepare", "grid", speaker, "--root", str(raw),
                    "--out", str(out), "--no-progress", *extra], check=True,
                   env={**os.environ, "LIPFLOW_COMMAND_SERVER": "off"})
    wall = time.perf_counter() - wall0
    own = cpu_seconds() - cpu0
    for pid in prefect_server_pids():  # a server the command itself started counts whole
        servers.setdefault(pid, 0.0)
    server = sum(max(0.0, _proc_cpu(pid) - before) for pid, before in servers.items())
    return wall, own, server


def run_bare(raw: Path, records: list[dict], speaker: str) -> tuple[float, float]:
    """CPU seconds of preprocess_video over ``records`` in a plain loop, one process, each
    kept clip written as its ``.npy`` record (the function's default); and, apart, the
    CPU seconds of encoding those clips into the store's chunks, the work ``prepare``'s
    workers add per clip (``ClipChunkEncoder``: JPEG and Blosc with the default codec)."""
    from lipflow.tasks.contracts.clip_record import CLIP_SUFFIX, save_clip
    from lipflow.tasks.contracts.store_chunks import ClipChunkEncoder
    from lipflow.tasks.prepare.results import store_encoding
    from lipflow.tasks.prepare.speaker import speaker_jobs
    from lipflow.tasks.prepare.video import preprocess_video
    from lipflow.tasks.settings.project import load_params

    (job,) = speaker_jobs(load_params(), "grid", [speaker], raw, Path(tempfile.mkdtemp()))
    encoder = ClipChunkEncoder(store_encoding(job.settings.features))
    encode_cpu = 0.0
    with tempfile.TemporaryDirectory() as work:

        def save(name: str, arrays: dict) -> str:
            nonlocal encode_cpu
            start = time.process_time()
            encoder.encode(arrays, name)
            encode_cpu += time.process_time() - start
            return str(save_clip(Path(work) / f"{name}{CLIP_SUFFIX}", arrays))

        cpu0 = cpu_seconds()
        for record in records:
            for row in preprocess_video(record, raw, Path(work), job.settings, save=save):
                if row.get("clip_path"):
                    Path(row["clip_path"]).unlink()
        return cpu_seconds() - cpu0 - encode_cpu, encode_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="GRID raw root")
    parser.add_argument("--speaker", default="s1")
    parser.add_argument("--limit-bare", type=int, default=0,
                        help="bare-function baseline on the first N videos only (0 = all)")
    parser.add_argument("cli_args", nargs="*", help="extra arguments for lipflow prepare")
    args = parser.parse_args()
    raw = args.root.resolve()
    total_s, records = video_seconds(raw, args.speaker)
    with tempfile.TemporaryDirectory() as out:
        wall, own, server = run_cli(raw, args.speaker, Path(out), args.cli_args)
    cpu = own + server
    print(f"videos: {len(records)}, {total_s / 60:.1f} min of video")
    print(f"lipflow prepare (CLI): wall {wall:.1f} s, CPU {own:.1f} s in lipflow and its "
          f"workers + {server:.1f} s in Prefect server processes = {cpu:.1f} s "
          f"({server / cpu:.1%} Prefect server)")
    e2e = total_s / cpu
    bare_records = records[: args.limit_bare] if args.limit_bare else records
    bare_video_s = total_s * len(bare_records) / len(records)
    bare_cpu, encode_cpu = run_bare(raw, bare_records, args.speaker)
    bare = bare_video_s / bare_cpu
    print(f"bare preprocess_video loop ({len(bare_records)} videos): CPU {bare_cpu:.1f} s, "
          f"+ {encode_cpu:.1f} s to encode its clips into the store's chunks (done by "
          "prepare's workers, not part of the bare function)")
    print(f"realtime per core: CLI end to end {e2e:.1f}x, bare function {bare:.1f}x, "
          f"wall {total_s / wall:.1f}x realtime on {os.cpu_count()} cores")
    print(ratio_line("end to end, realtime per core", e2e, ">= 20x", e2e >= 20))
    print(ratio_line("bare function / end to end CPU per video second", bare / e2e, "<= 1.3x",
                     bare / e2e <= 1.3))
    with_store = bare_video_s / (bare_cpu + encode_cpu)
    print(ratio_line("bare function + store encoding / end to end CPU per video second",
                     with_store / e2e, None, None))


if __name__ == "__main__":
    main()
