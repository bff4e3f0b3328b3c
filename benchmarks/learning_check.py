"""Does each model learn? Train on real clips for a fixed CPU budget, score held-out clips
against trivial baselines measured in the same run.

    python benchmarks/learning_check.py --store /work/grid_s1/features/s1.zarr \\
        --minutes-per-model 20 [--models lip2wav avsync] [--size tiny] \\
        [--test-clips 50] [--val-clips 30] [--threads 1] [--set lip2wav.hidden=128] \\
        [--json out.json]

The store is a real speaker prepared by the CLI, e.g. GRID s1 (1000 public videos) packed
as a Zenodo-shaped mirror (:func:`lipflow.tasks.corpora.grid.build_sample_archives` with
``source=`` a folder holding ``s1/*.mpg`` and ``alignments/s1/*.align``), then
``lipflow download grid s1 --root RAW --mirror file://MIRROR`` and ``lipflow prepare grid
s1 --root RAW --out FEATURES``. A model that wants another mouth crop (VCA-GAN's
``preprocess.mouth_preset: vcagan``) gets a store prepared with it via ``--model-store``.

Every model comes from the registry (:data:`lipflow.models.registry.MODELS`; default: all
of them, so a model added there is checked too) and is driven only through its registry
interface: ``build``, ``optimisers``, ``train_step``, ``predict``, ``to_waveform`` and
``target``. Training is the trainer's step contract (:mod:`lipflow.models.training_step`)
in a loop that stops on time instead of an epoch count (wall time, or with ``--clock cpu``
the process's CPU time), so two models get the same budget whatever their step cost; the
budget includes data loading (Gabor features are computed on first use of a clip). The
split is a ``seen`` split of the store's speakers (:mod:`lipflow.models.splits`):
``--test-clips`` per speaker held out for scoring, ``--val-clips`` (default 30) more for
choosing the weights, the rest trained on. The weights scored are the ones that validated
best by the model's ``best_by`` (:class:`Selection`), as ``lipflow evaluate`` scores
``best.pt``; ``--val-clips 0`` scores the last weights.

Baselines, on the same held-out clips and scored the same way:

- speech models, two baselines: the training set's mean frame (one spectrogram frame
  repeated: "predicting the mean mel of the training set"), and the stricter
  **position mean**: the training set's mean spectrogram in the model's own representation
  (the Lip2Wav mel, or :attr:`ModelSpec.target`'s), averaged per frame position over the
  training clips (GRID clips start and end in silence, so this beats a flat mean frame),
  cut to each clip's valid frames. Both are vocoded by the model's own ``to_waveform``.
  Scores:
  L1 against the ground-truth spectrogram, 2-D correlation (``corr2``,
  :func:`lipflow.models.metrics.spectrogram_correlation`; a nets module exposing
  ``corr2(true, pred)`` is scored with that instead), STOI (pystoi) of the vocoded speech
  against the stored audio, and the pooled WER of pocketsphinx with the GRID grammar
  (:mod:`lipflow.models.asr`) on it.
- the sync model: the same test pairs scored by a seeded random scorer (EER and AUC).

With ``--ceiling`` the ground-truth spectrogram goes through the same vocoder and
scorers too (Griffin-Lim's own loss: what STOI and WER a perfect prediction would get).

Prints one table (model, budget, steps, metric, model, baseline (the position mean, or
the random scorer), verdict, mean frame, its verdict, ceiling) and writes the figures as
JSON (``--json``). A verdict is per metric and baseline: ``beats`` when the model is
better, else ``does not beat``; there is no tolerance, read the figures. The ``ratio``
lines are against the stricter baseline.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402,F401  (pins BLAS threads before numpy; the project on sys.path)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from lipflow.tasks.common.errors import LipflowError  # noqa: E402

#: metric -> whether higher is better
HIGHER_IS_BETTER = {"mel_l1": False, "spec_l1": False, "corr2": True, "stoi": True,
                    "wer": False, "eer": False, "auc": True}


@dataclass
class Row:
    """One line of the table: a metric of one model against its baseline."""

    model: str
    budget_s: float
    steps: int
    metric: str
    model_value: float
    baseline_value: float
    baseline: str
    clips: int  # held-out clips scored (pairs, for the sync model)
    #: the same metric of the ground truth through the same vocoder (``--ceiling``; NaN
    #: when not measured, and for the sync model): the best a speech model can score
    ceiling_value: float = float("nan")
    #: the speech models' weaker baseline, the training set's mean frame (NaN for sync)
    mean_frame_value: float = float("nan")

    def _better(self, other: float) -> bool:
        if not (math.isfinite(self.model_value) and math.isfinite(other)):
            return False
        if HIGHER_IS_BETTER[self.metric]:
            return self.model_value > other
        return self.model_value < other

    @property
    def beats(self) -> bool:
        """Better than :attr:`baseline_value` (the position mean; the random scorer)."""
        return self._better(self.baseline_value)

    @property
    def beats_mean_frame(self) -> bool:
        """Better than the training set's mean frame (False where there is none)."""
        return self._better(self.mean_frame_value)

    @property
    def verdict(self) -> str:
        return "beats" if self.beats else "does not beat"


