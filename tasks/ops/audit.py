"""Reproducibility audits: what changed between two revisions, and what made a store.

``lipflow audit [REV_A] [REV_B]`` answers "what changed between these two runs and why"
in one report, built from what DVC already records:

* params: ``dvc params diff --json`` (every ``params.yaml`` key whose value differs);
* metrics: ``dvc metrics diff --json`` (``metrics/*.json`` declared in ``dvc.yaml``);
* data outputs: ``dvc diff --json`` (added / deleted / modified / renamed outputs);
* for each changed feature store (a ``.zarr`` output): the params recorded in its group
  attributes on each side, and which of them differ. The revision side is read from the
  store's ``zarr.json`` through ``dvc.api.open`` (from the DVC cache or a remote), so it
  works as long as that revision's data was ever cached or pushed; when it cannot be
  read the report says so instead of failing.

``lipflow audit STORE`` (:func:`audit_store`) reads one store's attributes plus the
``dvc.lock`` entry that produced it: params, git revision, sources and command.

Why the DVC command line rather than its Python internals: the CLI's ``--json`` output
is a documented interface; ``dvc.repo.Repo`` methods change between releases.
``dvc.api.open`` is the documented Python API for reading a tracked file at a revision.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from lipflow.tasks.common.errors import LipflowError
from lipflow.tasks.common.object_store import filesystem, is_url, location
from lipflow.tasks.ops.dvc import ToolError, dvc_json

#: Store attributes shown in reports, in this order (``params`` is shown separately).
STORE_FIELDS = ("corpus", "speaker", "fps", "git_revision", "lipflow_version",
                "raw_manifest_sha256", "created_by")


class AuditError(LipflowError):
    """DVC or git could not answer (not a DVC project, unknown revision, DVC failure)."""


def _dvc_json(args: Sequence[str], repo: Path) -> dict[str, Any]:
    try:
        return dvc_json(args, repo)
    except ToolError as err:
        raise AuditError(str(err)) from None


def _lock_outputs_at(repo: Path, rev: str) -> set[str]:
    """Output paths that ``dvc.lock`` records at git revision ``rev`` (empty: no lock)."""
    result = subprocess.run(["git", "show", f"{rev}:dvc.lock"], cwd=repo, capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        return set()
    data = yaml.safe_load(result.stdout) or {}
    return {str(out.get("path", "")).rstrip("/")
            for stage in (data.get("stages") or {}).values() for out in stage.get("outs") or []}


def _reclassify_unrecorded(repo: Path, diff: dict[str, Any], rev_a: str,
                           rev_b: str | None) -> dict[str, Any]:
    """Outputs that ``dvc.lock`` at ``rev_a`` never recorded are not changes of ``rev_a``.

    Against the workspace, ``dvc diff`` calls a declared output that ``rev_a`` has no hash
    for "deleted" when it is absent (a fresh clone: nothing built yet) and "modified" when
    it exists (built since). The first are *not built*; the second are *added*.
    """
    diff = {kind: list(entries or []) for kind, entries in diff.items()}
    diff.setdefault("not built", [])
    if rev_b is not None:
        return diff
    recorded = _lock_outputs_at(repo, rev_a)

    def unrecorded(entry: Mapping[str, Any]) -> bool:
        path = entry.get("path")
        return isinstance(path, str) and path.rstrip("/") not in recorded

    for kind, target in (("deleted", "not built"), ("modified", "added")):
        moved = [e for e in diff.get(kind, []) if unrecorded(e)
                 and (kind != "deleted" or not (repo / e["path"].rstrip("/")).exists())]
        diff[kind] = [e for e in diff.get(kind, []) if e not in moved]
        diff.setdefault(target, []).extend(moved)
    return diff


def _revs(rev_a: str, rev_b: str | None) -> list[str]:
    return [rev_a] if rev_b is None else [rev_a, rev_b]


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{'a': {'b': 1}}`` -> ``{'a.b': 1}`` (lists are leaves), for key-by-key diffs."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def diff_mappings(old: Mapping[str, Any] | None,
                  new: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Keys (dotted) whose value differs between two nested mappings, with old and new."""
    a, b = flatten(old or {}), flatten(new or {})
    return {key: {"old": a.get(key), "new": b.get(key)}
            for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)}


# --------------------------------------------------------------------------- stores


