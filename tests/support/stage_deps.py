"""Which project files each DVC stage's command runs, and which of them its deps miss.

Why: DVC re-runs a stage only when one of its ``deps`` changes. A hand-kept list of
modules drifts as soon as a module is added or split (the list behind ``prepare`` once
named 7 of ~26 modules, so editing the 4:2:0 crop code left ``dvc status`` "up to
date"). This computes, from the source alone, the files each stage's ``lipflow`` command
can execute, so a test can insist that the deps cover all of them.

The closure is an over-approximation by design: starting from the CLI module's
module-level imports, the command function (with the CLI helpers it calls and the app
callbacks that run before every command), it follows every import anywhere in each
project module reached (module level and inside functions), every parent package's
``__init__.py``, modules named in ``"pkg.module:attr"`` strings (Prefect deployments),
and the package data (``[tool.setuptools.package-data]``) of every package reached.
Module names map to files through ``[tool.setuptools.package-dir]``; a project without
that table (the old flat layout) maps top-level packages to folders of the same name.
"""

from __future__ import annotations

import ast
import re
import shlex
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_VAR = re.compile(r"\$\{\s*([^}\s]+)\s*\}")
_ENTRYPOINT = re.compile(r"^([A-Za-z_]\w*(?:\.\w+)+):\w+$")

#: Stands in for the items of a ``foreach`` whose list is empty (``lip2wav.speakers: []``),
#: so the stage's command and deps are still checked.
PLACEHOLDER_ITEM = "ITEM"


class StageDepsError(Exception):
    """dvc.yaml names a command or layout this check cannot follow."""


@dataclass(frozen=True)
class Stage:
    """One resolved stage: ``prepare_grid@s1``, its command and its deps and outs."""

    name: str
    cmd: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]


# --- dvc.yaml -------------------------------------------------------------------------

def _lookup(context: Mapping[str, Any], dotted: str) -> Any:
    node: Any = context
    for key in dotted.split("."):
        if isinstance(node, Mapping) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            raise StageDepsError(f"dvc.yaml uses ${{{dotted}}}, which params.yaml lacks")
    return node


def _interpolate(value: Any, context: Mapping[str, Any]) -> Any:
    """DVC's ``${...}`` templating, for what dvc.yaml uses: whole values and substrings."""
    if isinstance(value, str):
        whole = _VAR.fullmatch(value.strip())
        if whole:
            return _lookup(context, whole.group(1))
        return _VAR.sub(lambda m: str(_lookup(context, m.group(1))), value)
    if isinstance(value, list):
        return [_interpolate(v, context) for v in value]
    if isinstance(value, dict):
        return {_interpolate(k, context): _interpolate(v, context) for k, v in value.items()}
    return value


def _paths(entries: Iterable[Any]) -> tuple[str, ...]:
    """Paths of a deps/outs list, whose entries are strings or ``{path: options}``."""
    paths = []
    for entry in entries or ():
        paths.extend(entry.keys() if isinstance(entry, dict) else [entry])
    return tuple(_normal(str(p)) for p in paths)


def _normal(path: str) -> str:
    return Path(path).as_posix().removeprefix("./").rstrip("/")


def load_stages(root: Path) -> list[Stage]:
    """Every stage of ``root/dvc.yaml``, with ``foreach`` expanded over params.yaml."""
    dvc = yaml.safe_load((root / "dvc.yaml").read_text()) or {}
    params_file = root / "params.yaml"
    params = yaml.safe_load(params_file.read_text()) if params_file.is_file() else {}
    params = params or {}
    stages = []
    for name, spec in (dvc.get("stages") or {}).items():
        if "foreach" not in spec:
            instances = [(name, spec, params)]
        else:
            items = _interpolate(spec["foreach"], params)
            pairs = list(items.items()) if isinstance(items, dict) else list(enumerate(items))
            if not pairs:
                pairs = [(PLACEHOLDER_ITEM, PLACEHOLDER_ITEM)]
            instances = []
            for key, item in pairs:
                label = key if isinstance(items, dict) else item
                context = {**params, "item": item, "key": key}
                instances.append((f"{name}@{label}", spec["do"], context))
        for stage_name, body, context in instances:
            body = _interpolate(body, context)
            cmd = body["cmd"] if isinstance(body["cmd"], str) else " && ".join(body["cmd"])
            stages.append(Stage(stage_name, " ".join(cmd.split()), _paths(body.get("deps")),
                                _paths([*(body.get("outs") or []),
                                        *(body.get("metrics") or []),
                                        *(body.get("plots") or [])])))
    return stages