@dataclass
class ModelRun:
    """What one model's training did, and its rows."""

    model: str
    size: str
    budget_s: float
    train_seconds: float  # on the budget's clock
    wall_seconds: float
    cpu_seconds: float  # this process's, all threads
    clock: str
    steps: int
    epochs: float
    train_clips: int
    test_clips: int
    first_loss: float
    last_loss: float
    parameters: int
    val_clips: int = 0
    #: how the scored weights were chosen: ``last``, or ``best_by <criterion>``
    selected_by: str = "last"
    #: the chosen weights' epoch (fractional: at the budget's end) and val figure
    chosen_epochs: float = float("nan")
    chosen_value: float = float("nan")
    validation_seconds: float = 0.0
    #: (epochs, val value) of every validation, in order
    validations: list[tuple[float, float]] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    #: a few (reference, model, baseline) transcripts, to read what WER counted
    examples: list[dict[str, str]] = field(default_factory=list)


# --------------------------------------------------------------------------- data


def _seen_split(stores: Sequence[Path], test_clips: int, val_clips: int = 0) -> dict[str, Any]:
    """A ``seen`` split over the stores' speakers: ``test_clips`` each held out for
    scoring, ``val_clips`` each for choosing the weights; the rest trained on."""
    speakers = [p.name.removesuffix(".zarr") for p in stores]
    return {"corpus": "grid", "kind": "seen", "speakers": speakers,
            "val_per_speaker": int(val_clips), "test_per_speaker": int(test_clips)}


def _dataset(stores: Sequence[Path], model: str, part: str, split: Mapping[str, Any],
             seed: int, cfg: Mapping[str, Any] | None = None):
    """One part's clips; the train part of a model that trains on windows (``cfg`` given)
    yields its windows, as :func:`lipflow.models.loaders.train_windows` cuts them."""
    from lipflow.models.dataset import ClipWindowDataset
    from lipflow.models.registry import spec
    from lipflow.models.splits import part_filter

    windows: dict[str, int] = {}
    if cfg is not None and part == "train" and spec(model).train_windows:
        windows = {"window_frames": int(cfg["window_frames"]),
                   "stride_frames": int(cfg.get("window_stride_frames") or 1)}
    return ClipWindowDataset(list(stores), modality=spec(model).modality,
                             split_filter=part_filter(split, part, seed), **windows)


def _loader(dataset, part: str, batch: int, seed: int):
    from lipflow.models.loaders import part_loader

    return part_loader(dataset, part, batch, seed, workers=0)


# --------------------------------------------------------------------------- training


