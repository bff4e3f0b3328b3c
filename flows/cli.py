"""The ``lipflow`` command line: parses arguments and calls a flow. No logic lives here.

Every user-facing error (:class:`lipflow.tasks.common.errors.LipflowError`) becomes one line on
stderr and exit code 2, never a traceback.

Order inside every command: check the inputs (arguments, lists, speakers, paths, params),
then :func:`_orchestrate` (find or start the project's Prefect server), then import the
flow. Why: importing Prefect and reaching a server take seconds; a typo must be answered
before either, in well under 2 s (``benchmarks/cli_latency.py`` measures it).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from lipflow.tasks.common.errors import LipflowError
from lipflow.tasks.settings.paths import raw_root
from lipflow.tasks.settings.project import load_params

app = typer.Typer(
    help="lipflow: reproducible lip-to-speech data preparation, training and scoring.",
    no_args_is_help=True, pretty_exceptions_enable=False,
)
download_app = typer.Typer(help="Fetch a corpus into its raw layout and write its raw manifest.",
                           no_args_is_help=True)
app.add_typer(download_app, name="download")


ParamsOption = Annotated[Path | None, typer.Option(
    "--params", help="A params file to use instead of the project's params.yaml (also: "
    "LIPFLOW_PARAMS). Default: the project's, or the built-in defaults outside a project.")]


@app.callback()
def _configure(params: ParamsOption = None) -> None:
    """Set lipflow's process defaults (PREFECT_HOME, telemetry off) before Prefect loads."""
    from lipflow.tasks.common.process import configure_process

    _use_params(params)
    configure_process()


def _use_params(path: Path | None) -> None:
    """``--params FILE``: this process and its workers read FILE (a missing one: exit 2)."""
    from lipflow.tasks.settings.project import use_params_file

    try:
        use_params_file(path)
    except LipflowError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None


server_app = typer.Typer(help="The project's local Prefect server (UI, API) flows report to.",
                         no_args_is_help=True)
app.add_typer(server_app, name="server")

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


RunnerOption = Annotated[str | None, typer.Option(
    help="thread | process | dask | ray (default: params runtime.runner, else process).")]
AddressOption = Annotated[str | None, typer.Option(
    help="An existing Dask scheduler or Ray cluster address.")]
MaxWorkersOption = Annotated[int | None, typer.Option(help="Local pool size.")]


def _orchestrate() -> None:
    """Point this process (and the workers and DVC stages it spawns) at a Prefect API.

    Called once the inputs are checked and before a flow is imported: the project's local
    server is reused, or started once (``lipflow.tasks.common.prefect_server``); flows
    run without Prefect's heartbeat thread unless asked (``lipflow.flows.prefect_settings``).
    """
    from lipflow.flows.prefect_settings import use_command_settings
    from lipflow.tasks.common.prefect_server import ensure_server, ephemeral_mode

    if not ephemeral_mode():
        _start_command_server()  # first, so its imports overlap a Prefect server's start
    ensure_server()
    use_command_settings()


def _start_command_server() -> None:
    """Start the project's warm command server for the next commands, if none runs.

    Only for a command that came through the ``lipflow`` launcher (which recorded the
    environment it started with, the one later commands will send); never in tests that
    call :data:`app` in-process. See :mod:`lipflow.flows.command_server`.
    """
    from lipflow.flows import launcher

    if launcher.RAW_ENV is None:
        return
    from lipflow.flows.command_server import start_in_background
    from lipflow.tasks.common.prefect_server import prefect_home

    start_in_background(prefect_home(), launcher.RAW_ENV)


def _check_runner(runner: str | None, address: str | None,
                  max_workers: int | None = None) -> None:
    """Fail on a bad --runner/--address/--max-workers (or params ``runtime:``) before Prefect."""
    from lipflow.flows.runners import check_runner, runtime_settings

    check_runner(*runtime_settings(load_params(), runner, address, max_workers))


def _on_runner(flow: Any, runner: str | None, address: str | None,
               max_workers: int | None = None) -> Any:
    """The flow with the task runner chosen by --runner/--address or params ``runtime:``."""
    from lipflow.flows.runners import runner_from_params

    return flow.with_options(
        task_runner=runner_from_params(load_params(), runner, address, max_workers))


