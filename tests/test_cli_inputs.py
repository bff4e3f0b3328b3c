"""Bad input is answered before orchestration: every case runs the real ``lipflow`` as a
subprocess and must exit 2 with one ``error: ...`` line on stderr, without importing Prefect
and without contacting or starting a server.

How "without Prefect" is seen: a ``sitecustomize`` on PYTHONPATH (this test's only) records
at exit whether any ``prefect`` module was imported. PREFECT_API_URL names a closed port, so
a command that reached its flow would import Prefect (and fail to connect), never start a
server. Timings are not asserted here; ``benchmarks/cli_latency.py`` prints them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

LIPFLOW = Path(sys.executable).with_name("lipflow")
PROJECT = Path(__file__).resolve().parents[1]

SITECUSTOMIZE = """\
import atexit, os, sys

def _record():
    with open(os.environ["LIPFLOW_TEST_IMPORTS"], "w") as out:
        out.write("\\n".join(sorted(m for m in sys.modules if m.split(".")[0] == "prefect")))

if os.environ.get("LIPFLOW_TEST_IMPORTS"):
    atexit.register(_record)
"""


@pytest.fixture(scope="module")
def hook_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("import-hook")
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return folder


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Files the bad cases point at."""
    folder = tmp_path_factory.mktemp("inputs")
    bad_list = folder / "list.txt"
    bad_list.write_text("dQw4w9WgXcQ\n--exec=x\n")
    good_list = folder / "good.txt"
    good_list.write_text("dQw4w9WgXcQ\n")
    store = folder / "s1.zarr"
    store.mkdir()
    bad_params = folder / "project"
    bad_params.mkdir()
    (bad_params / "params.yaml").write_text("grid:\n  no_such_key: 1\n")
    (bad_params / "dvc.yaml").write_text("stages: {}\n")
    empty_root = folder / "raw"
    empty_root.mkdir()
    raw_root = folder / "downloaded"  # what `lipflow download grid s1` leaves (contents unread)
    (raw_root / "manifests").mkdir(parents=True)
    (raw_root / "manifests" / "s1.parquet").write_bytes(b"")
    return {"bad_list": bad_list, "good_list": good_list, "store": store,
            "bad_params": bad_params, "empty_root": empty_root, "raw_root": raw_root,
            "folder": folder}