#: the clocks a budget can be counted on: wall time, or this process's CPU time (all its
#: threads; on a shared machine the fair measure: other processes' load does not eat it)
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass
class Selection:
    """How the scored weights are chosen: the trainer's ``best.pt`` rule on a val part.

    Every ``every`` seconds of the budget clock (at an epoch's end, and once more when the
    budget is spent) the model is recalibrated and validated as the trainer does after
    each epoch (:func:`lipflow.models.training.validate`: val loss, val STOI of the first
    ``stoi_clips`` clips), and the weights that score best by ``criterion`` (the model's
    ``best_by``) are the ones scored, as ``lipflow evaluate`` scores ``best.pt``. The
    clock stops while validating: the budget is training time.
    """

    loader: Any
    criterion: str
    stoi_clips: int
    mel_params: Mapping[str, Any]
    every: float = 60.0


def train_for(model_name: str, cfg: Mapping[str, Any], loader, seconds: float,
              device: torch.device, clock: str = "wall",
              selection: Selection | None = None) -> tuple[torch.nn.Module, dict[str, float]]:
    """Train from scratch until ``seconds`` of ``clock`` time are spent (at least one step),
    through the registry's ``optimisers`` / ``schedulers`` / ``train_step`` hooks; the
    schedulers step at each pass over the data, as the trainer steps them each epoch.
    Without ``selection`` the last weights are returned; with it, the best validated ones.
    """
    import copy

    from lipflow.models.registry import spec
    from lipflow.models.runtime import TrainingError, seed_everything, to_device
    from lipflow.models.training import improves, seed_epoch, validate
    from lipflow.models.training_step import StepContext

    spec_ = spec(model_name)
    seed_everything(int(cfg["seed"]))
    model = spec_.build(dict(cfg)).to(device)
    optimisers = dict(spec_.optimisers(model, cfg))
    schedulers = dict(spec_.schedulers(optimisers, cfg))
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    step_fn = spec_.train_step
    losses: list[float] = []
    now = CLOCKS[clock]
    start, wall0, cpu0 = now(), time.perf_counter(), time.process_time()
    deadline = start + seconds
    epoch, done, batches = 0, False, max(1, len(loader))
    best: float | None = None
    best_state: dict[str, Any] | None = None
    chosen: dict[str, float] = {}
    validations: list[tuple[float, float]] = []  # (epochs, val value) at each check
    paused = 0.0  # clock seconds spent validating, added back to the deadline
    last_check = start

    def check(at_epoch: float) -> None:
        """Recalibrate, validate, keep the weights if they are the best so far."""
        nonlocal best, best_state, paused, last_check
        t0 = now()
        spec_.recalibrate(model, loader, device)  # as the trainer does after each epoch
        if selection is not None:
            ctx = StepContext(device=device, autocast_enabled=False,
                              autocast_dtype=torch.float32, scaler=scaler,
                              grad_clip=float(cfg["grad_clip"]), epoch=epoch, step=0,
                              model_name=model_name, cfg=cfg)
            val = validate(spec_, model, selection.loader, device, ctx,
                           selection.stoi_clips, selection.mel_params)
            value = val.stoi if selection.criterion == "stoi" else val.loss
            validations.append((at_epoch, value))
            if improves(selection.criterion, value, best):
                best = value
                best_state = copy.deepcopy(model.state_dict())
                chosen.update({"chosen_epochs": at_epoch, "chosen_steps": len(losses),
                               "chosen_value": value})
            model.train()
        spent = now() - t0
        paused += spent
        last_check = now()

    model.train()
    while not done:
        epoch += 1
        seed_epoch(loader, int(cfg["seed"]), epoch)
        for step, batch in enumerate(loader):
            ctx = StepContext(device=device, autocast_enabled=False,
                              autocast_dtype=torch.float32, scaler=scaler,
                              grad_clip=float(cfg["grad_clip"]), epoch=epoch, step=step,
                              model_name=model_name, cfg=cfg)
            loss = float(step_fn(model, to_device(batch, device), optimisers, ctx)["loss"])
            if not math.isfinite(loss):
                raise TrainingError(f"{model_name} loss became {loss} after "
                                    f"{len(losses)} steps")
            losses.append(loss)
            if now() >= deadline + paused:
                done = True
                break
        else:
            for scheduler in schedulers.values():
                scheduler.step()
            if selection is not None and now() - last_check >= selection.every:
                check(float(epoch))
    check((epoch - 1) + (step + 1) / batches)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    head = losses[: max(1, min(20, len(losses) // 10))]
    tail = losses[-max(1, min(20, len(losses) // 10)):]
    return model, {"seconds": now() - start - paused, "validation_seconds": paused,
                   "wall_seconds": time.perf_counter() - wall0,
                   "cpu_seconds": time.process_time() - cpu0,
                   "steps": len(losses),
                   "epochs": (epoch - 1) + (step + 1) / batches,
                   "first_loss": float(np.mean(head)), "last_loss": float(np.mean(tail)),
                   "validations": validations, **chosen}


# --------------------------------------------------------------------------- baselines


def mean_spectrogram(spec_, loader, device: torch.device,
                     max_clips: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """The training clips' spectrogram in the prediction's representation, averaged per
    frame position over at most ``max_clips`` clips (valid frames only; a position no clip
    reaches gets the mean frame), and that mean frame."""
    from lipflow.models.speech import valid_rows

    total: np.ndarray | None = None
    count: np.ndarray | None = None
    seen = 0
    for batch in loader:
        if seen >= max_clips:
            break
        true = _truth(spec_, batch, device)
        if total is None:
            total = np.zeros(true.shape[1:], dtype=np.float64)
            count = np.zeros(true.shape[1], dtype=np.float64)
        for i in range(len(true)):
            m = min(valid_rows(batch, i, true.shape[1]), true.shape[1], total.shape[0])
            total[:m] += true[i, :m]
            count[:m] += 1
            seen += 1
    if total is None or count is None or not count.any():
        raise LipflowError("the training part yielded no clips for the mean spectrogram")
    mean_frame = total.sum(0) / count.sum()
    out = np.where(count[:, None] > 0, total / np.maximum(count, 1)[:, None], mean_frame)
    return out.astype(np.float32), mean_frame.astype(np.float32)


def _truth(spec_, batch: Mapping[str, Any], device: torch.device) -> np.ndarray:
    from lipflow.models.runtime import to_device

    if spec_.target is None:
        return batch["mel"].float().numpy()
    with torch.no_grad():
        return spec_.target(to_device(batch, device)).float().cpu().numpy()


# --------------------------------------------------------------------------- scoring


def _corr2(spec_, true: np.ndarray, pred: np.ndarray) -> float:
    from lipflow.models import metrics

    own = getattr(spec_.module, "corr2", None)
    return float(own(true, pred)) if callable(own) else metrics.spectrogram_correlation(
        true, pred)


def _transcript(dataset, batch: Mapping[str, Any], i: int) -> str:
    row = dataset.clips.iloc[int(batch["clip_index"][i])]
    text = row.get("transcript")
    return "" if text is None or (isinstance(text, float) and math.isnan(text)) else " ".join(
        str(text).split())


def score_speech(spec_, model, dataset, loader, mean_spec: np.ndarray,
                 mean_frame: np.ndarray, mel_params: Mapping[str, Any], device: torch.device,
                 rate: int = 16000, ceiling: bool = False) -> dict[str, dict[str, Any]]:
    """Per-metric ``{"model": value, "baseline": value, "mean_frame": value, "clips": n}``
    on the test clips (and ``"ceiling"``: the ground-truth spectrogram through the same
    vocoder, when ``ceiling``)."""
    from lipflow.models import asr, metrics
    from lipflow.models.runtime import to_device
    from lipflow.models.speech import valid_rows, valid_samples

    l1 = "mel_l1" if spec_.target is None else "spec_l1"  # the model's own representation
    kinds = ("model", "baseline", "mean_frame") + (("ceiling",) if ceiling else ())
    per: dict[str, dict[str, list[float]]] = {k: {kind: [] for kind in kinds}
                                              for k in (l1, "corr2", "stoi")}
    refs: list[str] = []
    hyps: dict[str, list[str]] = {kind: [] for kind in kinds}
    for batch in loader:
        with torch.no_grad():
            pred = spec_.predict(model, to_device(batch, device)).float().cpu().numpy()
        true = _truth(spec_, batch, device)
        wavs = batch["wav"].numpy()
        for i in range(len(pred)):
            m = min(valid_rows(batch, i, pred.shape[1]), pred.shape[1], true.shape[1])
            base = mean_spec[:m]
            if len(base) < m:  # a test clip longer than every training clip
                base = np.concatenate([base, np.repeat(base[-1:], m - len(base), 0)])
            n = valid_samples(batch, i)
            ref = wavs[i, :n].astype(np.float64) / 32768.0
            text = _transcript(dataset, batch, i)
            if text:
                refs.append(text)
            pairs = [("model", pred[i, :m]), ("baseline", base),
                     ("mean_frame", np.repeat(mean_frame[None], m, 0))]
            pairs += [("ceiling", true[i, :m])] if ceiling else []
            for kind, spectrogram in pairs:
                per[l1][kind].append(float(np.mean(np.abs(true[i, :m] - spectrogram))))
                per["corr2"][kind].append(_corr2(spec_, true[i, :m], spectrogram))
                wave = np.asarray(spec_.to_waveform(spectrogram, mel_params),
                                  dtype=np.float64)[:n]
                if len(wave) < n:
                    wave = np.pad(wave, (0, n - len(wave)))
                if np.any(ref):
                    per["stoi"][kind].append(metrics.stoi_score(ref, wave, rate))
                if text:
                    hyps[kind].append(asr.transcribe(metrics.peak_normalise_int16(wave),
                                                     "grid"))
    out: dict[str, dict[str, Any]] = {}
    for key, values in per.items():
        out[key] = {kind: _finite_mean(v) for kind, v in values.items()}
        out[key]["clips"] = len(values["model"])
    if refs:
        out["wer"] = {kind: asr.word_error_rate(refs, h) for kind, h in hyps.items()}
        out["wer"]["clips"] = len(refs)
        out["wer"]["examples"] = [{"reference": r, "model": a, "baseline": b}
                                  for r, a, b in list(zip(refs, hyps["model"],
                                                          hyps["baseline"], strict=True))[:3]]
    return out


def _finite_mean(values: Sequence[float]) -> float:
    kept = [v for v in values if math.isfinite(v)]
    return float(np.mean(kept)) if kept else float("nan")


def score_sync(spec_, model, loader, device: torch.device,
               seed: int) -> dict[str, dict[str, Any]]:
    """EER and AUC of the model's pair scores and of a seeded random scorer on the same
    pairs."""
    from lipflow.models import metrics
    from lipflow.models.runtime import to_device

    scores, labels = [], []
    for batch in loader:
        s, y = spec_.predict(model, to_device(batch, device))
        scores.append(s.float().cpu().numpy())
        labels.append(y.cpu().numpy())
    s, y = np.concatenate(scores), np.concatenate(labels).astype(int)
    keep = y >= 0
    s, y = s[keep], y[keep]
    random = np.random.default_rng(seed).random(len(y))
    out: dict[str, dict[str, Any]] = {}
    for key, fn in (("eer", metrics.equal_error_rate), ("auc", metrics.roc_auc)):
        out[key] = {"model": fn(y, s), "baseline": fn(y, random), "clips": int(len(y))}
    return out


# --------------------------------------------------------------------------- the check


def _apply_overrides(train_params: dict[str, Any], overrides: Sequence[str]) -> None:
    """``model.key=value`` (value parsed as YAML) set directly under ``train.<model>``,
    where keys win over the size preset, as ``dvc exp run -S`` does."""
    import yaml

    for item in overrides:
        name, sep, value = item.partition("=")
        model, dot, key = name.partition(".")
        if not sep or not dot or not key:
            raise LipflowError(f"--set wants MODEL.KEY=VALUE, got {item!r}")
        train_params.setdefault(model, {})[key] = yaml.safe_load(value)


def check_model(model_name: str, stores: Sequence[Path], params: Mapping[str, Any],
                seconds: float, size: str, test_clips: int, device: torch.device,
                log=print, ceiling: bool = False, clock: str = "wall", val_clips: int = 0,
                val_every: float = 60.0) -> ModelRun:
    """Train one model for ``seconds`` and score it and its baseline on the held-out clips;
    with ``val_clips``, the weights scored are those that validated best (:class:`Selection`).
    """
    from lipflow.models.registry import best_criterion, model_config, spec
    from lipflow.tasks.settings.project import section

    spec_ = spec(model_name)
    train_params = params["train"]
    seed = int(train_params.get("seed", 0))
    split = _seen_split(stores, test_clips, val_clips)
    probe = _dataset(stores, model_name, "test", split, seed)
    fps = {float(t.fps) for t in probe.timings}
    if len(fps) != 1:
        raise LipflowError(f"stores mix frame rates {sorted(fps)}; check one rate at a time")
    cfg = model_config(train_params, model_name, size=size, fps=fps.pop())
    train_set = _dataset(stores, model_name, "train", split, seed, cfg)
    if len(train_set) == 0 or len(probe) == 0:
        raise LipflowError(f"{model_name}: the split has {len(train_set)} training windows "
                           f"and {len(probe)} test clips; both must be > 0")
    batch = int(cfg["batch_size"])
    train_loader = _loader(train_set, "train", batch, seed)
    test_loader = _loader(probe, "test", batch, seed)
    mel_params = section(params, "features.mel")
    selection = None
    if val_clips:
        val_set = _dataset(stores, model_name, "val", split, seed)
        criterion = best_criterion(model_name, cfg)
        selection = Selection(_loader(val_set, "val", batch, seed), criterion,
                              int(cfg["val_stoi_clips"]) if spec_.kind == "speech" else 0,
                              mel_params, val_every)
    log(f"{model_name} ({size}): training {seconds:.0f} s ({clock} clock) on "
        f"{len(train_set.clips)} clips ({len(train_set)} items), {len(probe)} held out"
        + (f", {val_clips} for choosing the weights by val {selection.criterion}"
           if selection else ""))
    model, info = train_for(model_name, cfg, train_loader, seconds, device, clock, selection)
    run = ModelRun(model=model_name, size=size, budget_s=seconds,
                   train_seconds=info["seconds"], wall_seconds=info["wall_seconds"],
                   cpu_seconds=info["cpu_seconds"],
                   clock=clock, steps=int(info["steps"]),
                   epochs=float(info["epochs"]), train_clips=len(train_set.clips),
                   test_clips=len(probe), first_loss=info["first_loss"],
                   last_loss=info["last_loss"],
                   parameters=sum(p.numel() for p in model.parameters()),
                   val_clips=val_clips,
                   selected_by=f"best_by {selection.criterion}" if selection else "last",
                   chosen_epochs=float(info.get("chosen_epochs", float("nan"))),
                   chosen_value=float(info.get("chosen_value", float("nan"))),
                   validation_seconds=float(info["validation_seconds"]),
                   validations=list(info["validations"]))
    log(f"{model_name}: {run.steps} steps ({run.epochs:.2f} epochs) in {run.wall_seconds:.0f} s "
        f"wall / {run.cpu_seconds:.0f} s CPU, loss "
        f"{run.first_loss:.4f} -> {run.last_loss:.4f}"
        + (f"; scoring the weights of epoch {run.chosen_epochs:.2f} (val "
           f"{selection.criterion} {run.chosen_value:.4f}; validating took "
           f"{run.validation_seconds:.0f} s off the clock)" if selection else "; scoring"))
    if spec_.kind == "speech":
        mean_loader = _loader(_dataset(stores, model_name, "train", split, seed),
                              "test", batch, seed)  # whole clips, in order
        mean_spec, mean_frame = mean_spectrogram(spec_, mean_loader, device)
        scores = score_speech(spec_, model, probe, test_loader, mean_spec, mean_frame,
                              mel_params, device,
                              int(mel_params.get("sample_rate_hz", 16000)), ceiling)
        baseline = "training-set mean spectrogram by frame position"
    else:
        scores = score_sync(spec_, model, test_loader, device, seed)
        baseline = "random scorer"
    for metric, figures in scores.items():
        run.rows.append(Row(model_name, seconds, run.steps, metric, float(figures["model"]),
                            float(figures["baseline"]), baseline, int(figures["clips"]),
                            float(figures.get("ceiling", float("nan"))),
                            float(figures.get("mean_frame", float("nan")))))
    run.examples = scores.get("wer", {}).get("examples", [])
    log("; ".join(f"{r.metric} {r.model_value:.4f} vs {r.baseline_value:.4f} ({r.verdict})"
                  + (f", mean frame {r.mean_frame_value:.4f}"
                     if math.isfinite(r.mean_frame_value) else "")
                  for r in run.rows))
    return run


def learning_check(stores: Sequence[Path], models: Sequence[str] | None = None,
                   seconds_per_model: float = 1200.0, size: str = "tiny",
                   test_clips: int = 50, threads: int = 1,
                   overrides: Sequence[str] = (), params: Mapping[str, Any] | None = None,
                   device: str | None = None, log=print,
                   model_stores: Mapping[str, Sequence[Path]] | None = None,
                   ceiling: bool = False, clock: str = "wall", val_clips: int = 0,
                   val_every: float = 60.0) -> list[ModelRun]:
    """Train and score every model in ``models`` (default: the whole registry), each on
    ``model_stores[model]`` where given (a store prepared with its own mouth preset),
    else on ``stores``."""
    from lipflow.models.registry import MODELS, spec
    from lipflow.models.runtime import select_device
    from lipflow.tasks.settings.project import load_params

    params = json.loads(json.dumps(params if params is not None else load_params()))
    _apply_overrides(params["train"], overrides)
    names = list(models) if models else list(MODELS)
    for name in names:
        spec(name)
    chosen = {name: [Path(s) for s in (model_stores or {}).get(name) or stores]
              for name in names}
    for store in {s for paths in chosen.values() for s in paths}:
        if not store.is_dir():
            raise LipflowError(f"no store at {store}; run lipflow prepare first")
    if clock not in CLOCKS:
        raise LipflowError(f"clock must be one of {', '.join(CLOCKS)}, not {clock!r}")
    if threads > 0:
        torch.set_num_threads(threads)
    dev = select_device(device)
    return [check_model(name, chosen[name], params, seconds_per_model, size, test_clips, dev,
                        log, ceiling, clock, val_clips, val_every) for name in names]


def format_table(runs: Sequence[ModelRun]) -> str:
    """One fixed-width table of every row."""
    head = ("model", "budget", "steps", "metric", "model value", "baseline", "verdict",
            "mean frame", "verdict", "ceiling")
    lines = [head]
    for run in runs:
        for row in run.rows:
            ceiling = (f"{row.ceiling_value:.4f}" if math.isfinite(row.ceiling_value) else "-")
            flat = math.isfinite(row.mean_frame_value)
            lines.append((row.model, f"{row.budget_s / 60:.1f} min", str(row.steps), row.metric,
                          f"{row.model_value:.4f}", f"{row.baseline_value:.4f}", row.verdict,
                          f"{row.mean_frame_value:.4f}" if flat else "-",
                          ("beats" if row.beats_mean_frame else "does not beat") if flat
                          else "-", ceiling))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
                     for line in lines)


def ratio_lines(runs: Sequence[ModelRun]) -> list[str]:
    """Each row as the benchmarks' ``ratio`` line: model / baseline, goal ``> 1`` where
    higher is better, ``< 1`` where lower is (rows with a zero baseline are left out)."""
    from _common import ratio_line

    lines = []
    for run in runs:
        for row in run.rows:
            if row.baseline_value and math.isfinite(row.baseline_value):
                goal = "> 1" if HIGHER_IS_BETTER[row.metric] else "< 1"
                lines.append(ratio_line(f"{row.model} {row.metric} model / baseline",
                                        row.model_value / row.baseline_value, goal, row.beats))
    return lines


def to_json(runs: Sequence[ModelRun], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The figures as a JSON-ready dict (NaN as null)."""
    out: dict[str, Any] = {**meta, "models": {}}
    for run in runs:
        data = asdict(run)
        data["rows"] = [{**asdict(r), "verdict": r.verdict, "beats": r.beats,
                         "beats_mean_frame": r.beats_mean_frame} for r in run.rows]
        out["models"][run.model] = data
    from lipflow.models.outputs import json_safe

    return json_safe(out)


def main(argv: Sequence[str] | None = None) -> int:
    from lipflow.models.registry import MODELS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, action="append", required=True,
                        help="a prepared speaker store (repeat for several speakers)")
    parser.add_argument("--manifest", type=Path, action="append", default=[],
                        help="its clip manifest (must be the one beside the store, which "
                             "the dataset reads)")
    parser.add_argument("--minutes-per-model", type=float, default=20.0)
    parser.add_argument("--models", nargs="+", default=None,
                        help=f"registry names (default: all: {', '.join(MODELS)})")
    parser.add_argument("--size", default="tiny", help="train.<model>.<size> preset")
    parser.add_argument("--test-clips", type=int, default=50,
                        help="held-out clips per speaker")
    parser.add_argument("--val-clips", type=int, default=30,
                        help="clips per speaker (besides the test clips) on which the "
                             "weights to score are chosen, by the trainer's best_by rule; "
                             "0: score the last weights")
    parser.add_argument("--val-every-minutes", type=float, default=1.0,
                        help="validate at the first epoch end after this much budget")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                        help="count the budget in this process's CPU time (default: on a "
                             "shared machine 4 wall minutes gave one model 1 CPU minute) or "
                             "in wall time")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="MODEL.KEY=VALUE", help="override a train.<model> key")
    parser.add_argument("--model-store", action="append", default=[], metavar="MODEL=STORE",
                        help="train and score MODEL on STORE instead (e.g. vcagan on a store "
                             "prepared with preprocess.mouth_preset: vcagan); repeatable")
    parser.add_argument("--ceiling", action="store_true",
                        help="also score the ground-truth spectrogram through the vocoder "
                             "(the speech models' ceiling; ~50%% more scoring time)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    model_stores: dict[str, list[Path]] = {}
    for item in args.model_store:
        name, sep, path = item.partition("=")
        if not sep or not path:
            parser.error(f"--model-store wants MODEL=STORE, got {item!r}")
        model_stores.setdefault(name, []).append(Path(path))
    from lipflow.tasks.contracts.store_layout import manifest_path_for

    try:
        for manifest in args.manifest:
            beside = {manifest_path_for(s).resolve() for s in args.store}
            if manifest.resolve() not in beside:
                raise LipflowError(f"--manifest {manifest} is not the manifest beside any "
                                   f"--store ({', '.join(map(str, sorted(beside)))})")
        t0 = time.perf_counter()
        runs = learning_check(args.store, args.models, args.minutes_per_model * 60, args.size,
                              args.test_clips, args.threads, args.overrides,
                              device=args.device,
                              log=lambda msg: print(msg, file=sys.stderr, flush=True),
                              model_stores=model_stores, ceiling=args.ceiling,
                              clock=args.clock, val_clips=args.val_clips,
                              val_every=args.val_every_minutes * 60)
    except LipflowError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(runs))
    print("\n".join(ratio_lines(runs)))
    if args.json:
        meta = {"stores": [str(s) for s in args.store],
                "model_stores": {k: [str(p) for p in v] for k, v in model_stores.items()},
                "size": args.size,
                "minutes_per_model": args.minutes_per_model, "threads": args.threads,
                "test_clips_per_speaker": args.test_clips,
                "val_clips_per_speaker": args.val_clips,
                "val_every_minutes": args.val_every_minutes, "overrides": args.overrides,
                "ceiling": args.ceiling, "clock": args.clock,
                "wall_seconds": time.perf_counter() - t0}
        from lipflow.tasks.common.atomic import write_bytes_atomic

        text = json.dumps(to_json(runs, meta), indent=1, allow_nan=False)
        write_bytes_atomic(args.json, text.encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