def _check_file(path: Path | None, what: str) -> None:
    """An optional input file that must exist when given."""
    from lipflow.tasks.common.errors import ConfigError

    if path is not None and not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")


def _check_download_options(cookies: Path | None, sleep: float | None) -> None:
    from lipflow.tasks.common.errors import ConfigError

    _check_file(cookies, "cookies file")
    if sleep is not None and sleep < 0:
        raise ConfigError(f"--sleep must be >= 0 seconds, got {sleep:g}")


@download_app.command("grid")
@reports_errors
def download_grid(
    speakers: Annotated[list[str], typer.Argument(help="GRID ids s1..s34 (s21 has no video).")],
    mirror: Annotated[str, typer.Option(help="zenodo | sheffield | sample | base URL.")] = "zenodo",
    root: RootOption = None,
    runner: RunnerOption = None,
    address: AddressOption = None,
    progress: ProgressOption = None,
) -> None:
    """Download GRID speakers into ROOT/s{N}/*.mpg and ROOT/alignments/s{N}/*.align."""
    from lipflow.tasks.common.errors import ConfigError
    from lipflow.tasks.corpora.grid import mirror_urls, sample_speakers, validate_speakers

    speakers = validate_speakers(speakers)  # fail before Prefect starts, and before any traffic
    if mirror.strip().lower() == "sample":  # the same check download_grid makes, sooner
        have = sample_speakers()
        missing = [s for s in speakers if s not in have]
        if missing:
            raise ConfigError(f"the bundled GRID sample has no speaker {', '.join(missing)}; "
                              f"it has {', '.join(have)}")
    else:
        mirror_urls(mirror, speakers[0])  # checks the mirror's name or URL, no traffic
    target = root or raw_root(load_params(), "grid")
    _check_runner(runner, address)
    _orchestrate()
    from lipflow.flows.download import download_grid_flow

    flow = _on_runner(download_grid_flow, runner, address)
    manifests = flow(speakers, target, mirror, progress=progress)
    for path in manifests:
        typer.echo(f"wrote {path}")


def _youtube_options(params_section: dict[str, Any], url_template: str | None,
                     cookies: Path | None, rate_limit: str | None,
                     sleep: float | None, progress: bool | None) -> dict[str, Any]:
    from lipflow.tasks.fetch.youtube import WATCH_URL_TEMPLATE

    return {
        "url_template": url_template or WATCH_URL_TEMPLATE,
        "max_height_px": int(params_section.get("max_height_px", 720)),
        "cookies": cookies, "rate_limit": rate_limit, "sleep_s": sleep, "progress": progress,
    }


UrlTemplateOption = Annotated[str | None, typer.Option(
    help="Where a video id is fetched from, with {id} (default: the YouTube watch URL); "
         "for mirrors and offline tests.")]
CookiesOption = Annotated[Path | None, typer.Option(help="A cookies.txt for yt-dlp.")]
RateOption = Annotated[str | None, typer.Option("--rate-limit", help="Bytes/s, e.g. 2M.")]
SleepOption = Annotated[float | None, typer.Option(help="Seconds to sleep between videos.")]


@download_app.command("lip2wav")
@reports_errors
def download_lip2wav(
    speakers: Annotated[list[str], typer.Argument(help="chem, chess, dl, eh, hs.")],
    split: Annotated[str, typer.Option(help="train | val | test | all")] = "test",
    limit: Annotated[int | None, typer.Option(help="At most N videos per speaker.")] = None,
    root: RootOption = None,
    cookies: CookiesOption = None,
    rate_limit: RateOption = None,
    sleep: SleepOption = None,
    url_template: UrlTemplateOption = None,
    runner: RunnerOption = None,
    address: AddressOption = None,
    progress: ProgressOption = None,
) -> None:
    """Download Lip2Wav speakers' videos (from their published lists) through yt-dlp."""
    from lipflow.tasks.corpora.lip2wav import validate_speakers
    from lipflow.tasks.fetch.video_lists import lip2wav_video_ids

    for speaker in validate_speakers(speakers):
        lip2wav_video_ids(speaker, split, limit)  # checks split and limit against the lists
    _check_download_options(cookies, sleep)
    params = load_params()
    options = _youtube_options(params.get("lip2wav", {}), url_template, cookies, rate_limit,
                               sleep, progress)
    options.update(split=split, limit=limit)
    _check_runner(runner, address)
    _orchestrate()
    from lipflow.flows.download import download_lip2wav_flow

    flow = _on_runner(download_lip2wav_flow, runner, address)
    results = flow(speakers, root or raw_root(load_params(), "lip2wav"), options)
    for result in results:
        typer.echo(f"{result.speaker}:\n{result.summary.table()}\nwrote {result.manifest}")