# --- pyproject.toml -------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """How the project's module names map to files under ``root``."""

    root: Path
    package_dir: Mapping[str, str]
    package_data: Mapping[str, tuple[str, ...]]
    scripts: Mapping[str, str]

    @classmethod
    def read(cls, root: Path) -> Layout:
        pyproject = tomllib.loads((root / "pyproject.toml").read_text())
        setuptools = pyproject.get("tool", {}).get("setuptools", {})
        return cls(root=root,
                   package_dir=dict(setuptools.get("package-dir") or {}),
                   package_data={k: tuple(v) for k, v in
                                 (setuptools.get("package-data") or {}).items()},
                   scripts=dict(pyproject.get("project", {}).get("scripts") or {}))

    def folder(self, module: str) -> Path | None:
        """Where the package or module ``module`` would live, without a suffix."""
        parts = module.split(".")
        for cut in range(len(parts), 0, -1):
            prefix = ".".join(parts[:cut])
            if prefix in self.package_dir:
                return self.root / self.package_dir[prefix] / Path(*parts[cut:])
        if "" in self.package_dir:
            return self.root / self.package_dir[""] / Path(*parts)
        if not self.package_dir:  # old layout: top-level packages are folders of the root
            return self.root / Path(*parts)
        return None

    def file(self, module: str) -> Path | None:
        """The project file that importing ``module`` executes, or None if not ours."""
        base = self.folder(module)
        if base is None:
            return None
        for candidate in (base.with_name(base.name + ".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        return None

    def module_of(self, path: Path) -> str:
        """The module name of a project file (inverse of :meth:`file`)."""
        rel = path.relative_to(self.root)
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        for name, folder in sorted(self.package_dir.items(), key=lambda kv: -len(kv[1])):
            folder_parts = Path(folder).parts if folder else ()
            if tuple(parts[:len(folder_parts)]) == folder_parts:
                return ".".join([*filter(None, [name]), *parts[len(folder_parts):]])
        return ".".join(parts)


# --- imports --------------------------------------------------------------------------

def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join([*base, *filter(None, [node.module])])


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every module an import statement anywhere in ``tree`` may load, parents included."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(module, is_package, node)
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _ENTRYPOINT.match(node.value)
            if match:
                names.add(match.group(1))
    parents = {".".join(n.split(".")[:i]) for n in names for i in range(1, n.count(".") + 1)}
    return {n for n in names | parents if n}


def import_closure(layout: Layout, seeds: Iterable[str],
                   expanded: Iterable[Path] = ()) -> set[Path]:
    """The project files reached from the modules ``seeds``, following every import.

    Files in ``expanded`` are part of the closure but their imports are not followed: the
    CLI module, whose imports the seeds already account for command by command.
    """
    seen: set[Path] = set(expanded)
    todo = list(seeds)
    while todo:
        path = layout.file(todo.pop())
        if path is None or path in seen:
            continue
        seen.add(path)
        module = layout.module_of(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        todo.extend(imported_modules(tree, module, path.name == "__init__.py"))
    return seen


def package_data(layout: Layout, files: Iterable[Path]) -> set[Path]:
    """Package data shipped by the packages that ``files`` belong to."""
    data: set[Path] = set()
    for folder in {f.parent for f in files}:
        package = layout.module_of(folder / "__init__.py")
        for pattern in layout.package_data.get(package, ()):
            data.update(p for p in folder.glob(pattern) if p.is_file())
    return data


# --- the CLI --------------------------------------------------------------------------

def _decorator_call(decorator: ast.expr) -> tuple[str, str, ast.Call] | None:
    """``@obj.attr(...)`` as (obj, attr, call)."""
    if (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
            and isinstance(decorator.func.value, ast.Name)):
        return decorator.func.value.id, decorator.func.attr, decorator
    return None


def _name_keyword(call: ast.Call, default: str) -> str:
    for keyword in call.keywords:
        if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
            return str(keyword.value.value)
    return default


def _command_name(call: ast.Call, default: str) -> str:
    """``@app.command("name")``, ``@app.command(name="name")`` or the default."""
    if call.args and isinstance(call.args[0], ast.Constant):
        return str(call.args[0].value)
    return _name_keyword(call, default)


def _cli_app(tree: ast.Module) -> str | None:
    """The ``"module:attr"`` of a module-level ``CLI_APP = ...`` string, if any."""
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "CLI_APP"
                                                 for t in node.targets)
                and isinstance(node.value, ast.Constant) and ":" in str(node.value.value)):
            return str(node.value.value)
    return None


@dataclass(frozen=True)
class Cli:
    """A typer CLI read from its module's source: commands, groups and callbacks."""

    module: str
    path: Path
    tree: ast.Module
    app: str
    commands: Mapping[tuple[str, str], ast.FunctionDef]  # (typer object, command name)
    groups: Mapping[tuple[str, str], str]  # (typer object, group name) -> typer object
    callbacks: Mapping[str, tuple[ast.FunctionDef, ...]]
    #: an entry point in front of the typer app (a module-level ``CLI_APP = "m:app"``
    #: names the app it runs): its file, and the modules it imports, for every command
    entry_path: Path | None = None
    entry_seeds: frozenset[str] = frozenset()

    @classmethod
    def read(cls, layout: Layout, script: str) -> Cli:
        target = layout.scripts.get(script)
        if target is None or ":" not in target:
            raise StageDepsError(f"pyproject.toml has no [project.scripts] entry '{script}'")
        module, app = target.split(":", 1)
        path = layout.file(module)
        if path is None:
            raise StageDepsError(f"script '{script}' names {module}, which is not a project file")
        tree = ast.parse(path.read_text(), filename=str(path))
        entry_path, entry_seeds = None, frozenset[str]()
        named = _cli_app(tree)
        if named is not None:
            entry_path, entry_seeds = path, frozenset(imported_modules(tree, module, False))
            module, app = named.split(":", 1)
            path = layout.file(module)
            if path is None:
                raise StageDepsError(f"{entry_path} runs {module}, which is not a project file")
            tree = ast.parse(path.read_text(), filename=str(path))
        commands: dict[tuple[str, str], ast.FunctionDef] = {}
        callbacks: dict[str, list[ast.FunctionDef]] = {}
        groups: dict[tuple[str, str], str] = {}
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                for decorator in node.decorator_list:
                    found = _decorator_call(decorator)
                    if found and found[1] == "command":
                        default = node.name.replace("_", "-")
                        commands[(found[0], _command_name(found[2], default))] = node
                    elif found and found[1] == "callback":
                        callbacks.setdefault(found[0], []).append(node)
            elif (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
                  and (found := _decorator_call(node.value)) and found[1] == "add_typer"):
                call = found[2]  # app.add_typer(sub_app, name="group")
                if call.args and isinstance(call.args[0], ast.Name):
                    sub = call.args[0].id
                    groups[(found[0], _name_keyword(call, sub))] = sub
        return cls(module, path, tree, app, commands, groups,
                   {k: tuple(v) for k, v in callbacks.items()}, entry_path, entry_seeds)

    def command(self, argv: list[str]) -> tuple[ast.FunctionDef, list[ast.FunctionDef]]:
        """The function ``argv`` (after the script name) runs, and the callbacks before it."""
        words = [w for w in argv if not w.startswith("-")]
        typer_obj, callbacks = self.app, list(self.callbacks.get(self.app, ()))
        for word in words:
            if (typer_obj, word) in self.groups:
                typer_obj = self.groups[(typer_obj, word)]
                callbacks.extend(self.callbacks.get(typer_obj, ()))
                continue
            if (typer_obj, word) in self.commands:
                return self.commands[(typer_obj, word)], callbacks
            break
        raise StageDepsError(f"no command for `{' '.join(argv)}` in {self.module}")

    def seeds(self, function: ast.FunctionDef, callbacks: Iterable[ast.FunctionDef]) -> set[str]:
        """Modules the CLI loads to run ``function``: its module-level imports, then the
        imports inside the command, the CLI helpers it calls (transitively), its callbacks."""
        is_package = False
        helpers = {n.name: n for n in self.tree.body if isinstance(n, ast.FunctionDef)}
        module_level = ast.Module(
            body=[n for n in self.tree.body if isinstance(n, ast.Import | ast.ImportFrom)],
            type_ignores=[])
        parts = self.module.split(".")
        seeds = imported_modules(module_level, self.module, is_package)
        seeds |= {".".join(parts[:i]) for i in range(1, len(parts))}  # its own packages
        todo, done = [function, *callbacks], set()
        while todo:
            node = todo.pop()
            if node.name in done:
                continue
            done.add(node.name)
            seeds |= imported_modules(node, self.module, is_package)
            todo.extend(helpers[n.id] for n in ast.walk(node)
                        if isinstance(n, ast.Name) and n.id in helpers)
        return seeds


# --- the check ------------------------------------------------------------------------

def stage_closure(layout: Layout, cli_cache: dict[str, Cli], stage: Stage) -> set[str]:
    """Project files (relative paths) that ``stage``'s command may execute or read."""
    files: set[Path] = set()
    for part in re.split(r"&&|;|\|\|?", stage.cmd):
        argv = shlex.split(part)
        if not argv:
            continue
        if argv[0] not in layout.scripts:
            raise StageDepsError(f"stage {stage.name}: cannot follow `{argv[0]}`; "
                                 f"only [project.scripts] commands are understood")
        cli = cli_cache.get(argv[0]) or cli_cache.setdefault(argv[0], Cli.read(layout, argv[0]))
        function, callbacks = cli.command(argv[1:])
        code = import_closure(layout, cli.seeds(function, callbacks) | cli.entry_seeds,
                              {cli.path, *filter(None, [cli.entry_path])})
        files |= code | package_data(layout, code)
    return {p.relative_to(layout.root).as_posix() for p in files}


def covers(dep: str, path: str) -> bool:
    """A dep covers a file when it is the file or a folder above it."""
    return path == dep or path.startswith(dep + "/")


def uncovered(root: Path) -> dict[str, list[str]]:
    """Per stage, the closure files that none of its deps covers (empty: all covered)."""
    layout, clis = Layout.read(root), {}
    report = {}
    for stage in load_stages(root):
        missing = sorted(f for f in stage_closure(layout, clis, stage)
                         if not any(covers(d, f) for d in stage.deps))
        if missing:
            report[stage.name] = missing
    return report


def absent_deps(root: Path) -> dict[str, list[str]]:
    """Per stage, deps that are neither in the tree nor made by some stage's outs."""
    stages = load_stages(root)
    outs = [o for s in stages for o in s.outs]
    report = {}
    for stage in stages:
        absent = [d for d in stage.deps if not (root / d).exists()
                  and not any(covers(o, d) for o in outs)]
        if absent:
            report[stage.name] = absent
    return report


def format_report(report: Mapping[str, list[str]]) -> str:
    """One block per stage, one path per line."""
    return "\n".join(f"{stage}:\n" + "\n".join(f"  {p}" for p in paths)
                     for stage, paths in report.items())
