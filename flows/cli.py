"""The ``lipflow`` command line: parses arguments and calls a flow. No logic lives here.

Every user-facing error (:class:`tasks.errors.LipflowError`) becomes one line on stderr
and exit code 2, never a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

import flows  # noqa: F401  - sets PREFECT_HOME and telemetry defaults before Prefect loads
from tasks.config import load_params, resolve
from tasks.errors import LipflowError

app = typer.Typer(
    help="lipflow: reproducible lip-to-speech data preparation, training and scoring.",
    no_args_is_help=True, pretty_exceptions_enable=False,
)
download_app = typer.Typer(help="Fetch a corpus into its raw layout and write its raw manifest.",
                           no_args_is_help=True)
app.add_typer(download_app, name="download")

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(func: F) -> F:
    """Turn a LipflowError into ``error: ...`` on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LipflowError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


RootOption = Annotated[Path | None, typer.Option(help="Corpus root (default: from params.yaml).")]
ProgressOption = Annotated[bool | None, typer.Option("--progress/--no-progress",
                                                     help="Progress bars (default: on a tty).")]


def _param_path(dotted: str) -> Path:
    params = load_params()
    node: Any = params
    for key in dotted.split("."):
        node = node[key]
    return resolve(node)


@download_app.command("grid")
@reports_errors
def download_grid(
    speakers: Annotated[list[str], typer.Argument(help="GRID ids s1..s34 (s21 has no video).")],
    mirror: Annotated[str, typer.Option(help="zenodo | sheffield | sample | base URL.")] = "zenodo",
    root: RootOption = None,
    progress: ProgressOption = None,
) -> None:
    """Download GRID speakers into ROOT/s{N}/*.mpg and ROOT/alignments/s{N}/*.align."""
    from flows.download import download_grid_flow
    from tasks.corpora.grid import validate_speakers

    validate_speakers(speakers)  # fail before Prefect starts, and before any traffic
    target = root or _param_path("grid.raw_root")
    manifests = download_grid_flow(speakers, target, mirror, progress=progress)
    for path in manifests:
        typer.echo(f"wrote {path}")


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
