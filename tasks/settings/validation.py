"""Check ``params.yaml`` data against the schema; give it back typed or as a plain dict.

Two views of the same validated data:

- *typed* (:func:`typed_section`, :class:`~lipflow.tasks.settings.schema.Params`) for new
  code: attributes, ``Literal`` values, every default filled in;
- *plain* (:func:`complete`): the nested dict the many ``params[...]`` readers use, with
  the values **as the file wrote them** (an int stays an int where a float is allowed) and
  the keys it left out added with the schema's defaults. Stores record
  ``params.preprocess`` and ``params.features`` in their attributes, so the project's own
  file must come back unchanged, key order included. Named collections
  (``lip2wav.presets``, ``splits``) are taken as written when the file has them (a file
  that names its own replaces the defaults whole); optional keys (see
  :mod:`~lipflow.tasks.settings.schema`) are left out unless set.

A problem becomes a :class:`~lipflow.tasks.common.errors.ConfigError` of one line naming
the file and the dotted key, e.g. ``params.yaml: unknown key 'preprocess.detect_evry_frames'``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.settings.schema import Params, is_optional_key

M = TypeVar("M", bound=BaseModel)


def _dotted(loc: tuple[Any, ...], raw: Any, kind: str) -> str:
    """The dotted key of an error, keeping only the steps that name keys of ``raw``.

    pydantic's locations also hold union members and discriminator tags (``'seen'`` in
    ``splits.sample.seen.speakers``), which are not keys of the file.
    """
    parts: list[str] = []
    node = raw
    for i, step in enumerate(loc):
        if isinstance(node, Mapping) and step in node:
            parts.append(str(step))
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            parts.append(str(step))
            node = node[step]
        elif i == len(loc) - 1 and kind == "missing":
            parts.append(str(step))
    return ".".join(parts)


def config_error(err: ValidationError, raw: Any, source: str, where: str = "") -> ConfigError:
    """One line for the first problem pydantic found (and how many more there are)."""
    problems = err.errors()
    first = problems[0]
    kind = first["type"]
    key = ".".join(p for p in (where, _dotted(tuple(first["loc"]), raw, kind)) if p)
    if kind == "extra_forbidden":
        text = f"unknown key '{key}'"
    elif kind == "missing":
        text = f"missing key '{key}'"
    elif kind == "optional_null":
        text = f"bad value for '{key}.{first['ctx']['key']}': {first['msg']}"
    elif kind == "value_error":
        reason = str(first["msg"]).removeprefix("Value error, ")
        text = f"bad value for '{key}': {reason}" if key else reason
    else:
        text = f"bad value for '{key}': {first['msg']} (got {first['input']!r})"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return ConfigError(f"{source}: {text}{more}")


def validate(model: type[M], data: Any, source: str = "params.yaml", where: str = "") -> M:
    """``data`` checked against ``model``; a :class:`ConfigError` of one line if it is not.

    ``where`` is the dotted section ``data`` comes from (``'features.mel'``), for the message.
    """
    if isinstance(data, model):
        return data
    try:
        return model.model_validate({} if data is None else data)
    except ValidationError as err:
        raise config_error(err, data, source, where) from None


def typed_section(model: type[M], data: Any, where: str, source: str = "params.yaml") -> M:
    """A section (possibly partial, or None for all defaults) as its typed model."""
    return validate(model, data, source, where)


def _as_built(model: BaseModel) -> dict[str, Any]:
    """The keys a default entry of a named collection was built with (no others)."""
    return {name: copy.deepcopy(getattr(model, name))
            for name in type(model).model_fields if name in model.model_fields_set}


def _plain_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return plain(value, {})
    if isinstance(value, dict):
        return {k: _as_built(v) if isinstance(v, BaseModel) else copy.deepcopy(v)
                for k, v in value.items()}
    return copy.deepcopy(value)


def plain(model: BaseModel, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The plain dict of a validated ``model`` read from ``raw`` (see module docstring)."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        current = getattr(model, key)
        if isinstance(current, BaseModel) and isinstance(value, Mapping):
            out[key] = plain(current, value)
        else:
            out[key] = copy.deepcopy(value)
    cls = type(model)
    for name in cls.model_fields:
        if name in out or (is_optional_key(cls, name) and name not in model.model_fields_set):
            continue
        out[name] = _plain_default(getattr(model, name))
    return out


def complete(data: Mapping[str, Any] | None, source: str = "params.yaml") -> dict[str, Any]:
    """Validate a whole ``params.yaml`` mapping; return it plain with defaults filled in."""
    raw = {} if data is None else data
    return plain(validate(Params, raw, source), raw)


def settings_of(params: Mapping[str, Any] | Params, source: str = "params.yaml") -> Params:
    """The typed view of a plain params dict (as :func:`complete` or ``load_params`` give)."""
    return validate(Params, params, source)