def run_lipflow(args: list[str], hook_dir: Path, tmp_path: Path,
                env_extra: dict[str, str] | None = None) -> tuple[int, str, list[str], Path]:
    record = tmp_path / "prefect-modules.txt"
    home = tmp_path / "prefect-home"
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": str(hook_dir),
        "LIPFLOW_TEST_IMPORTS": str(record),
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": "http://127.0.0.1:9/api",  # closed: reaching a flow would fail
        "LIPFLOW_ROOT": str(PROJECT),
    })
    env.update(env_extra or {})
    result = subprocess.run([str(LIPFLOW), *args], env=env, capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    imported = record.read_text().split() if record.exists() else ["<no record>"]
    return result.returncode, result.stderr, imported, home


CASES = {
    "grid s21": (["download", "grid", "s21"], "s21 has no video"),
    "grid mirror": (["download", "grid", "s1", "--mirror", "gopher://x"], "unknown GRID mirror"),
    "grid sample speaker": (["download", "grid", "s2", "--mirror", "sample"], "has no speaker s2"),
    "grid runner": (["download", "grid", "s1", "--runner", "spark"], "unknown runner 'spark'"),
    "lip2wav speaker": (["download", "lip2wav", "bogus"], "bogus"),
    "lip2wav split": (["download", "lip2wav", "chem", "--split", "nope"], "unknown split"),
    "lip2wav limit": (["download", "lip2wav", "chem", "--limit", "-1"], "limit must be >= 0"),
    "lip2wav cookies": (["download", "lip2wav", "chem", "--cookies", "/no/cookies.txt"],
                        "cookies file /no/cookies.txt does not exist"),
    "youtube list line": (["download", "youtube", "--list", "{bad_list}", "--speaker", "anna",
                           "--language", "de"], "list.txt:2: not a YouTube video id"),
    "youtube list missing": (["download", "youtube", "--list", "/no/list.txt", "--speaker",
                              "anna", "--language", "de"], "does not exist"),
    "youtube speaker": (["download", "youtube", "--list", "{good_list}", "--speaker", "../x",
                         "--language", "de"], "speaker '../x'"),
    "youtube language": (["download", "youtube", "--list", "{good_list}", "--speaker", "anna",
                          "--language", "german!"], "not a language code"),
    "youtube sleep": (["download", "youtube", "--list", "{good_list}", "--speaker", "anna",
                       "--language", "de", "--sleep", "-1"], "--sleep must be >= 0"),
    "local folder": (["download", "local", "/no/videos", "--speaker", "anna", "--language",
                      "de"], "not a folder of videos"),
    "local speaker": (["download", "local", "{folder}", "--speaker", "a b", "--language", "de"],
                      "speaker 'a b'"),
    "track missing": (["track", "/no/such.mpg", "{folder}/out.mp4"], "such.mpg"),
    "prepare speaker": (["prepare", "grid", "s99", "--root", "{raw_root}"],
                        "manifests/s99.parquet: run `lipflow download grid` for s99"),
    "prepare root": (["prepare", "grid", "s1", "--root", "/no/raw"], "no raw grid corpus"),
    "prepare manifest": (["prepare", "grid", "s1", "--root", "{empty_root}"],
                         "no raw manifest"),
    "prepare detector": (["prepare", "mycorpus", "anna", "--detector", "huge"],
                         "--detector must be one of"),
    "params file": (["prepare", "grid", "s1", "--params", "/no/params.yaml"],
                    "no params file at /no/params.yaml"),
    "prepare user manifest": (["prepare", "mycorpus", "anna", "--fps", "25", "--root",
                               "{folder}"], "no raw manifest"),
    "prepare runner": (["prepare", "grid", "s1", "--root", "{raw_root}", "--runner",
                        "spark"], "unknown runner 'spark'"),
    "prepare address": (["prepare", "grid", "s1", "--root", "{raw_root}", "--runner",
                         "thread", "--address", "tcp://x:1"], "needs --runner dask or ray"),
    "prepare workers": (["prepare", "grid", "s1", "--root", "{raw_root}",
                         "--max-workers", "0"], "max_workers must be a positive integer"),
    "train model": (["train", "resnet"], "unknown model 'resnet'"),
    "train runner": (["train", "avsync", "--runner", "spark"], "unknown runner 'spark'"),
    "evaluate model": (["evaluate", "resnet"], "unknown model 'resnet'"),
    "sync-score store": (["sync-score", "/no/such/store.zarr"], "no store at"),
    "sync-score checkpoint": (["sync-score", "{store}", "--checkpoint", "/no/best.pt"],
                              "avsync checkpoint /no/best.pt does not exist"),
    "sync-score offset": (["sync-score", "{store}", "--max-offset", "0"], "--max-offset"),
    "serve limit": (["serve", "--limit", "0"], "--limit must be at least 1"),
    "audit format": (["audit", "--format", "xml"], "--format must be md or json"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exits_2_in_one_line_before_prefect(case: str, hook_dir: Path,
                                                      inputs: dict[str, Path],
                                                      tmp_path: Path) -> None:
    template, message = CASES[case]
    args = [a.format(**inputs) for a in template]
    code, stderr, imported, home = run_lipflow(args, hook_dir, tmp_path)
    assert code == 2, stderr
    assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    assert message in stderr, stderr
    assert imported == [], f"imported {imported[:5]} before answering"
    assert not home.exists() or not any(home.iterdir())  # no server state, no DB


@pytest.mark.parametrize("command", [["prepare", "grid", "s1"], ["refresh"],
                                     ["download", "grid", "s1"]])
def test_bad_params_are_answered_before_prefect(command: list[str], hook_dir: Path,
                                                inputs: dict[str, Path],
                                                tmp_path: Path) -> None:
    code, stderr, imported, _ = run_lipflow(command, hook_dir, tmp_path,
                                            {"LIPFLOW_ROOT": str(inputs["bad_params"])})
    assert code == 2, stderr
    assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    assert "no_such_key" in stderr
    assert imported == []
