"""The model registry is the one list of models: every entry builds from its params.yaml
preset and runs its loss, and the CLI and the deployments offer exactly its names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lipflow.flows import cli, serve
from lipflow.models.registry import DEFAULT_MODEL, MODELS, model_config, size_preset
from lipflow.tasks.settings.project import load_params
from tests.support.seed_models import fake_clip, one_thread  # noqa: F401


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_builds_its_tiny_preset_and_runs_its_loss(name: str) -> None:
    entry = MODELS[name]
    assert entry.name == name and entry.modality in ("face", "mouth")
    assert entry.kind in ("speech", "sync")
    train_params = load_params()["train"]
    cfg = model_config(train_params, name, size="tiny")
    model = entry.build(cfg)
    assert isinstance(model, torch.nn.Module) and any(True for _ in model.parameters())
    hw = (60, 100) if name == "avsync" else (30, 50)  # avsync never resizes: cnn3d crops
    items = [fake_clip(i, frames=25, kind=entry.modality, mouth_hw=hw) for i in range(2)]
    batch = torch.utils.data.default_collate(items)
    loss = entry.loss(model, batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert size_preset({**train_params, "size": "tiny"}, name) == train_params[name]["tiny"]


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_cli_offers_exactly_the_registry_models(command: str) -> None:
    runner = CliRunner()
    shown = runner.invoke(cli.app, [command, "--help"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    line = next(row for row in shown.output.splitlines() if "model" in row and "<str>" in row)
    listed = line.split("<str>", 1)[1].replace("[required]", "").strip(" │")
    assert listed.split(" | ") == list(MODELS)
    result = runner.invoke(cli.app, [command, "resnet"])
    assert result.exit_code == 2
    assert f"choose one of {', '.join(MODELS)}" in result.output


def test_deployments_default_to_a_registry_model() -> None:
    assert DEFAULT_MODEL in MODELS
    specs = {spec.name: spec for spec in serve.DEPLOYMENTS}
    for name in ("train", "evaluate"):
        assert specs[name].parameters({}, Path(".")) == {"model": DEFAULT_MODEL}


def test_reading_the_registry_does_not_load_torch() -> None:
    """The CLI checks a model name before any work; loading torch for that costs seconds."""
    code = ("import sys; import lipflow.flows.cli; print('lipflow.models' in sys.modules); "
            "import lipflow.models.registry as r; r.MODELS['gabor'].modality; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    # the CLI itself reaches the registry only in train / evaluate (see flows/cli.py)
    assert out.split() == ["False", "False"]
