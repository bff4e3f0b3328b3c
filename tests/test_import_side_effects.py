"""Importing lipflow changes nothing: no environment variable, no patched library.

Process set-up happens in one explicit call (``lipflow.tasks.common.process.configure_process``,
made by the CLI); a library user importing a lipflow module keeps their own environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

PROBE = r"""
import importlib, json, os, pkgutil, sys
# Third-party libraries that touch the environment themselves (OpenCV and MediaPipe set
# LD_LIBRARY_PATH when imported) are imported first: what is measured is lipflow's share.
import cv2, mediapipe, numpy, speechpy.processing
before = dict(os.environ)
np_before = speechpy.processing.np
names = []
for root in ("lipflow.tasks", "lipflow.flows", "lipflow.models"):
    package = importlib.import_module(root)
    names.append(root)
    for info in pkgutil.walk_packages(package.__path__, root + "."):
        importlib.import_module(info.name)
        names.append(info.name)
after = dict(os.environ)
print(json.dumps({
    "modules": names,
    "changed": sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)),
    "speechpy_np_untouched": speechpy.processing.np is np_before,
}))
"""


def test_importing_every_module_sets_nothing_and_patches_nothing(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "GLOG_")) and k not in ("DO_NOT_TRACK",)}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "lipflow.tasks.prepare.video" in report["modules"]
    assert "lipflow.flows.cli" in report["modules"]
    assert report["changed"] == []
    assert report["speechpy_np_untouched"]


def test_configure_process_sets_the_defaults_once(monkeypatch) -> None:
    from lipflow.tasks.common.process import DEFAULTS, configure_process

    for key in (*DEFAULTS, "PREFECT_HOME"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PREFECT_HOME", "/somewhere/of/the/users")
    configure_process()
    assert os.environ["PREFECT_HOME"] == "/somewhere/of/the/users"  # the user's value wins
    assert all(os.environ[k] == v for k, v in DEFAULTS.items())
