"""TPE search over continuous knobs of one variant, with pruning on a quick val mIoU; on the sweep's store.

A sweep YAML with a ``search:`` section runs this instead of its cells: the optuna study
``<name>-search`` on the sweep's storage samples ``search.params`` with TPE, trains the
variant (seed = the first of ``seeds``), and after every epoch scores the first
``search.eval_images`` val images (box mIoU); ``trial.report`` + ``trial.should_prune`` stop
a trial the median pruner finds behind (after ``search.startup_trials`` finished trials).
The val set is loaded and its depth prepared once per worker, for these quick scores and
the full evaluation alike. The full evaluation's box mIoU is the objective.

Results: ``results/<name>/search.csv`` (one row per trial) and ``search/<trial>/`` folders.
Each worker samples with its own seed, so parallel workers start from different points;
heartbeats and stale-trial recovery are the cells' (:mod:`fusionlab.sweep.store`); concurrent workers may together
run a few more than ``n_trials``.
"""
from __future__ import annotations

import hashlib
import logging
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import optuna
import pandas as pd
import torch
from optuna.trial import TrialState
from tqdm import tqdm

from fusionlab.atomic import atomic_write_text
from fusionlab.config import RunConfig, from_dict
from fusionlab.errors import FusionlabError
from fusionlab.resume import remove_points
from fusionlab.results import numeric_metrics, write_evaluation
from fusionlab.sweep import trial_attrs
from fusionlab.sweep.cell import trial_log
from fusionlab.sweep.config import SweepConfig, set_dotted
from fusionlab.sweep.launch import open_results
from fusionlab.sweep.store import Store, fail_stale, heartbeat
from fusionlab.sweep.workers import in_worker, redraw_interval, run_processes

log = logging.getLogger("fusionlab.sweep")
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass
class SearchOutcome:
    """How a search launch ended: the best trial so far (None when none completed)."""

    completed: int
    best_trial: Optional[int]
    best_value: Optional[float]
    best_params: Dict[str, float]
    csv: Path


def search_options(sweep: SweepConfig, worker: int, finished: int) -> Dict[str, Any]:
    """Sampler and pruner for one worker: a TPE seed of its own (first seed, worker, trials so far)."""
    search = sweep.search
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=search.startup_trials) if search.pruner == "median"
              else optuna.pruners.NopPruner())
    digest = hashlib.sha256(f"{sweep.seeds[0]}/{worker}/{finished}".encode()).hexdigest()
    return {"sampler": optuna.samplers.TPESampler(seed=int(digest[:8], 16)), "pruner": pruner}


def open_search(sweep: SweepConfig, worker: int = 0) -> Store:
    """The ``<name>-search`` study with this worker's sampler and the pruner."""
    store = Store(sweep.storage, sweep.name + "-search")
    options = search_options(sweep, worker, len(store.trials()))
    store.study.sampler, store.study.pruner = options["sampler"], options["pruner"]
    return store


def trial_config(sweep: SweepConfig, trial: optuna.Trial) -> RunConfig:
    """The searched variant's config with this trial's sampled knobs and the first seed."""
    data = sweep.search_variant().config.to_dict()
    for key, knob in sweep.search.params.items():
        set_dotted(data, key, trial.suggest_float(key, knob.low, knob.high, log=knob.log))
    config = from_dict(RunConfig, data, f"{sweep.source}: search trial {trial.number}")
    config.train.seed = sweep.seeds[0]
    config.train.save_checkpoint = sweep.keep_checkpoints
    return config


class ValSet:
    """The val dataset and its prepared depth source, made once and reused by every evaluation of a worker."""

    def __init__(self) -> None:
        self._dataset: Any = None
        self._sources: Dict[Tuple[str, str], Any] = {}

    def evaluate(self, model: torch.nn.Module, config: RunConfig, max_images: Optional[int] = None) -> Any:
        from fusionlab.evaluate import eval_depth_source, evaluate, val_dataset

        if self._dataset is None:
            self._dataset = val_dataset(config)
        source = None
        if model.has_depth:
            key = (config.depth.source if not config.eval.drop_depth else "dropped", repr(config.depth.options))
            if key not in self._sources:
                self._sources[key] = eval_depth_source(model, config, self._dataset, progress=False)
            source = self._sources[key]
        return evaluate(model, config, self._dataset, progress=False, max_images=max_images, depth_source=source)


