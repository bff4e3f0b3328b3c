"""``lipflow serve``: register lipflow's flows as Prefect deployments and run them on demand.

Each entry of :data:`DEPLOYMENTS` names a flow by import path and how to fill its default
parameters from ``params.yaml``. ``refresh`` gets a cron schedule
(``schedule.refresh_cron`` in ``schedule.timezone``); the others are on-demand: start them
from the UI ("Run") or with ``prefect deployment run '<flow>/<deployment>'``.

Why ``prefect.serve`` and not a work pool: serving needs no worker or infrastructure
setup. The serving process polls the server and runs each flow run in a subprocess on
this machine; task runners (``lipflow.flows.runners``) still send the heavy work to a Dask or Ray
cluster when asked. Stop it with Ctrl-C (schedules are paused on shutdown, so a stopped
server does not pile up late runs).

To add a flow, append a :class:`DeploymentSpec` to :data:`DEPLOYMENTS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from prefect import flow, task

from lipflow.models.registry import DEFAULT_MODEL, MODELS
from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.settings.project import resolve

ParamsBuilder = Callable[[Mapping[str, Any], Path], dict[str, Any]]


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment: which flow, under what name, with which default parameters."""

    name: str
    flow_path: str  # "package.module:flow_object"
    parameters: ParamsBuilder | None = None
    scheduled: bool = False  # True: runs on schedule.refresh_cron
    description: str = ""

    def load_flow(self) -> Any:
        module, _, attr = self.flow_path.partition(":")
        try:
            return getattr(import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise ConfigError(f"deployment '{self.name}': cannot import flow {self.flow_path}: "
                              f"{err}") from err


def _refresh_parameters(params: Mapping[str, Any], root: Path) -> dict[str, Any]:
    return {"root": str(root), "push": True}


def _download_grid_parameters(params: Mapping[str, Any], root: Path) -> dict[str, Any]:
    grid = params.get("grid") or {}
    return {"speakers": list(grid.get("speakers") or []),
            "root": str(resolve(grid.get("raw_root", "data/raw/grid"), root)),
            "mirror": str(grid.get("mirror", "zenodo")),
            "progress": False}


@task
def _square(x: int) -> int:
    return x * x


@flow(name="lipflow-selftest")
def selftest_flow(n: int = 3) -> int:
    """A seconds-long flow to check that a server, ``lipflow serve`` and runs all work."""
    return sum(f.result() for f in _square.map(list(range(n))))


#: Deployments ``lipflow serve`` registers, in order.
DEPLOYMENTS: list[DeploymentSpec] = [
    DeploymentSpec("refresh", "lipflow.flows.refresh:refresh_flow", _refresh_parameters,
                   scheduled=True,
                   description="Download missing speakers, dvc repro, dvc push (nightly)."),
    DeploymentSpec("download-grid", "lipflow.flows.download:download_grid_flow",
                   _download_grid_parameters,
                   description="Download the GRID speakers of params.yaml (on demand)."),
    DeploymentSpec("prepare-grid", "lipflow.flows.prepare:prepare_from_params_flow",
                   lambda params, root: {"corpus": "grid", "root": str(root)},
                   description="Prepare the GRID speakers of params.yaml into stores."),
    DeploymentSpec("train", "lipflow.flows.train:train_flow",
                   lambda params, root: {"model": DEFAULT_MODEL},
                   description=f"Train a seed model (parameter: model, one of "
                               f"{', '.join(MODELS)}) from params.yaml."),
    DeploymentSpec("evaluate", "lipflow.flows.train:evaluate_flow",
                   lambda params, root: {"model": DEFAULT_MODEL},
                   description="Score a trained model; writes metrics/<model>.json."),
    DeploymentSpec("lipflow-selftest", "lipflow.flows.serve:selftest_flow",
                   description="A seconds-long flow that checks the serving setup."),
]


def refresh_schedule(params: Mapping[str, Any]) -> tuple[str, str]:
    """``(cron, timezone)`` from ``params['schedule']``, checked."""
    sched = params.get("schedule") or {}
    cron = str(sched.get("refresh_cron", "0 3 * * *"))
    timezone = str(sched.get("timezone", "UTC"))
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        CronSchedule(cron=cron, timezone=timezone)
    except ValidationError as err:
        detail = "; ".join(e["msg"] for e in err.errors())
        raise ConfigError(f"params.yaml schedule (refresh_cron '{cron}', timezone "
                          f"'{timezone}') is invalid: {detail}") from err
    return cron, timezone


def build_deployments(params: Mapping[str, Any], root: Path,
                      names: Sequence[str] | None = None) -> list[Any]:
    """``RunnerDeployment`` objects for :data:`DEPLOYMENTS` (or only ``names``)."""
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    known = {spec.name for spec in DEPLOYMENTS}
    unknown = sorted(set(names or ()) - known)
    if unknown:
        raise ConfigError(f"unknown deployment(s) {unknown}; known: {sorted(known)}")
    cron, timezone = refresh_schedule(params)
    deployments = []
    for spec in DEPLOYMENTS:
        if names and spec.name not in names:
            continue
        flow_obj = spec.load_flow()
        kwargs: dict[str, Any] = {
            "name": spec.name,
            "description": spec.description or None,
            "tags": ["lipflow"],
            "parameters": spec.parameters(params, Path(root)) if spec.parameters else None,
            # a module path, not a file path: the served runs import the installed package,
            # whatever folder `lipflow serve` started in
            "entrypoint_type": EntrypointType.MODULE_PATH,
        }
        if spec.scheduled:
            kwargs["schedules"] = [Cron(cron, timezone=timezone)]
        deployments.append(flow_obj.to_deployment(**kwargs))
    return deployments


def serve_deployments(params: Mapping[str, Any], root: Path | None = None,
                      names: Sequence[str] | None = None, limit: int | None = None) -> None:
    """Register the deployments with the Prefect API and serve them until interrupted.

    Needs ``PREFECT_API_URL`` pointing at a running server (``prefect server start``);
    without one Prefect would start a temporary server that vanishes with this process,
    so schedules would never fire: refuse instead. ``limit`` caps concurrent runs.
    """
    import os

    from prefect import serve

    if not os.environ.get("PREFECT_API_URL"):
        raise ConfigError(
            "lipflow serve needs a Prefect server: run `prefect server start` and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api (see docs/operations.md)")
    from lipflow.tasks.settings.project import project_root

    deployments = build_deployments(params, Path(root) if root else project_root(), names)
    serve(*deployments, limit=limit)