@download_app.command("youtube")
@reports_errors
def download_youtube(
    list_file: Annotated[Path, typer.Option("--list", help="File of YouTube ids or URLs.")],
    speaker: Annotated[str, typer.Option(help="Name for this speaker.")],
    language: Annotated[str, typer.Option(help="Language code, e.g. en, de, hi.")],
    corpus: Annotated[str, typer.Option(help="Corpus name.")] = "youtube",
    root: RootOption = None,
    cookies: CookiesOption = None,
    rate_limit: RateOption = None,
    sleep: SleepOption = None,
    url_template: UrlTemplateOption = None,
    progress: ProgressOption = None,
    params_file: ParamsOption = None,
) -> None:
    """Download a user's own speaker (any language) from a list of ids or URLs."""
    _use_params(params_file)
    from lipflow.tasks.corpora.youtube import check_language, check_name
    from lipflow.tasks.fetch.video_lists import read_user_list

    check_name(speaker, "speaker")
    check_name(corpus, "corpus")
    check_language(language)
    read_user_list(list_file)  # a bad line is reported now, not from inside the flow
    _check_download_options(cookies, sleep)
    params = load_params()
    options = _youtube_options(params.get(corpus, {}), url_template, cookies, rate_limit,
                               sleep, progress)
    target = root or raw_root(load_params(), corpus)
    _orchestrate()
    from lipflow.flows.download import download_youtube_flow

    result = download_youtube_flow(list_file, speaker, language, target, corpus, options)
    typer.echo(f"{result.speaker}:\n{result.summary.table()}\nwrote {result.manifest}")


NoAudioOption = Annotated[bool, typer.Option(
    "--no-audio", help="Keep videos without an audio stream, as silent clips "
    "(params preprocess.require_audio: false).")]


def _audio_rule(params: dict[str, Any], no_audio: bool) -> dict[str, Any]:
    """``params`` with ``preprocess.require_audio`` false when ``--no-audio`` was given."""
    if no_audio:
        params["preprocess"] = {**params["preprocess"], "require_audio": False}
    return params


@download_app.command("local")
@reports_errors
def download_local(
    src_dir: Annotated[Path, typer.Argument(help="Folder of videos already on disk.")],
    speaker: Annotated[str, typer.Option(help="Name for this speaker.")],
    language: Annotated[str, typer.Option(help="Language code, e.g. en, de, hi.")],
    corpus: Annotated[str, typer.Option(help="Corpus name.")] = "local",
    root: RootOption = None,
    no_audio: NoAudioOption = False,
    params_file: ParamsOption = None,
) -> None:
    """Register local videos as a corpus speaker (raw layout and manifest).

    ROOT defaults to data/raw/<corpus> under the project, or under the working folder.
    """
    _use_params(params_file)
    from lipflow.tasks.common.errors import ConfigError
    from lipflow.tasks.corpora.youtube import check_language, check_name

    check_name(speaker, "speaker")
    check_name(corpus, "corpus")
    check_language(language)
    if not src_dir.is_dir():
        raise ConfigError(f"{src_dir} is not a folder of videos")
    target = root or raw_root(load_params(), corpus)
    require_audio = _audio_rule(load_params(), no_audio)["preprocess"]["require_audio"]
    _orchestrate()
    from lipflow.flows.download import register_local_flow

    manifest = register_local_flow(src_dir, speaker, language, target, corpus, require_audio)
    typer.echo(f"wrote {manifest}")


DetectorOption = Annotated[str | None, typer.Option(
    help="short_range | full_range | auto (default: the corpus' params, else "
         "preprocess.detector: auto).")]