def _attrs_from_zarr_json(text: str | bytes, where: str) -> dict[str, Any]:
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as err:
        raise AuditError(f"{where} is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or meta.get("node_type") != "group":
        raise AuditError(f"{where} is not the metadata of a Zarr v3 group")
    return dict(meta.get("attributes") or {})


def store_attrs(path: Path) -> dict[str, Any]:
    """The group attributes of the Zarr store at ``path`` (workspace)."""
    meta = Path(path) / "zarr.json"
    if not meta.is_file():
        raise AuditError(f"{path} is not a Zarr v3 store (no zarr.json)")
    return _attrs_from_zarr_json(meta.read_bytes(), str(meta))


def store_attrs_at(repo: Path, relpath: str, rev: str | None) -> dict[str, Any]:
    """A store's attributes at git revision ``rev`` (``None``: the workspace).

    Reads ``<store>/zarr.json`` with ``dvc.api.open``, which finds the revision's copy in
    the local DVC cache, or fetches it from the default remote.
    """
    if rev is None:
        return store_attrs(Path(repo) / relpath)
    import dvc.api

    target = f"{relpath.rstrip('/')}/zarr.json"
    try:
        with dvc.api.open(target, repo=str(repo), rev=rev, mode="rb") as handle:
            text = handle.read()
    except Exception as err:  # noqa: BLE001 - dvc raises many kinds; all mean "not readable"
        raise AuditError(f"cannot read {target} at {rev}: {type(err).__name__}: {err}") from err
    return _attrs_from_zarr_json(text, f"{target}@{rev}")


def _lock_entry_for(repo: Path, relpath: str) -> dict[str, Any] | None:
    """The ``dvc.lock`` stage that lists ``relpath`` as an output, with its name."""
    lock = Path(repo) / "dvc.lock"
    if not lock.is_file():
        return None
    data = yaml.safe_load(lock.read_text(encoding="utf-8")) or {}
    for name, stage in (data.get("stages") or {}).items():
        for out in stage.get("outs") or []:
            if str(out.get("path", "")).rstrip("/") == relpath.rstrip("/"):
                return {"stage": name, **stage}
    return None


def _find_repo(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / ".dvc").is_dir() or (folder / "dvc.yaml").is_file():
            return folder
    return None


def audit_store(path: Path | str, repo: Path | None = None) -> dict[str, Any]:
    """Which params, revision and sources made the store at ``path``.

    Returns its recorded attributes (``params``, ``git_revision``, ``lipflow_version``,
    ``raw_manifest_sha256``, ...), the number of clips and array shapes, and, when the
    store is a DVC output, the ``dvc.lock`` stage that produced it (command, dependencies
    with their hashes, params).
    """
    if is_url(path):
        return _audit_url_store(str(path))
    path = Path(path).resolve()
    attrs = store_attrs(path)
    arrays: dict[str, list[int]] = {}
    for child in sorted(path.iterdir()):
        meta = child / "zarr.json"
        if child.is_dir() and meta.is_file():
            info = json.loads(meta.read_text(encoding="utf-8"))
            if info.get("node_type") == "array":
                arrays[child.name] = list(info.get("shape") or [])
    report: dict[str, Any] = {
        "store": str(path),
        **{key: attrs.get(key) for key in STORE_FIELDS},
        "params": attrs.get("params"),
        "clips": arrays.get("mouth", arrays.get("wav", [None]))[0] if arrays else None,
        "arrays": arrays,
        "other_attrs": {k: v for k, v in attrs.items() if k not in (*STORE_FIELDS, "params")},
        "dvc_stage": None,
    }
    repo = Path(repo).resolve() if repo else _find_repo(path.parent)
    if repo is not None:
        try:
            rel = path.relative_to(repo).as_posix()
        except ValueError:
            rel = None
        entry = _lock_entry_for(repo, rel) if rel else None
        if entry is not None:
            report["dvc_stage"] = {
                "stage": entry["stage"],
                "cmd": entry.get("cmd"),
                "deps": [{"path": d.get("path"), "md5": d.get("md5") or d.get("hash")}
                         for d in entry.get("deps") or []],
                "params": entry.get("params") or {},
            }
    return report


def _audit_url_store(url: str) -> dict[str, Any]:
    """:func:`audit_store` for a store at an object-store URL: only a published one (its
    marker, :mod:`lipflow.tasks.contracts.store_publish`, is reported too); no DVC stage."""
    from lipflow.tasks.contracts.store_layout import StoreError
    from lipflow.tasks.contracts.store_publish import require_published

    url = str(location(url))
    try:
        marker = require_published(url)
    except StoreError as err:
        raise AuditError(str(err)) from None
    fs, key = filesystem(url)
    attrs = _attrs_from_zarr_json(fs.cat_file(f"{key}/zarr.json"), f"{url}/zarr.json")
    arrays: dict[str, list[int]] = {}
    for child in sorted(fs.ls(key, detail=False, refresh=True)):
        try:
            info = json.loads(fs.cat_file(f"{child}/zarr.json"))
        except (FileNotFoundError, ValueError):
            continue
        if info.get("node_type") == "array":
            arrays[child.rsplit("/", 1)[-1]] = list(info.get("shape") or [])
    return {
        "store": url,
        **{k: attrs.get(k) for k in STORE_FIELDS},
        "params": attrs.get("params"),
        "clips": arrays.get("mouth", arrays.get("wav", [None]))[0] if arrays else None,
        "arrays": arrays,
        "other_attrs": {k: v for k, v in attrs.items() if k not in (*STORE_FIELDS, "params")},
        "published": marker,
        "dvc_stage": None,
    }


# --------------------------------------------------------------------------- revisions


@dataclass
class StoreChange:
    """One changed ``.zarr`` output: the attrs on each side and the params that differ."""

    path: str
    change: str  # added | deleted | modified | renamed
    attrs_a: dict[str, Any] | None = None
    attrs_b: dict[str, Any] | None = None
    params_changed: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class AuditReport:
    """Everything that differs between ``rev_a`` and ``rev_b`` (``None``: the workspace)."""

    rev_a: str
    rev_b: str | None
    params: dict[str, dict[str, dict[str, Any]]]
    metrics: dict[str, dict[str, dict[str, Any]]]
    outputs: dict[str, list[str]]
    stores: list[StoreChange]

    @property
    def label_b(self) -> str:
        return self.rev_b or "workspace"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rev_b"] = self.label_b
        return data


def _output_paths(diff: Mapping[str, Any]) -> dict[str, list[str]]:
    """Changed outputs per kind; files inside a changed directory output fold into it.

    ``dvc diff`` lists a directory output (``s1.zarr/``) and then every file in it that
    changed; a store has thousands, so the report names the directory and how many of
    its files changed (``data/features/grid/s1.zarr/ (12 files)``).
    """
    outputs: dict[str, list[str]] = {}
    for kind in ("added", "deleted", "modified", "renamed", "not in cache", "not built"):
        paths = []
        for entry in diff.get(kind) or []:
            p = entry.get("path")
            if isinstance(p, Mapping):  # renamed: {"old": ..., "new": ...}
                p = f"{p.get('old')} -> {p.get('new')}"
            paths.append(str(p))
        # a directory output is listed with or without its trailing slash, then its files
        dirs = [p for p in paths
                if any(q != p and q.startswith(p.rstrip("/") + "/") for q in paths)]
        inside = {d: sum(1 for p in paths if p != d and p.startswith(d.rstrip("/") + "/"))
                  for d in dirs}
        folded = [f"{p} ({inside[p]} files)" if inside.get(p) else p for p in paths
                  if p in inside or not any(p.startswith(d.rstrip("/") + "/") for d in dirs)]
        outputs[kind.replace(" ", "_")] = sorted(folded)
    return outputs


def _store_root(path: str) -> str | None:
    """``data/x/s1.zarr/ (9 files)`` or ``data/x/s1.zarr/mouth/c/0`` -> ``data/x/s1.zarr``."""
    parts = path.split(" (")[0].replace("\\", "/").rstrip("/").split("/")
    for i, part in enumerate(parts):
        if part.endswith(".zarr"):
            return "/".join(parts[: i + 1])
    return None


def _store_changes(repo: Path, outputs: Mapping[str, list[str]], rev_a: str,
                   rev_b: str | None) -> list[StoreChange]:
    seen: dict[str, StoreChange] = {}
    for kind in ("modified", "added", "deleted"):
        for path in outputs.get(kind, []):
            root = _store_root(path)
            if root and root not in seen:
                seen[root] = StoreChange(path=root, change=kind)
    for change in seen.values():
        sides = []
        if change.change != "added":
            sides.append(("a", rev_a))
        if change.change != "deleted":
            sides.append(("b", rev_b))
        for side, rev in sides:
            try:
                setattr(change, f"attrs_{side}", store_attrs_at(repo, change.path, rev))
            except AuditError as err:
                change.notes.append(str(err))
        if change.attrs_a is not None or change.attrs_b is not None:
            change.params_changed = diff_mappings(
                (change.attrs_a or {}).get("params"), (change.attrs_b or {}).get("params"))
    return sorted(seen.values(), key=lambda c: c.path)


def audit_revisions(rev_a: str = "HEAD", rev_b: str | None = None,
                    repo: Path | None = None) -> AuditReport:
    """Compare two git revisions of a DVC project (``rev_b=None``: the workspace)."""
    repo = Path(repo or Path.cwd()).resolve()
    if not (repo / ".dvc").is_dir():
        raise AuditError(f"{repo} is not a DVC project (no .dvc folder); run inside the project")
    revs = _revs(rev_a, rev_b)
    params = _dvc_json(["params", "diff", *revs], repo)
    metrics = _dvc_json(["metrics", "diff", *revs], repo)
    diff = _reclassify_unrecorded(repo, _dvc_json(["diff", *revs], repo), rev_a, rev_b)
    outputs = _output_paths(diff)
    return AuditReport(rev_a=rev_a, rev_b=rev_b, params=params, metrics=metrics,
                       outputs=outputs, stores=_store_changes(repo, outputs, rev_a, rev_b))


# --------------------------------------------------------------------------- rendering


def _cell(value: Any) -> str:
    if isinstance(value, float):
        value = float(f"{value:.6g}")  # 0.039999999999999994 -> 0.04
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text.replace("|", "\\|").replace("\n", " ")


def _render_md(report: AuditReport) -> str:
    lines = [f"# lipflow audit: {report.rev_a} -> {report.label_b}", ""]

    lines += ["## Params", ""]
    rows = [(f, k, v) for f, keys in sorted(report.params.items()) for k, v in sorted(keys.items())]
    if rows:
        lines += ["| file | param | old | new |", "|---|---|---|---|"]
        lines += [f"| {f} | `{k}` | {_cell(v.get('old'))} | {_cell(v.get('new'))} |"
                  for f, k, v in rows]
    else:
        lines.append("No params changed.")

    lines += ["", "## Metrics", ""]
    rows = [(f, k, v) for f, keys in sorted(report.metrics.items())
            for k, v in sorted(keys.items())]
    if rows:
        lines += ["| file | metric | old | new | change |", "|---|---|---|---|---|"]
        lines += [f"| {f} | `{k}` | {_cell(v.get('old'))} | {_cell(v.get('new'))} | "
                  f"{_cell(v.get('diff', ''))} |" for f, k, v in rows]
    else:
        lines.append("No metrics changed.")

    lines += ["", "## Data outputs", ""]
    any_output = False
    not_built = report.outputs.get("not_built") or []
    if not_built:
        lines.append(f"- **not built** in the workspace ({len(not_built)} outputs, none recorded "
                     f"at {report.rev_a} either): `dvc repro` builds them, `dvc pull` fetches "
                     "them from a remote")
        any_output = True
    for kind, paths in report.outputs.items():
        if paths and kind != "not_built":
            any_output = True
            lines.append(f"- **{kind.replace('_', ' ')}**: " + ", ".join(f"`{p}`" for p in paths))
    if not any_output:
        lines.append("No data outputs changed.")

    if report.stores:
        lines += ["", "## Changed stores", ""]
    for store in report.stores:
        lines += [f"### `{store.path}` ({store.change})", ""]
        for side, attrs in (("a", store.attrs_a), ("b", store.attrs_b)):
            label = report.rev_a if side == "a" else report.label_b
            if attrs is not None:
                made = ", ".join(f"{k}={attrs.get(k)}" for k in STORE_FIELDS if k in attrs)
                lines.append(f"- {label}: {made}")
        if store.params_changed:
            lines += ["", "| recorded param | old | new |", "|---|---|---|"]
            lines += [f"| `{k}` | {_cell(v['old'])} | {_cell(v['new'])} |"
                      for k, v in store.params_changed.items()]
        elif store.attrs_a is not None and store.attrs_b is not None:
            lines.append("- recorded params are identical on both sides")
        lines += [f"- note: {n}" for n in store.notes]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render(report: AuditReport, fmt: Literal["md", "json"] = "md") -> str:
    """The report as Markdown (for people) or JSON (for scripts)."""
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2, sort_keys=True, default=str) + "\n"
    if fmt == "md":
        return _render_md(report)
    raise AuditError(f"unknown audit format '{fmt}'; choose md or json")


