"""``lipflow audit``: two commits of a toy DVC project that differ in one param."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lipflow.tasks.ops.audit import (
    AuditError,
    audit_revisions,
    audit_store,
    diff_mappings,
    render,
    render_store,
)
from tests.support.git_repo import commit_all, dvc, git, make_toy_project, set_param

STORE = "data/features/toy/s1.zarr"


@pytest.fixture(scope="module")
def toy_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A repo with commit A (mouth_height_px=8) and commit B (12), both reproduced."""
    repo = tmp_path_factory.mktemp("audit") / "toy"
    rev_a = make_toy_project(repo, mouth_height_px=8)
    set_param(repo, "mouth_height_px", 12)
    dvc("repro", "-q", cwd=repo)
    rev_b = commit_all(repo, "bigger mouth crops")
    return repo, rev_a, rev_b


def test_audit_between_two_commits_names_param_values_and_outputs(toy_repo):
    repo, rev_a, rev_b = toy_repo
    report = audit_revisions(rev_a, rev_b, repo)

    assert report.params["params.yaml"]["preprocess.mouth_height_px"]["old"] == 8
    assert report.params["params.yaml"]["preprocess.mouth_height_px"]["new"] == 12
    assert list(report.params["params.yaml"]) == ["preprocess.mouth_height_px"]  # only that one
    assert report.metrics["metrics/scores.json"]["stoi"]["new"] == pytest.approx(0.12)
    modified = " ".join(report.outputs["modified"])
    assert f"{STORE}/" in modified and "models/toy.ckpt" in modified
    assert report.outputs["added"] == [] and report.outputs["deleted"] == []

    (store,) = report.stores
    assert store.path == STORE and store.change == "modified"
    assert store.attrs_a["params"]["preprocess"]["mouth_height_px"] == 8  # read at rev A
    assert store.attrs_b["params"]["preprocess"]["mouth_height_px"] == 12
    assert store.params_changed == {"preprocess.mouth_height_px": {"old": 8, "new": 12}}
    assert store.attrs_b["git_revision"] == rev_a  # B's store was made on top of commit A

    md = render(report, "md")
    assert "`preprocess.mouth_height_px` | 8 | 12 |" in md
    assert "models/toy.ckpt" in md and f"`{STORE}` (modified)" in md
    data = json.loads(render(report, "json"))
    assert data["rev_a"] == rev_a and data["rev_b"] == rev_b
    assert data["stores"][0]["params_changed"]["preprocess.mouth_height_px"]["new"] == 12


def test_audit_head_against_workspace_and_no_change(toy_repo):
    repo, _, rev_b = toy_repo
    same = audit_revisions("HEAD", None, repo)  # workspace == HEAD: nothing changed
    assert same.params == {} and same.stores == [] and same.outputs["modified"] == []
    assert "No params changed." in render(same)
    assert json.loads(render(same, "json"))["rev_b"] == "workspace"


def test_audit_store_reports_params_revision_and_sources(toy_repo):
    repo, rev_a, _ = toy_repo
    info = audit_store(repo / STORE)
    assert info["params"]["preprocess"]["mouth_height_px"] == 12
    assert info["git_revision"] == rev_a and info["corpus"] == "toy"
    assert info["clips"] == 3 and info["arrays"]["mouth"] == [3, 4, 12, 12]
    assert info["dvc_stage"]["stage"] == "make"
    assert info["dvc_stage"]["deps"][0]["path"] == "make.py"
    md = render_store(info)
    assert "`preprocess.mouth_height_px` | 12 |" in md and "DVC stage `make`" in md
    assert json.loads(render_store(info, "json"))["speaker"] == "s1"


def test_audit_errors_are_clear(tmp_path, toy_repo):
    repo, _, _ = toy_repo
    with pytest.raises(AuditError, match="not a DVC project"):
        audit_revisions("HEAD", None, tmp_path)
    with pytest.raises(AuditError, match="dvc params diff"):
        audit_revisions("no-such-rev", None, repo)
    with pytest.raises(AuditError, match="not a Zarr v3 store"):
        audit_store(tmp_path)
    with pytest.raises(AuditError, match="unknown audit format"):
        render(audit_revisions("HEAD", None, repo), "html")  # type: ignore[arg-type]


def test_diff_mappings_is_key_by_key():
    old = {"a": {"b": 1, "c": [1, 2]}, "d": "x"}
    new = {"a": {"b": 2, "c": [1, 2]}, "e": True}
    assert diff_mappings(old, new) == {
        "a.b": {"old": 1, "new": 2},
        "d": {"old": "x", "new": None},
        "e": {"old": None, "new": True},
    }


def test_fresh_clone_says_outputs_are_not_built(toy_repo, tmp_path):
    """A clone where nothing was ever built: outputs are 'not built', never 'deleted'."""
    repo, _, _ = toy_repo
    fresh = tmp_path / "fresh"
    git("clone", "-q", str(repo), str(fresh), cwd=tmp_path)
    (fresh / "dvc.lock").unlink()  # as in lipflow's own repo: no lock committed
    commit_all(fresh, "no lock")
    report = audit_revisions("HEAD", None, fresh)
    assert report.outputs["deleted"] == [] and report.stores == []
    assert any(path.startswith(STORE) for path in report.outputs["not_built"])
    md = render(report)
    assert "**not built** in the workspace" in md and "PathMissingError" not in md

    dvc("repro", "-q", cwd=fresh)  # built now, still not recorded at HEAD: added, not modified
    built = audit_revisions("HEAD", None, fresh)
    assert built.outputs["not_built"] == [] and built.outputs["modified"] == []
    assert any(path.startswith(STORE) for path in built.outputs["added"])
    (store,) = built.stores
    assert store.change == "added" and store.notes == []
    assert store.attrs_b["params"]["preprocess"]["mouth_height_px"] == 12
    assert "PathMissingError" not in render(built)