@app.command("track")
@reports_errors
def track(
    video: Annotated[Path, typer.Argument(help="Any mp4/mpg/avi with a face.")],
    out: Annotated[Path, typer.Argument(help="Output video with face box and mouth drawn.")],
    crops: Annotated[Path | None, typer.Option(
        help="Save mouth crops of kept windows as PNGs here.")] = None,
    all_crops: Annotated[bool, typer.Option(
        "--all-crops", help="With --crops: also rejected windows' crops (where a face was "
        "found), which prepare does not store.")] = False,
    corpus: Annotated[str, typer.Option(
        help="Whose settings: grid, lip2wav (with --speaker) or a user corpus.")] = "local",
    speaker: Annotated[str, typer.Option(help="A Lip2Wav speaker's preset.")] = "",
    fps: Annotated[float | None, typer.Option(
        help="Frame rate (default: the corpus', as prepare resamples).")] = None,
    detector: DetectorOption = None,
    progress: ProgressOption = None,
    params_file: ParamsOption = None,
) -> None:
    """Show what prepare does with VIDEO: its windows, face track, mouth window and verdicts."""
    _use_params(params_file)
    _check_detector(detector)
    if not video.is_file():  # before OpenCV and MediaPipe load (~2 s on a slow machine)
        from lipflow.tasks.common.errors import MediaError

        raise MediaError(f"{video}: no such file")
    from lipflow.tasks.faces.overlay import write_track_video
    from lipflow.tasks.prepare.settings import speaker_settings

    settings, _ = speaker_settings(load_params(), corpus, speaker, fps, detector)
    summary = write_track_video(video, out, crops_dir=crops, settings=settings,
                                all_crops=all_crops, progress=progress)
    typer.echo(f"wrote {out}: {summary.num_frames} frames at {summary.fps:g} fps, "
               f"{summary.num_chunks} windows, {summary.kept_chunks} kept, "
               f"detection rate {summary.detection_rate:.2f}")
    if summary.crops_dir:
        typer.echo(f"wrote {summary.num_crops} mouth crops to {summary.crops_dir}")
    for reason in summary.rejected_chunks:
        typer.echo(f"warning: {reason}", err=True)


def _check_detector(detector: str | None) -> None:
    """A bad ``--detector`` is answered before anything heavy is imported."""
    from typing import get_args

    from lipflow.tasks.common.errors import ConfigError
    from lipflow.tasks.settings.schema import Detector

    if detector is not None and detector not in get_args(Detector):
        raise ConfigError(f"--detector must be one of {', '.join(get_args(Detector))}, "
                          f"not {detector!r}")


def _check_prepare_inputs(corpus: str, speakers: list[str], root: Path | None,
                          out: str | None, fps: float | None, runner: str | None,
                          address: str | None, max_workers: int | None,
                          detector: str | None = None) -> None:
    """Runner, speakers and raw inputs of ``lipflow prepare``, with light imports only.

    Why before ``speaker_jobs``: importing the prepare code loads SciPy and friends (2-4 s);
    a misspelt speaker or a missing download is answered before that (as a missing raw
    manifest: the download commands own the speaker rules, and importing them here would
    make the prepare stages depend on the download code). Presets are checked by
    ``speaker_jobs`` itself, still before Prefect.
    """
    from lipflow.tasks.common.errors import ConfigError
    from lipflow.tasks.common.object_store import check_bucket, is_url
    from lipflow.tasks.settings.paths import corpus_roots, raw_manifest_path

    _check_runner(runner, address, max_workers)
    _check_detector(detector)
    raw, features = corpus_roots(load_params(), corpus, root, out)
    if is_url(features):  # a misspelt bucket or unset credentials: now, not after the work
        check_bucket(str(features))
    if not raw.is_dir():
        raise ConfigError(f"no raw {corpus} corpus at {raw}: run `lipflow download {corpus}` "
                          "first, or give --root")
    for speaker in speakers:
        manifest = raw_manifest_path(raw, speaker)
        if not manifest.is_file():
            raise ConfigError(f"no raw manifest at {manifest}: run `lipflow download {corpus}` "
                              f"for {speaker} first")