def render_store(info: Mapping[str, Any], fmt: Literal["md", "json"] = "md") -> str:
    """An :func:`audit_store` result as Markdown or JSON."""
    if fmt == "json":
        return json.dumps(dict(info), indent=2, sort_keys=True, default=str) + "\n"
    if fmt != "md":
        raise AuditError(f"unknown audit format '{fmt}'; choose md or json")
    lines = [f"# Store `{info['store']}`", ""]
    lines += [f"- {k}: {_cell(info.get(k))}" for k in STORE_FIELDS]
    lines.append(f"- clips: {info.get('clips')}")
    lines += [f"- array `{name}`: {shape}" for name, shape in info.get("arrays", {}).items()]
    stage = info.get("dvc_stage")
    if stage:
        lines += ["", f"## Made by DVC stage `{stage['stage']}`", "", f"`{stage.get('cmd')}`", ""]
        lines += [f"- dep `{d['path']}` md5 {d['md5']}" for d in stage.get("deps", [])]
        lines += [f"- stage param `{k}` = {_cell(v)}"
                  for f in stage.get("params", {}).values() for k, v in f.items()]
    lines += ["", "## Params", ""]
    flat = flatten(info.get("params") or {})
    lines += ["| param | value |", "|---|---|"] if flat else ["(none recorded)"]
    lines += [f"| `{k}` | {_cell(v)} |" for k, v in flat.items()]
    return "\n".join(lines) + "\n"