def run_search_trial(store: Store, sweep: SweepConfig, run_id: str, val: ValSet) -> Dict[str, Any]:
    """Ask, train with per-epoch pruning checks, evaluate, tell; returns the recorded attributes.

    A search trial is never continued: its resume points are removed when it ends, and a stop
    request (Ctrl-C) records it as FAIL and stops the search (:class:`~fusionlab.train.StopRequested`
    is raised on).
    """
    from fusionlab.train import StopRequested, train

    trial = store.study.ask()
    trial.set_user_attr(trial_attrs.HEARTBEAT, time.time())
    trial.set_user_attr(trial_attrs.RUN_ID, run_id)
    folder = sweep.results / "search" / str(trial.number)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    record: Dict[str, Any] = {}
    stopped: Optional[StopRequested] = None
    with trial_log(folder / "log.txt"), heartbeat(store, trial.number, sweep.heartbeat.interval):
        try:
            config = trial_config(sweep, trial)

            def report(epoch: int, model: torch.nn.Module) -> None:
                score = val.evaluate(model, config, max_images=sweep.search.eval_images).metrics["box_miou"]
                trial.report(score, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"epoch {epoch}: quick box mIoU {score:.2f} below the median")

            result = train(config, folder, progress=False, on_epoch_end=report)
            evaluation = val.evaluate(result.model, config)
            write_evaluation(folder, evaluation.metrics, evaluation.instances, evaluation.predictions)
            record[trial_attrs.METRICS] = numeric_metrics(evaluation.metrics)
            state = TrialState.COMPLETE
        except optuna.TrialPruned as exc:
            record[trial_attrs.ERROR], state = f"pruned: {exc}", TrialState.PRUNED
        except StopRequested as exc:
            stopped, state = exc, TrialState.FAIL
            record[trial_attrs.ERROR] = f"interrupted at step {exc.step}: the search stopped on request"
        except Exception as exc:  # one bad sample must not stop the search
            record[trial_attrs.ERROR], state = f"{type(exc).__name__}: {exc}".splitlines()[0], TrialState.FAIL
            log.error("search trial %d failed: %s\n%s", trial.number, record[trial_attrs.ERROR], traceback.format_exc())
        record[trial_attrs.WALL_S] = round(time.perf_counter() - start, 2)
    remove_points(folder)
    try:
        store.set_attrs(trial.number, record)
    except optuna.exceptions.UpdateFinishedTrialError:
        log.warning("search trial %d was declared dead by another worker; its result is discarded", trial.number)
    else:
        store.finish(trial.number, record.get(trial_attrs.METRICS, {}).get("box_miou"), state)
        log.info("search trial %d %s: %s", trial.number, state.name, trial.params)
    if stopped is not None:
        raise stopped
    return record


def write_search_csv(store: Store, sweep: SweepConfig) -> Path:
    """``search.csv``: trial_id, state, the sampled knobs, the metrics, wall_s, error."""
    rows = [{"trial_id": t.number, "state": t.state.name, **t.params, **t.user_attrs.get(trial_attrs.METRICS, {}),
             "wall_s": t.user_attrs.get(trial_attrs.WALL_S), "error": t.user_attrs.get(trial_attrs.ERROR)}
            for t in store.trials()]
    return atomic_write_text(sweep.results / "search.csv", pd.DataFrame(rows).to_csv(index=False))


def _counted(store: Store) -> int:
    """Trials that count towards ``n_trials``: finished, or running with a live heartbeat."""
    return len(store.trials(states=_FINISHED + (TrialState.RUNNING,)))


def search_work(sweep: SweepConfig, run_id: str, worker: int = 0, bar: Optional[tqdm] = None) -> None:
    """Run search trials until the study holds ``n_trials`` finished or running ones."""
    store = open_search(sweep, worker)
    val = ValSet()
    while True:
        fail_stale(store, sweep.heartbeat.grace)
        if _counted(store) >= sweep.search.n_trials:
            return
        try:
            run_search_trial(store, sweep, run_id, val)
        finally:  # a trial stopped on request is recorded too
            write_search_csv(store, sweep)
        if bar is not None:
            bar.update(1)


def search_process(config_path: str, overrides: List[str], storage: Optional[str], run_id: str, worker: int,
                   threads: int) -> None:
    """Entry point of one spawned search worker; a stop request ends it without an error."""
    from fusionlab.train import StopRequested

    with in_worker(config_path, overrides, storage, threads) as sweep:
        try:
            search_work(sweep, run_id, worker=worker)
        except StopRequested:
            return


def run_search(sweep: SweepConfig, workers: int = 1, progress: bool = True) -> SearchOutcome:
    """Run the search with ``workers`` local processes until ``n_trials``; the best trial so far."""
    if workers < 1:
        raise FusionlabError(f"--workers {workers}: expected at least 1")
    store = open_results(sweep)
    bar = tqdm(total=sweep.search.n_trials, initial=min(_counted(store), sweep.search.n_trials),
               desc=f"search {sweep.name}", unit="trial", dynamic_ncols=True, disable=not progress,
               mininterval=redraw_interval())
    run_id = uuid.uuid4().hex
    try:
        if workers == 1:
            search_work(sweep, run_id, bar=bar)
        else:
            def follow() -> None:
                bar.update(max(0, len(store.trials(states=_FINISHED)) - bar.n))

            run_processes(search_process, (str(sweep.source), sweep.overrides, sweep.storage, run_id),
                          workers, follow)
    finally:
        bar.close()
    csv = write_search_csv(store, sweep)
    complete = store.trials(states=(TrialState.COMPLETE,))
    if not complete:
        log.warning("no search trial completed; see %s", csv)
        return SearchOutcome(0, None, None, {}, csv)
    best = store.study.best_trial
    log.info("best search trial %d: box mIoU %.2f with %s", best.number, best.value, best.params)
    return SearchOutcome(len(complete), best.number, best.value, dict(best.params), csv)
