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


RunnerOption = Annotated[str | None, typer.Option(
    help="thread | process | dask | ray (default: params runtime.runner, else process).")]
AddressOption = Annotated[str | None, typer.Option(
    help="An existing Dask scheduler or Ray cluster address.")]


@app.command("prepare")
@reports_errors
def prepare(
    corpus: Annotated[str, typer.Argument(help="grid, lip2wav, or a user corpus name.")],
    speakers: Annotated[list[str], typer.Argument(help="Speakers to prepare.")],
    root: RootOption = None,
    out: Annotated[Path | None, typer.Option(help="Features root (default: from params).")] = None,
    fps: Annotated[float | None, typer.Option(help="Frame rate for a user corpus.")] = None,
    runner: RunnerOption = None,
    address: AddressOption = None,
    progress: ProgressOption = None,
) -> None:
    """Preprocess videos and extract features into one Zarr store per speaker."""
    from flows.prepare import prepare_flow
    from flows.runners import runner_from_params
    from flows.settings import corpus_roots, speaker_settings
    from tasks.config import project_root

    params = load_params()
    raw_root, features_root = corpus_roots(params, corpus, root, out)
    per_speaker = {s: speaker_settings(params, corpus, s, fps) for s in speakers}
    settings = {s: v[0] for s, v in per_speaker.items()}
    record = per_speaker[speakers[0]][1]
    task_runner = runner_from_params(params, runner, address)
    flow_run = prepare_flow.with_options(task_runner=task_runner)
    for store in flow_run(corpus, speakers, raw_root, features_root, settings, record,
                          project_root(), progress):
        typer.echo(f"wrote {store}")


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
