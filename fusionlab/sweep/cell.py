"""One cell of a sweep: train, evaluate, measure what the model costs, write its folder, record its trial.

A cell's folder is ``results/<name>/trials/<trial number>/``: ``config.yaml``,
``train_log.csv``, ``log.txt`` (this cell's log), ``metrics.json`` and ``instances.csv``
(written by :mod:`fusionlab.results`), and ``checkpoint.safetensors`` with ``keep_checkpoints``.

While the cell runs, its folder also holds the training's resume points (``resume/``, see
:mod:`fusionlab.resume`), kept until the trial is COMPLETE. A cell claimed again after a trial of
it stopped (its worker killed, declared stale, or stopped on request) continues from the
resume points of its latest earlier trial: they move into the new trial's folder, with the
training log, on the results folder every worker shares. A stop request (Ctrl-C,
:func:`fusionlab.train.request_stop`) during training writes a point and hands the cell back:
the trial is FAIL with ``interrupted: true``, which no retry count counts, and the next worker
that claims the cell continues it.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional

import torch
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from fusionlab.config import DEPTH_BRANCH_FIELDS, RunConfig
from fusionlab.errors import FusionlabError
from fusionlab.loggers import IDENTITY_FILE, RunIdentity, log_results, result_scalars
from fusionlab.loggers.tensorboard import FOLDER as TENSORBOARD_FOLDER
from fusionlab.models import EfficientViTSam
from fusionlab.resume import FOLDER as RESUME_FOLDER
from fusionlab.resume import newest_point, point_files, remove_points, step_of
from fusionlab.results import METRIC_COLUMNS, numeric_metrics, write_evaluation
from fusionlab.sweep import trial_attrs
from fusionlab.sweep.config import Cell, LatencySection, SweepConfig
from fusionlab.sweep.progress import CellProgress
from fusionlab.sweep.store import Store, cell_trials, heartbeat
from fusionlab.train import StopRequested

log = logging.getLogger("fusionlab.sweep")


def run_cell(store: Store, sweep: SweepConfig, cell: Cell, trial: FrozenTrial) -> Dict[str, Any]:
    """Run ``cell`` as its claimed RUNNING ``trial`` and record the outcome in the trial.

    A failure of the cell's own work (a diverging loss, a bad file in the data) is recorded as
    FAIL with its reason and the sweep goes on. A results folder that cannot be written is
    recorded the same way, then raised: no later cell could be written either.

    Returns the recorded attributes plus ``state`` (COMPLETE / FAIL / DISCARDED: another worker
    declared this one dead while it ran) and ``trial``.

    Raises:
        StopRequested: a stop was requested while the cell trained: the trial is recorded as
            handed back (FAIL with ``interrupted: true``), its resume point written.
    """
    folder = sweep.results / "trials" / str(trial.number)
    start = time.perf_counter()
    folder_error: Optional[OSError] = None
    stopped: Optional[StopRequested] = None
    try:
        _prepare_folder(folder)
        take_over_points(store, sweep, cell, trial.number, folder)
    except OSError as exc:
        folder_error = exc
    point = newest_point(folder) if folder_error is None else None
    progress = CellProgress(resumed_from=step_of(point) if point is not None else 0)
    if folder_error is None:
        with trial_log(folder / "log.txt"), heartbeat(store, trial.number, sweep.heartbeat.interval, progress.attrs):
            log.info("trial %d: variant %s, seed %d, cell %s", trial.number, cell.variant.name, cell.seed, cell.key)
            config = cell.run_config()
            config.train.save_checkpoint = sweep.keep_checkpoints
            try:
                name_logger_runs(config, folder, sweep, cell)
                record = train_and_evaluate(config, folder, sweep, reference=cell.variant.is_reference,
                                            on_log=progress.update)
                state = TrialState.COMPLETE
            except StopRequested as stop:
                stopped, state = stop, TrialState.FAIL
                record = {trial_attrs.INTERRUPTED: True,
                          trial_attrs.ERROR: f"interrupted at step {stop.step}: handed back; the next worker continues "
                                             f"it from its resume point"}
                log.warning("trial %d stopped on request at step %d; the cell is handed back (resume point %s)",
                            trial.number, stop.step, stop.resume_point)
            except Exception as exc:  # any failure of one cell must not stop the sweep
                if isinstance(exc, OSError) and str(exc.filename or "").startswith(str(folder)):
                    folder_error = exc
                message = str(exc).splitlines()[0] if str(exc) else ""
                record, state = {trial_attrs.ERROR: f"{type(exc).__name__}: {message}".rstrip(": ")}, TrialState.FAIL
                log.error("trial %d failed: %s\n%s", trial.number, record[trial_attrs.ERROR], traceback.format_exc())
    if folder_error is not None:
        record, state = {trial_attrs.ERROR: f"cannot write {folder}: {folder_error}"}, TrialState.FAIL
    record[trial_attrs.WALL_S] = round(time.perf_counter() - start, 2)
    recorded = _record(store, trial.number, record, state)
    if state == TrialState.COMPLETE or not recorded:  # nothing left to continue here
        remove_points(folder)
    if stopped is not None:
        raise stopped
    if folder_error is not None:
        reason = folder_error.strerror or str(folder_error)
        raise FusionlabError(f"results folder {sweep.results}: cannot write {folder} ({reason}); check the folder "
                             f"and rerun")
    return {**record, "state": state.name if recorded else "DISCARDED", "trial": trial.number}


def _prepare_folder(folder: Path) -> None:
    """Create the trial's folder; an older folder of the same number is moved aside, never deleted."""
    if folder.exists():
        aside = folder.with_name(f"{folder.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        log.warning("%s exists already (left by another study?): moved to %s", folder, aside)
        folder.rename(aside)
    folder.mkdir(parents=True)


def take_over_points(store: Store, sweep: SweepConfig, cell: Cell, number: int, folder: Path) -> Optional[int]:
    """Move the resume points of the cell's latest earlier trial that has some into ``folder`` (with its
    ``train_log.csv``, its loggers' run ids and TensorBoard events), so that trial ``number`` continues
    its training; returns that trial's number.

    Every earlier trial of a cell that is being claimed again has failed: killed, stale, handed
    back, or failed by itself. Whichever it was, its points continue its run (the training
    checks they are of this cell's config, seed and checkpoint); delete a trial's ``resume/``
    folder to start its cell from step 0 instead.
    """
    earlier = [t for t in cell_trials(store, [cell.key]) if t.number < number and t.state == TrialState.FAIL]
    for trial in sorted(earlier, key=lambda t: t.number, reverse=True):
        source = sweep.results / "trials" / str(trial.number)
        if not point_files(source / RESUME_FOLDER):
            continue
        os.replace(source / RESUME_FOLDER, folder / RESUME_FOLDER)  # one rename: the points move whole
        if (source / "train_log.csv").is_file():
            shutil.copyfile(source / "train_log.csv", folder / "train_log.csv")
        # the loggers' runs continue too: their ids, and TensorBoard's events (moved: one run per cell)
        if (source / IDENTITY_FILE).is_file():
            shutil.copyfile(source / IDENTITY_FILE, folder / IDENTITY_FILE)
        if (source / TENSORBOARD_FOLDER).is_dir():
            os.replace(source / TENSORBOARD_FOLDER, folder / TENSORBOARD_FOLDER)
        why = "handed back" if trial.user_attrs.get(trial_attrs.INTERRUPTED) else (
            "stale" if trial.user_attrs.get(trial_attrs.STALE) else "failed")
        log.info("trial %d continues trial %d (%s): its resume points moved to %s", number, trial.number, why,
                 folder / RESUME_FOLDER)
        return trial.number
    return None


def _record(store: Store, number: int, record: Dict[str, Any], state: TrialState) -> bool:
    """Write ``record`` into the trial and close it; False when another worker closed it first."""
    value = record[trial_attrs.METRICS]["box_miou"] if state == TrialState.COMPLETE else None
    try:
        if store.trial(number).state == TrialState.RUNNING:
            store.set_attrs(number, record)
            if store.finish(number, value, state):
                return True
    except UpdateFinishedTrialError:  # closed between the check and the write
        log.debug("trial %d closed while its result was written", number)
    log.warning("trial %d was declared dead by another worker while this one ran it (no heartbeat for longer "
                "than the grace); its result is discarded and the cell is run again", number)
    return False


def name_logger_runs(config: RunConfig, folder: Path, sweep: SweepConfig, cell: Cell) -> None:
    """With ``train.loggers``, the cell's runs in them: ``variant/seed`` in group (experiment) ``sweep.name``,
    the shared stores in the results folder; the run ids of a cell that continues are kept."""
    if config.train.loggers:
        ids = RunIdentity.of(folder).ids if (folder / IDENTITY_FILE).is_file() else {}
        RunIdentity(f"{cell.variant.name}/{cell.seed}", sweep.name, str(sweep.results.resolve()), ids).write(folder)


def train_and_evaluate(config: RunConfig, folder: Path, sweep: SweepConfig, reference: bool = False,
                       on_log: Optional[Callable[[int, int, Dict[str, float]], None]] = None) -> Dict[str, Any]:
    """Train and evaluate ``config`` into ``folder``; its metrics, costs, steps and final loss.

    A ``reference`` variant (a released model in the table to compare with) is evaluated from its
    checkpoint as it is, without training; its latency is timed against the sweep's RGB-only baseline.
    ``on_log``: the training's progress (:func:`fusionlab.train.train`); the metrics and costs also go
    to ``train.loggers``.
    """
    from fusionlab.evaluate import evaluate
    from fusionlab.train import train

    if reference:
        log.info("reference variant: evaluating %s as released (no training)", config.model.checkpoint)
        # evaluate() moves it to eval.device
        model, steps, final_loss, resumed_from = config.model.build(), 0, None, None
    elif config.train.devices_per_cell > 1:
        from fusionlab.sweep.ddp_cell import train_on_processes

        model, steps, final_loss, resumed_from = train_on_processes(config, folder)
    else:
        # the points stay until the trial is recorded: a cell stopped while it evaluates does not train again
        result = train(config, folder, progress=False, keep_resume_points=True, on_log=on_log)
        model, steps, final_loss, resumed_from = result.model, result.steps, result.final_loss, result.resumed_from_step
    evaluation = evaluate(model, config, progress=False)
    write_evaluation(folder, evaluation.metrics, evaluation.instances, evaluation.predictions)
    costs = measure_costs(model, config, sweep.latency, sweep.baseline.config if reference else None)
    metrics = numeric_metrics(evaluation.metrics)
    log_results(config, folder, steps, result_scalars(metrics, costs))
    # the headline metrics also as attributes of their own: columns in optuna-dashboard's trial table
    headline = {name: metrics[name] for name in METRIC_COLUMNS if name in metrics}
    return {trial_attrs.METRICS: metrics, **headline, **costs, trial_attrs.TRAIN_STEPS: steps,
            trial_attrs.FINAL_LOSS: final_loss, trial_attrs.RESUMED_FROM_STEP: resumed_from}


def measure_costs(model: torch.nn.Module, config: RunConfig, latency: LatencySection,
                  baseline: Optional[RunConfig] = None) -> Dict[str, Any]:
    """Parameters (M), GMACs of one encoder forward, latency timed against the RGB-only baseline, and throughput.

    Every cell is measured the same way, on an eager copy of ``model`` in the default memory
    format on ``model``'s device: how it trained (``compile``, ``channels_last``, several
    processes) is not in its cell key, so it must not show in its costs either, and the
    baseline it is timed against is eager too.

    GMACs and latency are :func:`fusionlab.models.cost.encoder_gmacs` and
    :func:`~fusionlab.models.cost.latency_ratios` (one encoder + decoder forward with one box
    prompt, alternating with the RGB-only baseline of the same preset built in the same process,
    median of ``latency.runs`` after ``latency.warmup``; 1.0 for an RGB-only model, which is that
    baseline). Throughput is :func:`~fusionlab.models.cost.encoder_throughput` (images per second
    through the encoder(s) and fusion blocks on the model's device, same runs and warmup), with its
    ``throughput_batch`` and ``throughput_device``. ``latency_settings`` records how; with
    ``latency.enabled`` false, neither latency nor throughput is measured. ``baseline``: the RGB-only
    model to time against instead (a reference variant's, e.g. SAM ViT-H against the sweep's baseline).
    """
    from fusionlab.models import build_model
    from fusionlab.models.cost import (count_parameters, device_name, encoder_gmacs, encoder_throughput,
                                       latency_ratios, throughput_batch)

    model = eager_copy(model)
    costs: Dict[str, Any] = {"params_m": round(count_parameters(model) / 1e6, 4),
                             "gmacs": round(encoder_gmacs(model), 4), "latency_ratio": None,
                             "throughput_ips": None, "throughput_batch": None, "throughput_device": None,
                             trial_attrs.LATENCY_SETTINGS: {"enabled": latency.enabled, "runs": latency.runs,
                                                            "warmup": latency.warmup}}
    if not latency.enabled:
        return costs
    if not model.has_depth and baseline is None:
        costs["latency_ratio"] = 1.0  # the RGB-only model is its own baseline: 1 by definition, not by timing
    else:
        if baseline is not None:
            baseline_model = baseline.model.architecture().to(model.device)
        else:
            rgb_fields = {k: v for k, v in config.model.architecture_fields().items()
                          if k not in DEPTH_BRANCH_FIELDS}
            baseline_model = build_model(config.model.preset, **{**rgb_fields, "fusion": None}).to(model.device)
        ratios = latency_ratios({"model": model, "rgb_only": baseline_model}, "rgb_only", latency.runs,
                                latency.warmup)
        costs["latency_ratio"] = round(ratios["model"], 4)
    batch = throughput_batch(model.device)
    costs.update(throughput_ips=round(encoder_throughput(model, batch, latency.runs, latency.warmup), 3),
                 throughput_batch=batch, throughput_device=device_name(model.device))
    return costs


def eager_copy(model: EfficientViTSam) -> EfficientViTSam:
    """A new ``model`` of the same architecture and weights, uncompiled, contiguous, in eval mode."""
    copy = type(model)(model.config)
    copy.load_state_dict(model.state_dict())
    return copy.to(model.device).eval()


@contextmanager
def trial_log(path: Path) -> Iterator[None]:
    """Copy fusionlab's log records (train, evaluate, sweep) into ``path`` while the block runs."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger("fusionlab")
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
