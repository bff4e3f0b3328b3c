"""lipflow installs under one import root: ``lipflow.tasks``, ``lipflow.flows``, ``lipflow.models``.

The folders ``tasks/``, ``flows/`` and ``models/`` stay at the top of the checkout (the
user asked for them there) and setuptools' ``package-dir`` maps them under ``lipflow``,
so a non-editable install puts the single name ``lipflow`` into site-packages and a
user's own ``models`` package (common in ML projects) is never shadowed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow

SOURCE_FOLDERS = {"tasks": "lipflow.tasks", "flows": "lipflow.flows", "models": "lipflow.models"}


def _pyproject() -> dict:
    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_source_package_is_listed_under_lipflow() -> None:
    setuptools = _pyproject()["tool"]["setuptools"]
    assert setuptools["package-dir"] == {v: k for k, v in SOURCE_FOLDERS.items()}
    on_disk = {
        SOURCE_FOLDERS[init.relative_to(PROJECT_ROOT).parts[0]]
        + "".join(f".{p}" for p in init.parent.relative_to(PROJECT_ROOT).parts[1:])
        for folder in SOURCE_FOLDERS for init in (PROJECT_ROOT / folder).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert set(setuptools["packages"]) == on_disk


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy of what git would hold: setuptools' build/ folder in the checkout
    # would otherwise keep modules that have since been moved or deleted.
    src = tmp_path_factory.mktemp("src")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard", "tasks", "flows", "models", "pyproject.toml",
                             "README.md"], cwd=PROJECT_ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        if (PROJECT_ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / rel, src / rel)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(out), str(src)],
                   check=True, capture_output=True, text=True)
    (built,) = out.glob("lipflow-*.whl")
    return built


def test_wheel_holds_one_top_level_name_and_the_assets(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"lipflow", wheel.name.split("-py3")[0]
                                                 + ".dist-info"}
    assert "lipflow/tasks/faces/assets/face_detection_short_range.tflite" in names
    assert "lipflow/tasks/corpora/lip2wav_lists/chem/test.txt" in names
    assert "lipflow/flows/logging.yml" in names
    assert "lipflow/models/split_lists/vcagan_grid/test_4.txt" in names  # published splits
    assert "lipflow/models/split_lists/vcagan_grid/SOURCES.md" in names  # and their licence
    assert not any(n.startswith("lipflow/__init__") for n in names)  # a namespace root


def test_non_editable_install_beside_a_users_models_package(wheel: Path, tmp_path: Path) -> None:
    """A fresh venv with only the wheel installed, run from a folder with its own ``models``."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    zipfile.ZipFile(wheel).extractall(site)
    # lipflow's dependencies come from the test interpreter's site-packages, appended after
    # the fresh venv's own (a plain path entry: that folder's .pth files, among them the
    # editable install of this checkout, are not processed).
    deps = [p for p in sys.path if p.endswith("site-packages")]
    (site / "zz_lipflow_deps.pth").write_text("\n".join(deps) + "\n", encoding="utf-8")
    user = tmp_path / "user_project"
    (user / "models").mkdir(parents=True)
    (user / "models" / "__init__.py").write_text("WHOSE = 'the user'\n", encoding="utf-8")
    probe = (
        "import models, lipflow.tasks, lipflow.models.dataset, lipflow.tasks.prepare.video\n"
        "from lipflow.flows.cli import app\n"
        "assert models.WHOSE == 'the user', models.__file__\n"
        "print(lipflow.tasks.__file__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LIPFLOW_ROOT")}
    result = subprocess.run([str(venv / "bin" / "python"), "-c", probe], cwd=user, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    installed = Path(result.stdout.strip())
    assert site in installed.parents and PROJECT_ROOT not in installed.parents
