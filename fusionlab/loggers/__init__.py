"""Experiment trackers that follow a run: TensorBoard, Weights & Biases and MLflow.

The training loop sees one object, :class:`Loggers` (``log`` every ``train.log_every`` steps,
``results`` once with the final metrics and costs, ``close``); behind it each tracker is one
small class (:mod:`~fusionlab.loggers.tensorboard`, :mod:`~fusionlab.loggers.wandb`,
:mod:`~fusionlab.loggers.mlflow`). A tracker that fails (disk full, server down) warns once and is
dropped: the run and its result files never depend on it.

Which run a tracker writes to is the run folder's ``loggers.json`` (:class:`RunIdentity`): its
name, group (a sweep's name) and the folder of the shared stores (W&B's ``wandb/``, MLflow's
``mlflow.db``), and, once opened, each tracker's run id. A run that continues from a resume point
continues those runs; a sweep cell writes the file before it trains (see
:mod:`fusionlab.sweep.cell`), which is also how the rank-0 process of a multi-process cell finds it.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from fusionlab.atomic import atomic_write_text

log = logging.getLogger("fusionlab.loggers")

IDENTITY_FILE = "loggers.json"


@dataclass
class RunIdentity:
    """Where a run's trackers write.

    Attributes:
        name: the run's name (``variant/seed`` in a sweep; a lone run: its folder's name).
        group: the sweep's name (W&B group, MLflow experiment, TensorBoard folder); None alone.
        root: folder of the stores runs share (a sweep's results folder; a lone run: its own).
        ids: run id per tracker that has one (``wandb``, ``mlflow``).
    """

    name: str
    group: Optional[str]
    root: str
    ids: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, run_dir: Path) -> "RunIdentity":
        """The identity recorded in ``run_dir`` (its ``root`` made absolute), else a lone run's."""
        path = Path(run_dir) / IDENTITY_FILE
        data = json.loads(path.read_text()) if path.is_file() else {"name": Path(run_dir).resolve().name,
                                                                    "group": None, "root": "."}
        data["root"] = str((Path(run_dir) / data["root"]).resolve())
        return cls(**data)

    def write(self, run_dir: Path) -> None:
        """Into ``run_dir``, ``root`` relative to it: the folders may move together (or be mounted elsewhere)."""
        data = {**dataclasses.asdict(self), "root": os.path.relpath(self.root, Path(run_dir).resolve())}
        atomic_write_text(Path(run_dir) / IDENTITY_FILE, json.dumps(data, indent=2) + "\n")


class Loggers:
    """The run's trackers as one: each call goes to every tracker still working.

    A tracker whose call raises is reported once (a warning naming it and why) and dropped.
    """

    def __init__(self, trackers: Dict[str, Any]):
        self.trackers = trackers

    def log(self, step: int, scalars: Dict[str, float]) -> None:
        """Scalars of training step ``step`` (names such as ``train/loss``, ``lr/fusion``)."""
        self._each("log", step, scalars)

    def results(self, step: int, values: Dict[str, float]) -> None:
        """The run's final metrics and costs (``eval/box_miou``, ``cost/gmacs``), at its last step."""
        self._each("results", step, values)

    def close(self) -> None:
        self._each("close")
        self.trackers = {}

    def _each(self, method: str, *args: Any) -> None:
        for kind, tracker in list(self.trackers.items()):
            try:
                getattr(tracker, method)(*args)
            except Exception as exc:  # a tracker must never fail the run
                log.warning("logger %s failed (%s: %s); the run goes on without it", kind, type(exc).__name__, exc)
                self.trackers.pop(kind)


def open_loggers(kinds: Sequence[str], run_dir: Path, hparams: Dict[str, Any], resume: bool,
                 start_step: int = 0) -> Loggers:
    """Open ``kinds`` for the run in ``run_dir`` (identity: :meth:`RunIdentity.of`).

    ``resume``: continue the runs whose ids the identity holds (TensorBoard drops its events after
    ``start_step``, which the run takes again); otherwise start new ones. The ids are written back.
    ``hparams``: the run's flattened config and seed, recorded once per new run.
    """
    try:
        identity = RunIdentity.of(run_dir)
    except (OSError, ValueError, TypeError) as exc:  # a damaged loggers.json: new runs, not a failed training
        log.warning("%s unreadable (%s); the loggers start new runs", Path(run_dir) / IDENTITY_FILE, exc)
        identity, resume = RunIdentity(Path(run_dir).resolve().name, None, str(Path(run_dir).resolve())), False
    if not resume:
        identity.ids = {}
    trackers = {}
    for kind in kinds:
        try:
            trackers[kind] = _open(kind, Path(run_dir), identity, hparams, start_step if resume else None)
        except Exception as exc:  # a tracker that cannot start must not stop the run either
            log.warning("logger %s could not start (%s: %s); the run goes on without it", kind,
                        type(exc).__name__, exc)
            continue
        if getattr(trackers[kind], "run_id", None):
            identity.ids[kind] = trackers[kind].run_id
    try:
        identity.write(run_dir)
    except OSError as exc:
        log.warning("cannot write %s (%s); a resumed run will log to new runs", Path(run_dir) / IDENTITY_FILE, exc)
    return Loggers(trackers)


def _open(kind: str, run_dir: Path, identity: RunIdentity, hparams: Dict[str, Any],
          purge_after: Optional[int]) -> Any:
    if kind == "tensorboard":
        from fusionlab.loggers.tensorboard import TensorBoardLogger

        return TensorBoardLogger(run_dir, hparams, purge_after)
    if kind == "wandb":
        from fusionlab.loggers.wandb import WandbLogger

        return WandbLogger(identity, hparams, identity.ids.get(kind))
    from fusionlab.loggers.mlflow import MlflowLogger

    return MlflowLogger(identity, hparams, identity.ids.get(kind))


def flatten(data: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """``{"train": {"lr": 1e-4}}`` → ``{"train.lr": 1e-4}``; lists and None as text (what every tracker takes)."""
    flat: Dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = json.dumps(value, default=str)
    return flat


def open_run_loggers(config: Any, run_dir: Path, resumed_from: Optional[int]) -> Loggers:
    """The loggers of ``config.train.loggers`` for the training in ``run_dir`` (none: nothing is opened);
    ``resumed_from``: the step a resumed training continues from (its trackers' runs continue too)."""
    kinds = config.train.loggers
    if not kinds:
        return Loggers({})
    return open_loggers(kinds, run_dir, run_hparams(config), resume=resumed_from is not None,
                        start_step=resumed_from or 0)


def log_results(config: Any, run_dir: Path, step: int, values: Dict[str, float]) -> None:
    """Add a run's final metrics and costs (``eval/…``, ``cost/…``) to the runs its training logged to."""
    if config.train.loggers:
        loggers = open_loggers(config.train.loggers, run_dir, run_hparams(config), resume=True)
        loggers.results(step, values)
        loggers.close()


def run_hparams(config: Any) -> Dict[str, Any]:
    """The run's hyper-parameters: its effective config, as its cell key hashes it, and its seed, flattened."""
    from fusionlab.config import effective_config

    data = effective_config(config)
    data["train"]["seed"] = config.train.seed
    return flatten(data)


def result_scalars(metrics: Dict[str, Any], costs: Optional[Dict[str, Any]] = None) -> Dict[str, float]:
    """``eval/<metric>`` and ``cost/<cost>`` of the numeric entries (costs not measured are None: left out)."""
    def numeric(values: Dict[str, Any]) -> Dict[str, float]:
        return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}

    return {**{f"eval/{k}": v for k, v in numeric(metrics).items()},
            **{f"cost/{k}": v for k, v in numeric(costs or {}).items()}}
