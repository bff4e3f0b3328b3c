"""Where the project lives and which settings apply.

Every command and test resolves relative paths against the *project root*: the nearest
folder, from the working directory upwards, that holds ``params.yaml`` (a DVC project
keeps it next to ``dvc.yaml``). ``LIPFLOW_ROOT`` overrides the search, which tests use
to point at a temporary copy of the project. Outside any project the working directory
is the root, so ``data/raw/<corpus>`` lands where the user runs the command.

Which settings: the file named by ``LIPFLOW_PARAMS`` (the CLI's ``--params FILE`` sets
it, so worker processes see it too), else the project's ``params.yaml``, else none at all:
then every key has the typed schema's default (:mod:`lipflow.tasks.settings.schema`),
which ships inside the package. So ``lipflow track``, ``download`` and ``prepare`` run
from any folder; only the DVC stages need the checkout.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.settings.project_folder import PARAMS_FILE, find_project
from lipflow.tasks.settings.schema import Params
from lipflow.tasks.settings.validation import complete, validate

#: Environment variable naming a params file to use instead of the project's.
PARAMS_ENV = "LIPFLOW_PARAMS"
#: How messages name the settings when no file is read.
BUILT_IN = "lipflow's built-in defaults"


def project_root(start: Path | None = None) -> Path:
    """Return the project root (see module docstring); the working directory if none."""
    return find_project(start) or (start or Path.cwd()).resolve()


def params_file() -> Path | None:
    """The params file in use: ``LIPFLOW_PARAMS``, else the project's, else None (defaults).

    A ``LIPFLOW_PARAMS`` that names no file is an error rather than a silent fallback.
    """
    env = os.environ.get(PARAMS_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError(f"no params file at {path} ({PARAMS_ENV} / --params)")
        return path.resolve()
    project = find_project()
    if project is not None and (project / PARAMS_FILE).is_file():
        return project / PARAMS_FILE
    return None


def use_params_file(path: Path | None) -> None:
    """Make ``path`` the params file of this process and the processes it starts."""
    if path is None:
        return
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"no params file at {path} (--params)")
    os.environ[PARAMS_ENV] = str(path.resolve())


def _display(path: Path) -> str:
    """``path`` as a message names it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


#: libyaml's safe loader when PyYAML was built with it (the same mapping, ~10x faster:
#: 2 ms against 25 ms for params.yaml, read by every command and DVC stage), else PyYAML's
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_params_file(path: Path | None = None) -> tuple[dict[str, Any], str]:
    """The raw mapping of the params file (:func:`params_file` unless ``path``) and its name.

    With no file in use the mapping is empty (every key takes its default).
    """
    params_path = path or params_file()
    if params_path is None:
        return {}, BUILT_IN
    if not params_path.is_file():
        raise ConfigError(f"no {PARAMS_FILE} at {params_path}")
    name = _display(params_path)
    try:
        with params_path.open(encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=_SAFE_LOADER) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{name} is not valid YAML: {err}".splitlines()[0]) from err
    if not isinstance(data, dict):
        raise ConfigError(f"{name} must hold a mapping at the top level")
    return data, name


def load_params(path: Path | None = None) -> dict[str, Any]:
    """The params in use (see :func:`params_file`; ``path`` names another), validated, as a dict.

    Checked against :class:`~lipflow.tasks.settings.schema.Params`; keys the file leaves
    out get the schema's defaults, the rest come back as written (see
    :mod:`lipflow.tasks.settings.validation`). An unknown key or a bad value is a
    one-line :class:`ConfigError` naming the file and the key.
    """
    data, name = read_params_file(path)
    return complete(data, name)


def load_settings(path: Path | None = None) -> Params:
    """``params.yaml`` validated into the typed :class:`~lipflow.tasks.settings.schema.Params`."""
    data, name = read_params_file(path)
    return validate(Params, data, name)


def section(params: Mapping[str, Any], dotted: str) -> Any:
    """Return ``params['a']['b']`` for ``dotted='a.b'``, with a clear error when absent."""
    node: Any = params
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            raise ConfigError(f"params.yaml has no '{dotted}' (missing '{key}')")
        node = node[key]
    return node


def resolve(path: str | Path, root: Path | None = None) -> Path:
    """Resolve a params path (relative to the project root) to an absolute path."""
    p = Path(path)
    return p if p.is_absolute() else (root or project_root()) / p
