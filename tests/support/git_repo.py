"""A tiny git + DVC project in a temp folder, for audit and remote tests.

One stage (``make``) reads ``params.yaml`` and writes what lipflow's real stages write,
in miniature: a Zarr v3 store ``data/features/toy/s1.zarr`` whose group attrs record the
params, a checkpoint-like binary ``models/toy.ckpt``, and ``metrics/scores.json``.
Changing ``params.yaml`` and re-running ``dvc repro`` changes all three, so two commits
differ in exactly one param and its consequences.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent

STAGE_SCRIPT = textwrap.dedent('''
    """Toy stage: a Zarr store, a checkpoint and metrics, all derived from params.yaml."""
    import json, subprocess
    from pathlib import Path
    import numpy as np, yaml, zarr

    params = yaml.safe_load(open("params.yaml"))
    pre = params["preprocess"]
    rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    n, size = 3, int(pre["mouth_height_px"])
    rng = np.random.default_rng(int(pre["smooth_window_frames"]))
    store = zarr.open_group("data/features/toy/s1.zarr", mode="w", zarr_format=3)
    store.attrs.update({"params": {"preprocess": pre}, "git_revision": rev,
                        "lipflow_version": "0.1.0", "raw_manifest_sha256": "0" * 64,
                        "corpus": "toy", "speaker": "s1", "fps": 25.0,
                        "created_by": "toy stage"})
    mouth = rng.integers(0, 255, size=(n, 4, size, size), dtype=np.uint8)
    store.create_array("mouth", shape=mouth.shape, dtype="uint8",
                       chunks=(1, 4, size, size))[:] = mouth
    Path("models").mkdir(exist_ok=True)
    Path("models/toy.ckpt").write_bytes(mouth.tobytes()[::7])
    Path("metrics").mkdir(exist_ok=True)
    Path("metrics/scores.json").write_text(json.dumps({"stoi": round(size / 100, 3)}))
''')

DVC_YAML = {
    "stages": {
        "make": {
            "cmd": f"{sys.executable} make.py",
            "deps": ["make.py"],
            "params": ["preprocess.mouth_height_px", "preprocess.smooth_window_frames"],
            "outs": ["data/features/toy/s1.zarr", "models/toy.ckpt"],
            "metrics": [{"metrics/scores.json": {"cache": False}}],
        }
    }
}


def tool_env() -> dict[str, str]:
    """Subprocess env: the venv's tools first on PATH, a fixed git identity, analytics off."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update({
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "lipflow test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "lipflow test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
        "GIT_CONFIG_NOSYSTEM": "1",
    })
    env.pop("LIPFLOW_ROOT", None)
    return env


def sh(cmd: list[str], cwd: Path) -> str:
    """Run a command, return stdout; fail the test with its output if it fails."""
    result = subprocess.run(cmd, cwd=cwd, env=tool_env(), capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}) in {cwd}\n"
                             f"{result.stdout}\n{result.stderr}")
    return result.stdout


def dvc(*args: str, cwd: Path) -> str:
    return sh([str(BIN / "dvc"), *args], cwd)


def git(*args: str, cwd: Path) -> str:
    return sh(["git", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args], cwd)


def set_param(repo: Path, key: str, value: object) -> None:
    """Set ``preprocess.<key>`` in the repo's params.yaml."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["preprocess"][key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def commit_all(repo: Path, message: str) -> str:
    """``git add -A && git commit``; returns the new commit's sha."""
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", message, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo).strip()


def make_toy_project(repo: Path, mouth_height_px: int = 8) -> str:
    """Create, reproduce and commit the toy project in ``repo``; returns the commit sha."""
    repo.mkdir(parents=True, exist_ok=True)
    git("init", "-q", cwd=repo)
    dvc("init", "-q", cwd=repo)
    dvc("config", "core.autostage", "true", cwd=repo)
    (repo / "make.py").write_text(STAGE_SCRIPT)
    (repo / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    (repo / "params.yaml").write_text(yaml.safe_dump(
        {"grid": {"speakers": []},  # no corpus to download: lipflow's defaults name four
         "preprocess": {"mouth_height_px": mouth_height_px, "smooth_window_frames": 7,
                        "face_margin": 0.25}},
        sort_keys=False))
    dvc("repro", "-q", cwd=repo)
    return commit_all(repo, "toy project")
