"""Render ``docs/params.md`` from the schema, so the reference cannot drift from the code.

``python -m lipflow.tasks.settings.docs`` rewrites ``docs/params.md`` of the project;
``--check`` only reports (exit 1) when the committed file differs from the rendering.
One section per ``params.yaml`` section, one table row per key with its type, default
and meaning (the ``Field`` descriptions of :mod:`lipflow.tasks.settings.schema`).
"""

from __future__ import annotations

import argparse
import inspect
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from lipflow.tasks.settings.schema import (
    SPLIT_NOTES,
    ModelTrain,
    Params,
    Section,
    Sizes,
    is_optional_key,
)

DOC_PATH = Path("docs") / "params.md"

INTRO = """\
# `params.yaml` keys

<!-- Generated from tasks/settings/schema.py by `python -m lipflow.tasks.settings.docs`;
     edit the schema, not this file (tests/test_settings.py checks they agree). -->

`params.yaml` is grouped by stage and is the only configuration lipflow reads. Names
carry their units. Every key is typed and checked when the file is read: an unknown or
misspelt key, or a bad value, stops lipflow with one line naming the file and the key
(`params.yaml: unknown key 'preprocess.detect_evry_frames'`). A key the file leaves out
takes the default below (the defaults are the project's own `params.yaml`). `dvc.yaml`
lists, per stage, the keys that stage depends on, so a change re-runs exactly the stages
that read it; the top-level `params:` entry in `dvc.yaml` makes every key visible to
`dvc params diff` and `dvc exp show`.

*optional* keys have no value unless the file sets one.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _field_type(cls: type[BaseModel], name: str) -> str:
    """The type of ``cls.name``; an optional key cannot be null, so no "or null"."""
    annotation = cls.model_fields[name].annotation
    if is_optional_key(cls, name):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else annotation
    return _type_name(annotation)


def _type_name(annotation: Any) -> str:
    """A short, table-safe name of a type (``int or null``, ``'a' or 'b'``)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return " or ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return "mapping"
    if origin is typing.Annotated:
        return _type_name(args[0])
    return getattr(annotation, "__name__", str(annotation))


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def _default(cls: type[BaseModel], name: str, info: FieldInfo) -> str:
    if is_optional_key(cls, name):
        return "*optional*"
    if info.is_required():
        return "*required*"
    value = info.get_default(call_default_factory=True)
    if isinstance(value, dict):
        return ", ".join(f"`{k}`" for k in value) or "(none)"
    return f"`{_value(value)}`"


def _section_of(annotation: Any) -> type[Section] | None:
    return annotation if inspect.isclass(annotation) and issubclass(annotation, Section) else None


def _entries_of(annotation: Any) -> list[type[Section]]:
    """The entry models of a named collection (``dict[str, Model]``, or a union of them)."""
    if typing.get_origin(annotation) is not dict:
        return []
    entry = typing.get_args(annotation)[1]
    if typing.get_origin(entry) is typing.Annotated:
        entry = typing.get_args(entry)[0]
    return [a for a in (typing.get_args(entry) or (entry,)) if _section_of(a)]