@app.command("prepare")
@reports_errors
def prepare(
    corpus: Annotated[str, typer.Argument(help="grid, lip2wav, or a user corpus name.")],
    speakers: Annotated[list[str], typer.Argument(help="Speakers to prepare.")],
    root: RootOption = None,
    out: Annotated[str | None, typer.Option(
        help="Features root: a folder or an s3:// URL (default: from params).")] = None,
    fps: Annotated[float | None, typer.Option(
        help="Frame rate (default: the corpus' params; user corpora: user_corpus.fps, 25).")
    ] = None,
    detector: DetectorOption = None,
    runner: RunnerOption = None,
    address: AddressOption = None,
    max_workers: MaxWorkersOption = None,
    task_seconds: Annotated[float | None, typer.Option(
        help="Seconds of video per task (default: params runtime.task_seconds_of_video).")
    ] = None,
    progress: ProgressOption = None,
    no_audio: NoAudioOption = False,
    params_file: ParamsOption = None,
) -> None:
    """Preprocess videos and extract features into one Zarr store per speaker.

    An interrupted run resumes: the next one computes only the batches still missing.
    """
    _use_params(params_file)
    _check_prepare_inputs(corpus, speakers, root, out, fps, runner, address, max_workers,
                          detector)
    from lipflow.tasks.prepare.batches import task_seconds as task_seconds_of_video
    from lipflow.tasks.prepare.speaker import speaker_jobs
    from lipflow.tasks.settings.project import project_root

    params = _audio_rule(load_params(), no_audio)
    jobs = speaker_jobs(params, corpus, speakers, root, out, fps, detector)  # errors before Prefect
    seconds = task_seconds_of_video(params, task_seconds)
    _check_runner(runner, address, max_workers)
    _orchestrate()
    from lipflow.flows.prepare import prepare_flow

    flow_run = _on_runner(prepare_flow, runner, address, max_workers)
    for prepared in flow_run(jobs, project_root(), progress, seconds):
        if prepared.summary.resumed:
            typer.echo(prepared.summary.resume_line())
        typer.echo(prepared.summary.line())
        typer.echo(f"wrote {prepared.store}")


ModelArgument = Annotated[str, typer.Argument(help="A model of lipflow.models.registry.")]


class _ModelCommand(typer.core.TyperCommand):
    """A command whose MODEL help lists the names of ``lipflow.models.registry.MODELS``.

    Why filled in at help time: importing the registry at the top of this module would make
    every command (download, prepare) import ``lipflow.models``, so their DVC stages would
    depend on it (tests/test_stage_deps.py); only train and evaluate read the registry.
    """

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from lipflow.models.registry import MODELS

        for param in self.params:
            if param.name == "model":
                param.help = " | ".join(MODELS)  # type: ignore[attr-defined]
        super().format_help(ctx, formatter)


def _check_model(model: str) -> None:
    """Fail on an unknown model name before Prefect starts."""
    from lipflow.models.registry import spec

    spec(model)


@app.command("train", cls=_ModelCommand)
@reports_errors
def train(model: ModelArgument, runner: RunnerOption = None, address: AddressOption = None,
          progress: ProgressOption = None) -> None:
    """Train a seed model on the split named by params train.split."""
    _check_model(model)
    _check_runner(runner, address)
    _orchestrate()
    from lipflow.flows.train import train_flow

    flow = _on_runner(train_flow, runner, address)
    typer.echo(f"wrote {flow(model, load_params(), progress)}")


@app.command("evaluate", cls=_ModelCommand)
@reports_errors
def evaluate(model: ModelArgument, runner: RunnerOption = None,
             address: AddressOption = None) -> None:
    """Score a trained model on the test part; writes metrics/<model>.json."""
    _check_model(model)
    _check_runner(runner, address)
    _orchestrate()
    from lipflow.flows.train import evaluate_flow
    from lipflow.models.outputs import metrics_path

    scores = _on_runner(evaluate_flow, runner, address)(model, load_params())


    def numbers(prefix: str, values: dict[str, Any]) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        for key, value in values.items():
            if isinstance(value, dict):  # nested: lip2wav_protocol.stoi, ground_truth.wer
                out += numbers(f"{prefix}{key}.", value)
            elif isinstance(value, int | float):
                out.append((f"{prefix}{key}", value))
        return out

    for name, value in sorted(numbers("", scores)):
        typer.echo(f"{name}: {value:.4g}")
    typer.echo(f"wrote {metrics_path(model)}")


