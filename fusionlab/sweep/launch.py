"""One launch of a sweep: open and bind the store, start the workers, follow them, say how it ended.

``fusionlab sweep CONFIG`` calls :func:`run_sweep`; other machines join by running the same
command on the same storage. A launch runs every cell that is not COMPLETE (failed and stale
ones included) and keeps everything finished.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from optuna.trial import TrialState
from tqdm import tqdm

from fusionlab.atomic import remove_leftovers
from fusionlab.errors import FusionlabError
from fusionlab.results import SWEEP_FILE, write_json
from fusionlab.sweep import trial_attrs
from fusionlab.sweep.config import SweepConfig
from fusionlab.sweep.store import Store, bind_results, existing_study, redact
from fusionlab.sweep.workers import (assign_devices, cell_states, code_version, log_to_file, pin_device,
                                     redraw_interval, run_processes, settled_count, work, worker_process,
                                     write_trials_csv)

log = logging.getLogger("fusionlab.sweep")


@dataclass
class SweepOutcome:
    """How a launch ended: ``incomplete`` lists the cells not COMPLETE (their errors are in ``trials.csv``)."""

    total: int
    results: Path
    incomplete: List[str] = field(default_factory=list)
    crashed_workers: List[str] = field(default_factory=list)

    @property
    def complete(self) -> int:
        return self.total - len(self.incomplete)


def open_results(sweep: SweepConfig) -> Store:
    """The sweep's store, with its results folder bound to it, writable, and cleared of dead writers' leftovers."""
    store = Store(sweep.storage, sweep.name + ("-search" if sweep.search is not None else ""))
    bind_results(sweep.results, store)
    folder = sweep.results / ("search" if sweep.search is not None else "trials")
    try:
        folder.mkdir(exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise FusionlabError(f"results folder {sweep.results}: {folder} is a file; expected a folder") from None
    except PermissionError:
        raise FusionlabError(f"results folder {sweep.results}: no permission to create {folder}") from None
    removed = remove_leftovers(sweep.results)
    log_to_file(sweep)
    if removed:
        log.info("removed %d temporary file(s) left by killed writers in %s", removed, sweep.results)
    return store


def run_sweep(sweep: SweepConfig, workers: Optional[int] = 1, progress: bool = True,
              devices: Optional[Sequence[str]] = None, per_device: int = 1) -> SweepOutcome:
    """Run every cell of ``sweep`` not yet COMPLETE with local worker processes (one: this process).

    ``workers``, ``devices`` and ``per_device`` are :func:`~fusionlab.sweep.workers.assign_devices`'s:
    by default one worker per visible GPU, each pinned to its GPU, or one worker on the CPU.
    """
    per_cell = max(v.config.train.devices_per_cell for v in sweep.variants)
    assigned = assign_devices(workers, devices, per_device, per_cell)
    workers = len(assigned)
    store = open_results(sweep)
    write_sweep_json(sweep)
    warn_about_old_cells(store, sweep)
    cells = sweep.cells()
    run_id = uuid.uuid4().hex
    done = settled_count(store, sweep, run_id)
    log.info("sweep %s: %d cells, %d complete, %d worker(s) on %s, storage %s; a cell whose worker stops "
             "beating for %d s is run again", sweep.name, len(cells), done, workers,
             ", ".join(d or "the configured device" for d in assigned), redact(sweep.storage), sweep.heartbeat.grace)
    bar = tqdm(total=len(cells), initial=done, desc=f"sweep {sweep.name}", unit="cell", dynamic_ncols=True,
               disable=not progress, mininterval=redraw_interval())

    def follow(*_: Any) -> None:
        bar.update(max(0, settled_count(store, sweep, run_id) - bar.n))

    crashed: List[str] = []
    try:
        if workers == 1:
            pin_device(sweep, assigned[0])
            work(sweep, run_id, say=bar.write if progress else print, on_trial=follow)
        else:
            crashed = run_processes(worker_process, (str(sweep.source), sweep.overrides, sweep.storage, run_id,
                                                     assigned), workers, follow)
    finally:
        bar.close()
    write_trials_csv(store, sweep)
    states = cell_states(store, sweep)
    incomplete = [c.key for c in cells if c.key not in states or states[c.key].state != TrialState.COMPLETE]
    if crashed:
        log.error("worker(s) %s exited with an error; see %s", ", ".join(crashed), sweep.results / "sweep.log")
    if incomplete:
        log.warning("%d of %d cells did not complete (see %s); rerun to retry them", len(incomplete), len(cells),
                    sweep.results / "trials.csv")
    else:
        log.info("sweep %s complete: %s", sweep.name, sweep.results)
    return SweepOutcome(total=len(cells), results=sweep.results, incomplete=incomplete, crashed_workers=crashed)


def warn_about_old_cells(store: Store, sweep: SweepConfig) -> None:
    """Say when finished cells were made by other code or with other latency settings: they are kept."""
    now = code_version()
    latency = {"enabled": sweep.latency.enabled, "runs": sweep.latency.runs, "warmup": sweep.latency.warmup}
    complete = [t for t in cell_states(store, sweep).values() if t.state == TrialState.COMPLETE]
    other_code = [t for t in complete if {k: t.user_attrs.get(k) for k in now} != now]
    if other_code:
        attrs = other_code[0].user_attrs
        log.warning("%d finished cell(s) were run by fusionlab %s (commit %s); this is %s (commit %s). They are "
                    "kept, not rerun: the cell key covers the config and the files it reads, not the code. To rerun "
                    "them, move %s away", len(other_code), attrs.get(trial_attrs.FUSIONLAB_VERSION, "?"),
                    attrs.get(trial_attrs.GIT_COMMIT, "?"), now[trial_attrs.FUSIONLAB_VERSION],
                    now.get(trial_attrs.GIT_COMMIT, "?"), sweep.results)
    other_latency = [t for t in complete if t.user_attrs.get(trial_attrs.LATENCY_SETTINGS, latency) != latency]
    if other_latency:
        log.warning("%d finished cell(s) measured latency with %s (now %s): their latency figures are kept",
                    len(other_latency), other_latency[0].user_attrs.get(trial_attrs.LATENCY_SETTINGS), latency)


def write_sweep_json(sweep: SweepConfig) -> Path:
    """``sweep.json``: the plan and its captions, for the report."""
    base = sweep.baseline.config
    summary = {"name": sweep.name, "seeds": sweep.seeds, "baseline": sweep.baseline.name,
               "axis": sweep.axis.summary() if sweep.axis else None,
               "variants": [v.summary() for v in sweep.variants],
               "dataset": _describe_dataset(base.data.dataset, base.data.train_options()) + _per_block(sweep, "data.train"),
               "eval_dataset": (_describe_dataset(base.data.eval_dataset or base.data.dataset, base.data.val)
                                + _per_block(sweep, "data.val")),
               "depth_source": _describe_depth(base), "prompts": list(base.eval.prompts),
               "total_cells": len(sweep.cells())}
    return write_json(sweep.results / SWEEP_FILE, summary)


def _per_block(sweep: SweepConfig, prefix: str) -> str:
    """``"; data.train.num_images per block: 25, 50, 100, 200"`` when the axis changes that data, else ""."""
    axis = sweep.axis
    if axis is None or not axis.key.startswith(prefix + "."):
        return ""
    return f"; {axis.key} per block: {', '.join(str(v) for v in axis.values)}"


def _describe_dataset(name: str, options: Dict[str, Any]) -> str:
    from fusionlab.data import build_dataset

    return build_dataset(name, **options).describe()


def _describe_depth(config: Any) -> str:
    from fusionlab.depth import build_depth_source

    try:
        return build_depth_source(config.depth.source, **config.depth.options).describe()
    except FusionlabError as exc:  # e.g. a depth model not downloaded yet: the caption must not stop the sweep
        log.warning("cannot describe depth source %r: %s", config.depth.source, exc)
        return f"{config.depth.source} {config.depth.options or ''}".strip()


@dataclass
class CellRow:
    """One line of ``--dry-run``."""

    variant: str
    group: str
    seed: int
    state: str
    trial: Optional[int]


def describe_cells(sweep: SweepConfig) -> List[CellRow]:
    """Every cell with its state (COMPLETE / FAIL / RUNNING / pending); creates nothing."""
    states = cell_states(existing_study(sweep.storage, sweep.name), sweep)
    rows = []
    for cell in sweep.cells():
        trial = states.get(cell.key)
        rows.append(CellRow(cell.variant.name, cell.variant.group, cell.seed,
                            trial.state.name if trial is not None else "pending",
                            trial.number if trial is not None else None))
    return rows