def _title(cls: type[BaseModel]) -> tuple[str, str]:
    """(heading text after the key, prose below it) from the class docstring."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    first, _, rest = doc.partition("\n\n")
    head = first.split(" — ", 1)[-1].rstrip(".").replace("``", "`")
    return head, rest.replace("``", "`").strip()


def _overridable(cls: type[BaseModel]) -> list[str]:
    """Preset keys a ``train.<model>`` section may also set directly (they win)."""
    if not (issubclass(cls, ModelTrain) and issubclass(cls, Sizes)):
        return []
    sizes = next(b for b in cls.__mro__ if issubclass(b, Sizes) and not issubclass(b, ModelTrain))
    return list(sizes.model_fields)


def _table(cls: type[BaseModel], prefix: str, lines: list[str], level: int) -> None:
    overridable = _overridable(cls)
    rows, nested = [], []
    sizes: list[str] = []
    for name, info in cls.model_fields.items():
        if name in overridable:
            continue
        key = f"{prefix}.{name}"
        if overridable and _section_of(info.annotation):
            sizes.append(name)
            picker = (f"`{prefix}.preset` (else `train.size`)" if "preset" in cls.model_fields
                      else "`train.size`")
            rows.append(f"| `{key}` | preset | see `{prefix}.<size>` | the sizes used when "
                        f"{picker} is `{name}` |")
            continue
        if _section_of(info.annotation):
            nested.append((key, _section_of(info.annotation)))
            continue
        meaning = info.description or ""
        entries = _entries_of(info.annotation)
        if entries:
            nested.append((key, entries))
            meaning = f"{meaning}; see `{key}.<name>` below"
        rows.append(f"| `{key}` | {_cell(_field_type(cls, name))} | "
                    f"{_cell(_default(cls, name, info))} | {_cell(meaning)} |")
    if overridable:
        keys = ", ".join(f"`{k}`" for k in overridable)
        rows.append(f"| `{prefix}.<preset key>` | as in the presets | *optional* | any of {keys} "
                    f"set here wins over the `tiny`/`full` preset |")
    if rows:
        lines += ["| key | type | default | meaning |", "|---|---|---|---|", *rows, ""]
    if sizes:
        _sizes(cls, prefix, sizes, lines, level + 1)
    for key, sub in nested:
        if isinstance(sub, list):
            _collection(cls, key, sub, lines, level + 1)
        else:
            head, prose = _title(sub)
            lines += [f"{'#' * (level + 1)} `{key}` — {head}", ""]
            if prose:
                lines += [prose, ""]
            _table(sub, key, lines, level + 1)


def _sizes(cls: type[BaseModel], prefix: str, sizes: list[str], lines: list[str],
           level: int) -> None:
    """One table for a model's presets: a column of defaults per size."""
    presets = {s: cls.model_fields[s].get_default(call_default_factory=True) for s in sizes}
    model = cls.model_fields[sizes[0]].annotation
    head, _ = _title(model)
    lines += [f"{'#' * level} `{prefix}.<size>` — {head}", "",
              "| key | type | " + " | ".join(f"`{s}`" for s in sizes) + " | meaning |",
              "|---|---|" + "---|" * len(sizes) + "---|"]
    for name, info in model.model_fields.items():
        values = [f"`{_value(getattr(presets[s], name))}`"
                  if name in presets[s].model_fields_set else "*optional*" for s in sizes]
        cells = [f"`{prefix}.<size>.{name}`", _field_type(model, name), *values,
                 info.description or ""]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines.append("")


def _collection(owner: type[BaseModel], key: str, entries: list[type[Section]],
                lines: list[str], level: int) -> None:
    """A named collection: each entry kind's keys, then the default entries."""
    for entry in entries:
        head, prose = _title(entry)
        kind = entry.model_fields.get("kind")
        tag = f" with {head}" if kind is not None else f" — {head}"
        lines += [f"{'#' * level} `{key}.<name>`{tag}", ""]
        if prose:
            lines += [prose, ""]
        _table(entry, f"{key}.<name>", lines, level)
    defaults = owner.model_fields[key.rsplit(".", 1)[-1]].get_default(call_default_factory=True)
    columns: list[str] = []
    for model in defaults.values():
        columns += [c for c in type(model).model_fields
                    if c in model.model_fields_set and c not in columns]
    notes = key == "splits"
    head = ["name", *columns, *(["what for"] if notes else [])]
    lines += [f"Default `{key}`:", "", "| " + " | ".join(head) + " |",
              "|" + "---|" * len(head)]
    for name, model in defaults.items():
        cells = [f"`{name}`"] + [
            _cell(_value(getattr(model, c))) if c in model.model_fields_set else ""
            for c in columns]
        if notes:
            cells.append(_cell(SPLIT_NOTES.get(name, "")))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")


def render() -> str:
    """The whole ``docs/params.md``."""
    lines = [INTRO]
    for name, info in Params.model_fields.items():
        sub = _section_of(info.annotation)
        if sub is not None:
            head, prose = _title(sub)
            lines += [f"## `{name}` — {head}", ""]
            if prose:
                lines += [prose, ""]
            _table(sub, name, lines, 2)
        else:
            lines += [f"## `{name}` — {_cell(info.description or '')}", ""]
            _collection(Params, name, _entries_of(info.annotation), lines, 3)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check``, compare) the project's ``docs/params.md``."""
    from lipflow.tasks.settings.project import project_root

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if stale")
    args = parser.parse_args(argv)
    path = project_root() / DOC_PATH
    text = render()
    if args.check:
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        if current != text:
            print(f"{path} is stale: run python -m lipflow.tasks.settings.docs", file=sys.stderr)
            return 1
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