@app.command("synthesize", cls=_ModelCommand)
@reports_errors
def synthesize(
    video: Annotated[Path, typer.Argument(help="Any video PyAV reads, with or without audio.")],
    model: Annotated[str, typer.Option(help="A speech model of lipflow.models.registry.")],
    out: Annotated[Path, typer.Option(help="The synthesized speech (16 kHz mono .wav).")],
    checkpoint: Annotated[Path | None, typer.Option(
        help="Checkpoint (default: data/models/<model>/best.pt).")] = None,
    mux: Annotated[Path | None, typer.Option(
        help="Also write VIDEO's video stream (copied) with the speech as its audio.")] = None,
    keep_audio: Annotated[bool, typer.Option(
        "--keep-audio", help="With --mux: the original audio as a second track.")] = False,
    params_file: ParamsOption = None,
) -> None:
    """Speech from the lips in VIDEO with a trained speech model (no Prefect: one video)."""
    _use_params(params_file)
    _check_model(model)
    _check_file(checkpoint, "checkpoint")
    from lipflow.models.synthesize import check_inputs, speech_model

    speech_model(model)
    check_inputs(video, out, mux, keep_audio)  # all before torch loads
    from lipflow.models.synthesize import synthesize_file

    result = synthesize_file(model, video, out, load_params(), checkpoint, mux, keep_audio)
    for line in result.warnings:
        typer.echo(f"warning: {line}", err=True)
    typer.echo(f"wrote {out}: {len(result.wav) / result.sample_rate_hz:.2f} s of speech at "
               f"{result.sample_rate_hz} Hz from {result.windows} "
               f"window{'' if result.windows == 1 else 's'}")
    if mux is not None:
        typer.echo(f"wrote {mux}")


@app.command("models", cls=_ModelCommand)
@reports_errors
def models(
    model: Annotated[str | None, typer.Argument(
        metavar="NAME", help="A model of lipflow.models.registry (default: every one).")] = None,
    size: Annotated[str | None, typer.Option(
        help="tiny | full, or a model's own preset such as avsync's grid "
             "(default: params train.size).")] = None,
) -> None:
    """Print each model's top-level modules with their parameter counts (built, not run)."""
    from typing import get_args

    from lipflow.tasks.common.errors import ConfigError
    from lipflow.tasks.settings.schema import Size

    if model is not None:
        _check_model(model)
    params = load_params()
    own = [k for k, v in (params["train"].get(model) or {}).items()
           if isinstance(v, dict)] if model else []
    allowed = list(dict.fromkeys([*get_args(Size), *own]))
    if size is not None and size not in allowed:
        raise ConfigError(f"--size must be one of {', '.join(allowed)}, not {size!r}")
    from lipflow.models.model_sizes import size_table  # imports torch: inputs first
    from lipflow.models.registry import MODELS

    typer.echo(size_table(params["train"], [model] if model else list(MODELS), size))


@app.command("asr")
@reports_errors
def asr(
    wavs: Annotated[list[Path], typer.Argument(help="16 kHz mono int16 wav files.")],
    grammar: Annotated[str, typer.Option(
        help="grid: GRID's sentence grammar | none: the general English language model.")]
        = "grid",
) -> None:
    """Transcribe each WAV offline (pocketsphinx); prints PATH<TAB>words per file."""
    from lipflow.models.asr import check_grammar, transcribe_files

    for path, words in transcribe_files(wavs, check_grammar(grammar)):  # all read first
        typer.echo(f"{path}\t{words}")


@app.command("sync-score")
@reports_errors
def sync_score(
    store: Annotated[Path, typer.Argument(help="A feature store (.zarr).")],
    checkpoint: Annotated[Path | None, typer.Option(help="avsync checkpoint.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Scores file (default: data/sync/<corpus>/<speaker>.parquet, corpus from "
             "params).")] = None,
    max_offset: Annotated[int, typer.Option(help="Largest offset tried, in frames.")] = 15,
) -> None:
    """Write each clip's audio-visual sync score and best offset to a file of their own."""
    from lipflow.models.outputs import checkpoint_dir
    from lipflow.tasks.common.errors import ConfigError

    if not store.is_dir():
        raise ConfigError(f"no store at {store}")
    if max_offset < 1:
        raise ConfigError(f"--max-offset must be at least 1 frame, got {max_offset}")
    ckpt = checkpoint or checkpoint_dir("avsync") / "best.pt"
    _check_file(ckpt, "avsync checkpoint")
    params = load_params()
    from lipflow.models.sync_scores import sync_scores_path  # imports torch: inputs first

    target = out or sync_scores_path(params, store)
    _orchestrate()
    from lipflow.flows.train import sync_score_flow

    typer.echo(f"wrote {sync_score_flow(store, ckpt, target, max_offset)}")


