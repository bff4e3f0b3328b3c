"""Every DVC stage's deps cover the code its command runs, so `dvc repro` never misses an edit.

The closure is computed from the source (tests/support/stage_deps.py), not listed by hand,
so it stays right when modules are added, split or moved. The synthetic projects below
show the check catching a module a stage's deps miss, in both import layouts.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.support.stage_deps import (
    Layout,
    StageDepsError,
    absent_deps,
    format_report,
    load_stages,
    stage_closure,
    uncovered,
)


def test_every_stage_dep_covers_its_command_code(project_root: Path) -> None:
    report = uncovered(project_root)
    assert not report, "dvc.yaml deps miss files their stage's command runs:\n" + (
        format_report(report))


def test_every_dep_exists_or_is_made_by_a_stage(project_root: Path) -> None:
    report = absent_deps(project_root)
    assert not report, "dvc.yaml deps that do not exist:\n" + format_report(report)


def test_closures_follow_each_command_not_the_whole_cli(project_root: Path) -> None:
    layout, clis = Layout.read(project_root), {}
    closures = {s.name.split("@")[0]: stage_closure(layout, clis, s)
                for s in load_stages(project_root)}
    assert "flows/cli.py" in closures["prepare_grid"]
    assert any(p.endswith(".tflite") for p in closures["prepare_grid"])  # package data
    assert not any(p.startswith("models/") for p in closures["prepare_grid"])
    assert not any(p.startswith("tasks/faces/") for p in closures["download_grid"])
    assert any(p.startswith("models/") for p in closures["train"])


# --- synthetic projects ---------------------------------------------------------------

def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


CLI = """\
    import typer

    from {pkg}.tasks.base import shared

    app = typer.Typer()
    run_app = typer.Typer()
    app.add_typer(run_app, name="run")


    @app.callback()
    def _setup() -> None:
        from {pkg}.tasks import setup


    def _helper() -> None:
        from {pkg}.tasks import helped


    @run_app.command("work")
    def work(speaker: str) -> None:
        from {pkg}.tasks.work import do_work

        _helper()


    @app.command()
    def other_thing() -> None:
        from {pkg}.tasks import other
"""

TASKS = {
    "tasks/__init__.py": "",
    "tasks/base.py": "shared = 1\n",
    "tasks/setup.py": "",
    "tasks/helped.py": "",
    "tasks/other.py": "",
    "tasks/deep.py": "",
    "tasks/deployed.py": "",
    "tasks/assets/model.bin": "weights",
}


def work_module(pkg: str) -> str:
    return f"""\
        DEPLOYMENT = "{pkg}.tasks.deployed:flow"


        def do_work() -> None:
            from . import deep
    """


DVC_YAML = """\
    stages:
      work:
        foreach: ${speakers}
        do:
          cmd: demo run work ${item} --fast
          deps:
            - data/${item}
            - flows
            - tasks/work.py
          outs:
            - out/${item}
      other:
        cmd: demo other-thing
        deps:
          - flows
          - tasks
          - tasks/gone.py
"""


def new_layout(root: Path) -> Path:
    """One import root ``demo`` whose folders map through package-dir, as lipflow's."""
    return write(root, {
        "pyproject.toml": """\
            [project.scripts]
            demo = "demo.flows.cli:app"

            [tool.setuptools.package-dir]
            "demo.flows" = "flows"
            "demo.tasks" = "tasks"

            [tool.setuptools.package-data]
            "demo.tasks" = ["assets/*"]
        """,
        "params.yaml": "speakers: [s1, s2]\n",
        "dvc.yaml": DVC_YAML,
        "flows/__init__.py": "",
        "flows/cli.py": CLI.format(pkg="demo"),
        "tasks/work.py": work_module("demo"),
        **TASKS,
    })


def old_layout(root: Path) -> Path:
    """Top-level packages ``flows`` and ``tasks``, no package-dir (the layout before)."""
    return write(root, {
        "pyproject.toml": """\
            [project.scripts]
            demo = "flows.cli:app"

            [tool.setuptools.package-data]
            tasks = ["assets/*"]
        """,
        "params.yaml": "speakers: [s1]\n",
        "dvc.yaml": DVC_YAML,
        "flows/__init__.py": "",
        "flows/cli.py": CLI.replace("{pkg}.", ""),
        "tasks/work.py": work_module("demo").replace("demo.", ""),
        **TASKS,
    })


MISSED = ["tasks/__init__.py", "tasks/assets/model.bin", "tasks/base.py", "tasks/deep.py",
          "tasks/deployed.py", "tasks/helped.py", "tasks/setup.py"]


@pytest.mark.parametrize("layout", [new_layout, old_layout])
def test_a_module_the_deps_miss_is_reported(tmp_path: Path, layout) -> None:
    root = layout(tmp_path)
    report = uncovered(root)
    speakers = ["s1", "s2"] if layout is new_layout else ["s1"]
    assert report == {f"work@{s}": MISSED for s in speakers}  # tasks/other.py: not this command


def test_deps_naming_the_folders_cover_everything(tmp_path: Path) -> None:
    root = new_layout(tmp_path)
    dvc = root / "dvc.yaml"
    dvc.write_text(dvc.read_text().replace("- tasks/work.py", "- tasks"))
    assert uncovered(root) == {}


def test_a_dep_that_does_not_exist_is_reported(tmp_path: Path) -> None:
    root = new_layout(tmp_path)
    # data/s1 is absent too but made by no stage here, so it is reported with the module
    assert absent_deps(root) == {"work@s1": ["data/s1"], "work@s2": ["data/s2"],
                                 "other": ["tasks/gone.py"]}
    (root / "dvc.yaml").write_text((root / "dvc.yaml").read_text().replace(
        "- out/${item}", "- out/${item}\n        - data/${item}"))
    assert absent_deps(root) == {"other": ["tasks/gone.py"]}


def test_an_empty_foreach_is_still_checked(tmp_path: Path) -> None:
    root = new_layout(tmp_path)
    (root / "params.yaml").write_text("speakers: []\n")
    assert list(uncovered(root)) == ["work@ITEM"]


def test_a_command_the_cli_lacks_is_an_error(tmp_path: Path) -> None:
    root = new_layout(tmp_path)
    (root / "dvc.yaml").write_text("stages:\n  x:\n    cmd: demo run nothing\n")
    with pytest.raises(StageDepsError, match="no command for `run nothing`"):
        uncovered(root)
    (root / "dvc.yaml").write_text("stages:\n  x:\n    cmd: python script.py\n")
    with pytest.raises(StageDepsError, match="cannot follow `python`"):
        uncovered(root)
