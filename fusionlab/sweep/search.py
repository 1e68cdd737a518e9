"""TPE search over continuous knobs of one variant, with pruning on a quick val mIoU.

A sweep YAML with a ``search:`` section runs this instead of its cells: the optuna study
``<name>-search`` on the sweep's storage samples ``search.params`` with TPE, trains the
variant (seed = the first of ``seeds``), and after every epoch scores the first
``search.eval_images`` val images (box mIoU); ``trial.report`` + ``trial.should_prune`` stop
a trial the median pruner finds behind. The full evaluation's box mIoU is the objective.
Results: ``results/<name>/search.csv`` (one row per trial) and ``search/<trial>/`` folders.
Workers, heartbeats and stale-trial recovery are the cell runner's; concurrent workers
may together run a few more than ``n_trials``.
"""
from __future__ import annotations

import json
import logging
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

import optuna
import pandas as pd
import torch
from optuna.trial import TrialState
from tqdm import tqdm

from fusionlab.config import RunConfig, from_dict
from fusionlab.sweep.config import SweepConfig, Variant, load_sweep, set_dotted
from fusionlab.sweep.runner import (fail_stale_trials, heartbeat, log_to_file, open_study, run_processes,
                                    trial_log, _write_text)

log = logging.getLogger("fusionlab.sweep")
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def search_variant(sweep: SweepConfig) -> Variant:
    """The variant ``search.variant`` names, else the first one that is not the baseline."""
    name = sweep.search.variant
    return next(v for v in sweep.variants if (v.name == name if name else v.group != "baseline"))


def open_search_study(sweep: SweepConfig) -> optuna.Study:
    pruner = optuna.pruners.MedianPruner() if sweep.search.pruner == "median" else optuna.pruners.NopPruner()
    return open_study(sweep, "-search", sampler=optuna.samplers.TPESampler(seed=sweep.seeds[0]), pruner=pruner)


def trial_config(sweep: SweepConfig, trial: optuna.Trial) -> RunConfig:
    """The searched variant's config with this trial's sampled knobs and the first seed."""
    data = search_variant(sweep).config.to_dict()
    for key, knob in sweep.search.params.items():
        value = trial.suggest_float(key, knob.low, knob.high, log=knob.log)
        set_dotted(data, key, value)
    config = from_dict(RunConfig, data, f"{sweep.source}: search trial {trial.number}")
    config.train.seed = sweep.seeds[0]
    config.train.save_checkpoint = sweep.keep_checkpoints
    return config


def run_search_trial(study: optuna.Study, sweep: SweepConfig, run_id: str) -> Dict[str, Any]:
    """Ask, train with per-epoch pruning checks, evaluate, tell; returns the recorded attributes."""
    from fusionlab.evaluate import evaluate
    from fusionlab.train import train

    trial = study.ask()
    trial.set_user_attr("heartbeat", time.time())
    trial.set_user_attr("run_id", run_id)
    folder = sweep.results / "search" / str(trial.number)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    record: Dict[str, Any] = {}
    with trial_log(folder / "log.txt"), heartbeat(study, trial, sweep.heartbeat.interval):
        try:
            config = trial_config(sweep, trial)

            def report(epoch: int, model: torch.nn.Module) -> None:
                score = evaluate(model, config, progress=False, max_images=sweep.search.eval_images).metrics
                trial.report(score["box_miou"], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"epoch {epoch}: quick box mIoU {score['box_miou']:.2f} below the median")

            result = train(config, folder, progress=False, on_epoch_end=report)
            evaluation = evaluate(result.model, config, progress=False)
            _write_text(folder / "metrics.json", json.dumps(evaluation.metrics, indent=2, default=float))
            _write_text(folder / "instances.csv", evaluation.instances.to_csv(index=False))
            record["metrics"] = {k: float(v) for k, v in evaluation.metrics.items() if isinstance(v, (int, float))}
            state = TrialState.COMPLETE
        except optuna.TrialPruned as exc:
            record["error"], state = f"pruned: {exc}", TrialState.PRUNED
        except Exception as exc:  # one bad sample must not stop the search
            record["error"], state = f"{type(exc).__name__}: {exc}".splitlines()[0], TrialState.FAIL
            log.error("search trial %d failed: %s\n%s", trial.number, record["error"], traceback.format_exc())
        record["wall_s"] = round(time.perf_counter() - start, 2)
        for key, value in record.items():
            trial.set_user_attr(key, value)
        study.tell(trial, record["metrics"]["box_miou"] if state == TrialState.COMPLETE else None, state=state)
    log.info("search trial %d %s: %s", trial.number, state.name, trial.params)
    return record


def write_search_csv(study: optuna.Study, sweep: SweepConfig) -> Path:
    """``search.csv``: trial_id, state, the sampled knobs, the metrics, wall_s, error."""
    rows = [{"trial_id": t.number, "state": t.state.name, **t.params, **t.user_attrs.get("metrics", {}),
             "wall_s": t.user_attrs.get("wall_s"), "error": t.user_attrs.get("error")}
            for t in study.get_trials(deepcopy=False)]
    path = sweep.results / "search.csv"
    _write_text(path, pd.DataFrame(rows).to_csv(index=False))
    return path


def _counted(study: optuna.Study) -> int:
    """Trials that count towards ``n_trials``: finished, or running with a live heartbeat."""
    return len(study.get_trials(deepcopy=False, states=_FINISHED + (TrialState.RUNNING,)))


def search_work(sweep: SweepConfig, run_id: str, bar: Optional[tqdm] = None) -> None:
    study = open_search_study(sweep)
    while True:
        fail_stale_trials(study, sweep.heartbeat.grace)
        if _counted(study) >= sweep.search.n_trials:
            return
        run_search_trial(study, sweep, run_id)
        write_search_csv(study, sweep)
        if bar is not None:
            bar.update(1)


def _search_process(config_path: str, overrides: List[str], storage: Optional[str], run_id: str,
                    threads: int) -> None:
    torch.set_num_threads(threads)
    sweep = load_sweep(config_path, overrides, storage)
    log_to_file(sweep)
    search_work(sweep, run_id)


def search_main(sweep: SweepConfig, config_path: str, workers: int, overrides: List[str], storage: Optional[str],
                dry_run: bool) -> int:
    """Run (or with ``dry_run`` describe) the search; 0 when at least one trial completed, else 3."""
    variant = search_variant(sweep)
    if dry_run:
        print(f"search {sweep.name}-search: {sweep.search.n_trials} TPE trials of variant {variant.name} over "
              f"{', '.join(sweep.search.params)}; storage {sweep.storage}")
        return 0
    log_to_file(sweep)
    study = open_search_study(sweep)
    bar = tqdm(total=sweep.search.n_trials, initial=min(_counted(study), sweep.search.n_trials),
               desc=f"search {sweep.name}", unit="trial", dynamic_ncols=True)
    run_id = uuid.uuid4().hex
    try:
        if workers == 1:
            search_work(sweep, run_id, bar)
        else:
            run_processes(_search_process, (config_path, overrides, storage, run_id), workers, sweep, bar,
                          lambda: len(study.get_trials(deepcopy=False, states=_FINISHED)))
    finally:
        bar.close()
    write_search_csv(study, sweep)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        log.warning("no search trial completed; see %s", sweep.results / "search.csv")
        return 3
    best = study.best_trial
    log.info("best search trial %d: box mIoU %.2f with %s", best.number, best.value, best.params)
    print(f"best trial {best.number}: box mIoU {best.value:.2f} with {best.params}")
    return 0