@app.command("serve")
@reports_errors
def serve(
    only: Annotated[list[str] | None, typer.Option(help="Serve only these deployments.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most N concurrent runs.")] = None,
) -> None:
    """Register Prefect deployments (refresh on params schedule.refresh_cron) and serve them.

    Uses the project's local server (`lipflow server status`) or your PREFECT_API_URL.
    """
    from lipflow.tasks.common.errors import ConfigError
    from lipflow.tasks.settings.project import project_root

    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    params = load_params()
    _orchestrate()
    from lipflow.flows.serve import serve_deployments

    serve_deployments(params, project_root(), only or None, limit)


@app.command("refresh")
@reports_errors
def refresh(push: Annotated[bool, typer.Option("--push/--no-push")] = True) -> None:
    """Download missing speakers, `dvc repro`, then `dvc push` when a remote is set."""
    from lipflow.tasks.settings.project import project_root

    load_params()  # a broken params.yaml is reported before the server and dvc start
    _orchestrate()
    from lipflow.flows.refresh import refresh_flow

    summary = refresh_flow(root=str(project_root()), push=push)
    for key, value in summary.items():
        typer.echo(f"{key}: {value}")


@app.command("audit")
@reports_errors
def audit(
    rev_a: Annotated[str | None, typer.Argument(help="A git revision, or a .zarr store.")] = None,
    rev_b: Annotated[str | None, typer.Argument(help="Default: the workspace.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="md | json")] = "md",
) -> None:
    """What changed between two revisions (params, metrics, outputs), or what made a store."""
    from lipflow.tasks.common.errors import ConfigError
    from lipflow.tasks.ops.audit import audit_revisions, audit_store, render, render_store
    from lipflow.tasks.settings.project import project_root

    if fmt not in ("md", "json"):
        raise ConfigError(f"--format must be md or json, not {fmt!r}")
    from lipflow.tasks.common.object_store import is_url

    if rev_a and is_url(rev_a):  # a store at an s3:// URL (only a published one)
        typer.echo(render_store(audit_store(rev_a), fmt))  # type: ignore[arg-type]
        return
    if rev_a and (Path(rev_a) / "zarr.json").is_file():
        typer.echo(render_store(audit_store(Path(rev_a)), fmt))  # type: ignore[arg-type]
        return
    report = audit_revisions(rev_a or "HEAD", rev_b, project_root())
    typer.echo(render(report, fmt))  # type: ignore[arg-type]


@app.command("report")
@reports_errors
def report(
    out: Annotated[Path | None, typer.Option(help="Folder (default reports/dataset).")] = None,
) -> None:
    """A dataset report: one HTML page with PNG figures."""
    from lipflow.tasks.ops.report import build_report
    from lipflow.tasks.settings.project import project_root

    root = project_root()
    typer.echo(f"wrote {build_report(root, out or root / 'reports' / 'dataset')}")


@server_app.command("status")
def server_status() -> None:
    """Print the UI URL of the running local server, or "not running"."""
    import os

    from lipflow.flows.command_server import status
    from lipflow.tasks.common.prefect_server import prefect_home, running

    state = running()
    if state is not None:
        typer.echo(f"running at {state.ui_url} (pid {state.pid})")
    elif os.environ.get("PREFECT_API_URL"):
        typer.echo(f"not running here; PREFECT_API_URL={os.environ['PREFECT_API_URL']}")
    else:
        typer.echo("not running")
    warm = status(prefect_home())
    typer.echo(f"command server: running (pid {warm})" if warm is not None
               else "command server: not running")


@server_app.command("start")
@reports_errors
def server_start() -> None:
    """Start the local server under PREFECT_HOME (or reuse the running one) and the warm
    command server; print the UI."""
    from lipflow.tasks.common.prefect_server import start_server

    _start_command_server()
    typer.echo(f"running at {start_server().ui_url}")


@server_app.command("stop")
@reports_errors
def server_stop() -> None:
    """Stop the local server (and the warm command server) and remove its state file."""
    from lipflow.flows.command_server import stop
    from lipflow.tasks.common.prefect_server import prefect_home, stop_server

    warm = stop(prefect_home())
    if warm is not None:
        typer.echo(f"stopped the command server (pid {warm})")
    state = stop_server()
    typer.echo(f"stopped the server at {state.ui_url}" if state else "not running")


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
