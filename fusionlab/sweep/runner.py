"""Run a sweep's cells as trials of one optuna study: resumable, shareable between workers.

Each (variant, seed) cell is one trial with user attributes ``variant``, ``seed`` and
``cell`` (a key stable across reruns and machines). Claiming a cell creates its RUNNING
trial through the storage in one write; when two workers claim the same cell at once, the
trial with the lower number keeps it and the other is closed as FAIL with
``superseded: true`` (left out of ``trials.csv``), so a cell runs at most once at a time.

A worker beats every ``heartbeat.interval`` s (user attribute ``heartbeat``, wall-clock
time: machines sharing a store need clocks in sync within ``heartbeat.grace``). A RUNNING
trial silent for ``grace`` s belongs to a worker that died (``kill -9``, lost machine): any
worker fails it and the cell is claimed again. Optuna's own heartbeat is not used because
its journal storage has none and its RDB heartbeat starts only after the trial exists.

A worker skips COMPLETE cells and cells it saw fail in the same invocation (``run_id``), so
a rerun retries failures once and never retrains a finished cell.
"""
from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import random
import shutil
import statistics
import threading
import time
import traceback
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import optuna
import pandas as pd
import torch
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState, create_trial
from tqdm import tqdm

from fusionlab.atomic import atomic_write_bytes
from fusionlab.config import RunConfig
from fusionlab.errors import FusionlabError
from fusionlab.sweep.config import BASELINE, Cell, SweepConfig, load_sweep

log = logging.getLogger("fusionlab.sweep")

PROMPTS = ["box", "click1", "click3"]
METRIC_COLUMNS = ["box_miou", "box_miou_small", "box_miou_medium", "box_miou_large", "click1_miou", "click3_miou"]
COST_COLUMNS = ["params_m", "gmacs", "latency_ratio", "wall_s"]
EXIT_SOME_FAILED = 3
_STALE_ERROR = "the worker stopped without finishing (killed or lost: no heartbeat); the cell is retried"


# ------------------------------------------------------------------------------ storage
def open_study(sweep: SweepConfig, suffix: str = "", **study_options: Any) -> optuna.Study:
    """The sweep's optuna study ``<name><suffix>`` (created on first use); ``journal:<path>`` is a
    JournalFileBackend; ``study_options`` (sampler, pruner) go to ``optuna.create_study``."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = sweep.storage
    if url.startswith("journal:"):
        path = Path(url[len("journal:"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        storage: Any = JournalStorage(JournalFileBackend(str(path)))
    else:
        kwargs: Dict[str, Any] = {}
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
            # several worker processes write one file: wait for the lock instead of failing
            kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
        try:
            storage = RDBStorage(url, **kwargs)
        except (ValueError, ImportError) as exc:
            raise FusionlabError(f"storage {url!r}: {str(exc).splitlines()[0]}; expected an optuna storage URL "
                                 f"(sqlite:///path.db, postgresql://...) or journal:<path>") from exc
    return optuna.create_study(study_name=sweep.name + suffix, storage=storage, direction="maximize",
                               load_if_exists=True, **study_options)


def cell_trials(study: optuna.Study, sweep: SweepConfig) -> List[FrozenTrial]:
    """The study's trials that belong to this sweep's current cells, in number order, claim losers left out."""
    keys = {c.key for c in sweep.cells()}
    return [t for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get("cell") in keys and not t.user_attrs.get("superseded")]


def fail_stale_trials(study: optuna.Study, grace: float) -> List[int]:
    """Fail RUNNING trials whose last heartbeat is older than ``grace`` s; returns their numbers."""
    now = time.time()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = trial.user_attrs.get("heartbeat")
        if beat is None or now - float(beat) <= grace:
            continue
        with contextlib.suppress(ValueError, RuntimeError):  # another worker failed it first
            study.tell(trial.number, state=TrialState.FAIL)
            failed.append(trial.number)
            log.warning("trial %d (%s) had no heartbeat for %.0f s: marked FAIL, its cell will be retried",
                        trial.number, trial.user_attrs.get("cell"), now - float(beat))
    return failed


def claim(study: optuna.Study, cell: Cell, run_id: str) -> Optional[FrozenTrial]:
    """Create ``cell``'s RUNNING trial; None if another worker holds the cell."""
    token = uuid.uuid4().hex
    study.add_trial(create_trial(state=TrialState.RUNNING, user_attrs={
        "variant": cell.variant.name, "seed": cell.seed, "cell": cell.key, "run_id": run_id, "claim": token,
        "heartbeat": time.time(), "host": os.uname().nodename, "pid": os.getpid()}))
    same_cell = [t for t in study.get_trials(deepcopy=False)
                 if t.user_attrs.get("cell") == cell.key and not t.user_attrs.get("superseded")]
    mine = next(t for t in same_cell if t.user_attrs.get("claim") == token)
    rival = [t for t in same_cell if t.number != mine.number and (
        t.state == TrialState.COMPLETE or (t.state == TrialState.RUNNING and t.number < mine.number))]
    if rival:
        study._storage.set_trial_user_attr(mine._trial_id, "superseded", True)
        study.tell(mine.number, state=TrialState.FAIL)
        return None
    return mine


@contextmanager
def heartbeat(study: optuna.Study, trial: FrozenTrial, interval: float) -> Iterator[None]:
    """Beat for ``trial`` every ``interval`` s while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                study._storage.set_trial_user_attr(trial._trial_id, "heartbeat", time.time())
            except Exception:  # a failed beat is retried at the next interval; grace covers a few misses
                log.exception("heartbeat of trial %d failed", trial.number)

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


# ------------------------------------------------------------------------------ one trial
def run_cell(study: optuna.Study, sweep: SweepConfig, cell: Cell, trial: FrozenTrial) -> Dict[str, Any]:
    """Train, evaluate and measure one cell; record the result in its trial and its folder.

    Returns the attributes recorded (``state``, metrics, costs, ``error``).
    """
    folder = sweep.results / "trials" / str(trial.number)
    if folder.exists():  # a leftover of a deleted study that reused the number
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    config = cell.run_config()
    config.train.save_checkpoint = sweep.keep_checkpoints
    start = time.perf_counter()
    with trial_log(folder / "log.txt"), heartbeat(study, trial, sweep.heartbeat.interval):
        log.info("trial %d: variant %s, seed %d, cell %s", trial.number, cell.variant.name, cell.seed, cell.key)
        try:
            record = train_and_measure(config, folder, sweep)
            state = TrialState.COMPLETE
        except Exception as exc:  # any failure of one cell must not stop the sweep
            record = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")}
            log.error("trial %d failed: %s\n%s", trial.number, record["error"], traceback.format_exc())
            state = TrialState.FAIL
        record["wall_s"] = round(time.perf_counter() - start, 2)
        for key, value in record.items():
            study._storage.set_trial_user_attr(trial._trial_id, key, value)
        if state == TrialState.COMPLETE:
            study.tell(trial.number, record["metrics"]["box_miou"])
        else:
            study.tell(trial.number, state=TrialState.FAIL)
    record["state"] = state.name
    record["trial"] = trial.number
    return record


def train_and_measure(config: RunConfig, folder: Path, sweep: SweepConfig) -> Dict[str, Any]:
    """Train and evaluate ``config`` into ``folder``; metrics, instances, parameters, GMACs, latency."""
    from fusionlab.evaluate import evaluate
    from fusionlab.train import train

    result = train(config, folder, progress=False)
    evaluation = evaluate(result.model, config, progress=False)
    metrics = {k: float(v) for k, v in evaluation.metrics.items() if isinstance(v, (int, float))}
    _write_text(folder / "metrics.json", json.dumps(evaluation.metrics, indent=2, default=float))
    _write_text(folder / "instances.csv", evaluation.instances.to_csv(index=False))
    costs = model_costs(result.model, config, sweep)
    return {"metrics": metrics, **costs, "train_steps": result.steps, "final_loss": result.final_loss}


def model_costs(model: torch.nn.Module, config: RunConfig, sweep: SweepConfig) -> Dict[str, Optional[float]]:
    """Parameters (M), GMACs of one encoder forward, forward latency relative to the RGB-only model.

    GMACs = FLOPs / 2 / 1e9 as counted by ``torch.utils.flop_counter.FlopCounterMode`` on
    ``model.encode`` of one image (and depth map) at the preset's encoder input. Latency is
    the median over ``latency.runs`` timed forwards (encoder + decoder with one box prompt),
    after ``latency.warmup`` untimed ones, divided by that of the RGB-only model of the same
    preset built and timed the same way in the same process.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from fusionlab.models import build_model

    model.eval()
    inputs = _dummy_inputs(model)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.encode(inputs["images"], inputs["depths"])
    costs: Dict[str, Optional[float]] = {
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 4),
        "gmacs": round(counter.get_total_flops() / 2 / 1e9, 4), "latency_ratio": None}
    if sweep.latency.enabled:
        rgb_only = build_model(config.model.preset, fusion=None, **config.model.overrides).to(model.device).eval()
        costs["latency_ratio"] = round(latency_ratio(model, rgb_only, sweep.latency.runs, sweep.latency.warmup), 4)
    return costs


def _dummy_inputs(model: torch.nn.Module) -> Dict[str, Optional[torch.Tensor]]:
    """One image ``(1, 3, S, S)``, its depth ``(1, 1, S, S)`` (RGB-D only) and a box in the prompt frame."""
    size, frame = model.image_size[1], model.image_size[0]
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(1, 3, size, size, generator=generator).to(model.device)
    depths = torch.rand(1, 1, size, size, generator=generator).to(model.device) if model.has_depth else None
    boxes = torch.tensor([[frame * 0.25, frame * 0.25, frame * 0.75, frame * 0.75]], device=model.device)
    return {"images": images, "depths": depths, "boxes": boxes}


def latency_ratio(model: torch.nn.Module, reference: torch.nn.Module, runs: int, warmup: int) -> float:
    """Median forward time of ``model`` over that of ``reference``, timed alternately so that
    load from other processes hits both alike."""
    inputs = {id(m): _dummy_inputs(m) for m in (model, reference)}
    times: Dict[int, List[float]] = {id(model): [], id(reference): []}
    with torch.no_grad():
        for i in range(warmup + runs):
            for net in (model, reference):
                seconds = _forward_seconds(net, inputs[id(net)])
                if i >= warmup:
                    times[id(net)].append(seconds)
    return statistics.median(times[id(model)]) / statistics.median(times[id(reference)])


def _forward_seconds(model: torch.nn.Module, inputs: Dict[str, Optional[torch.Tensor]]) -> float:
    """Seconds of one encoder + decoder forward (one box prompt)."""
    cuda = model.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(model.device)
    start = time.perf_counter()
    embedding = model.encode(inputs["images"], inputs["depths"])
    model.decode(embedding, boxes=inputs["boxes"], multimask_output=False)
    if cuda:
        torch.cuda.synchronize(model.device)
    return time.perf_counter() - start


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


# ------------------------------------------------------------------------------ result files
def _write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_trials_csv(study: optuna.Study, sweep: SweepConfig) -> Path:
    """Regenerate ``trials.csv`` from the study: one row per trial of the current cells."""
    rows = []
    for trial in cell_trials(study, sweep):
        attrs = trial.user_attrs
        error = attrs.get("error")
        if trial.state == TrialState.FAIL and not error:
            error = _STALE_ERROR
        rows.append({"trial_id": trial.number, "variant": attrs["variant"], "seed": attrs["seed"],
                     "state": trial.state.name, **attrs.get("metrics", {}),
                     **{c: attrs.get(c) for c in COST_COLUMNS}, "error": error})
    extra = sorted({k for row in rows for k in row} - set(METRIC_COLUMNS) - set(COST_COLUMNS)
                   - {"trial_id", "variant", "seed", "state", "error"})
    columns = ["trial_id", "variant", "seed", "state"] + METRIC_COLUMNS + extra + COST_COLUMNS + ["error"]
    path = sweep.results / "trials.csv"
    _write_text(path, pd.DataFrame(rows, columns=columns).to_csv(index=False))
    return path


def write_sweep_json(sweep: SweepConfig) -> Path:
    """``sweep.json``: the plan and its captions, for the report."""
    base = sweep.baseline.config
    summary = {"name": sweep.name, "seeds": sweep.seeds, "baseline": BASELINE,
               "variants": [v.summary() for v in sweep.variants],
               "dataset": _describe_dataset(base.data.dataset, base.data.train),
               "eval_dataset": _describe_dataset(base.data.eval_dataset or base.data.dataset, base.data.val),
               "depth_source": _describe_depth(base), "prompts": list(base.eval.prompts),
               "total_cells": len(sweep.cells())}
    path = sweep.results / "sweep.json"
    _write_text(path, json.dumps(summary, indent=2))
    return path


def _describe_dataset(name: str, options: Dict[str, Any]) -> str:
    from fusionlab.data import build_dataset

    return build_dataset(name, **options).describe()


def _describe_depth(config: RunConfig) -> str:
    from fusionlab.depth import build_depth_source

    try:
        return build_depth_source(config.depth.source, **config.depth.options).describe()
    except FusionlabError as exc:  # e.g. a depth model not downloaded yet: the caption must not stop the sweep
        log.warning("cannot describe depth source %r: %s", config.depth.source, exc)
        return f"{config.depth.source} {config.depth.options or ''}".strip()


# ------------------------------------------------------------------------------ workers
def work(sweep: SweepConfig, run_id: str, on_trial: Optional[Callable[[Cell, Dict[str, Any]], None]] = None,
         spread: bool = False) -> None:
    """Claim and run cells until none is left to this invocation (``run_id``); wait for cells others hold.

    Cells go in plan order; with ``spread`` (one of several workers) a random one of the next
    few, so that workers starting together rarely claim the same cell.
    """
    study = open_study(sweep)
    cells = sweep.cells()
    rng = random.Random(os.getpid())
    while True:
        fail_stale_trials(study, sweep.heartbeat.grace)
        held, settled = set(), set()
        for trial in cell_trials(study, sweep):
            key = trial.user_attrs["cell"]
            if trial.state == TrialState.COMPLETE or (trial.state == TrialState.FAIL
                                                      and trial.user_attrs.get("run_id") == run_id):
                settled.add(key)
            elif trial.state == TrialState.RUNNING:
                held.add(key)
        todo = [c for c in cells if c.key not in settled | held]
        if not todo:
            if held - settled:
                time.sleep(sweep.heartbeat.interval)  # another worker holds a cell: it finishes or goes stale
                continue
            return
        cell = todo[rng.randrange(min(len(todo), 4))] if spread else todo[0]
        trial = claim(study, cell, run_id)
        if trial is None:
            continue
        record = run_cell(study, sweep, cell, trial)
        write_trials_csv(study, sweep)
        line = summary_line(cell, record)
        log.info(line)
        if on_trial is not None:
            on_trial(cell, record)
        else:
            print(line, flush=True)


def summary_line(cell: Cell, record: Dict[str, Any]) -> str:
    """``trial 4  add  seed 1  box mIoU 61.20  1-click 48.10  37.2 s`` (or the failure)."""
    head = f"trial {record['trial']}  {cell.variant.name}  seed {cell.seed}"
    if record["state"] != "COMPLETE":
        return f"{head}  FAILED after {record['wall_s']:.1f} s: {record['error']}"
    metrics = record["metrics"]
    click = metrics.get("click1_miou")
    return (f"{head}  box mIoU {metrics['box_miou']:.2f}  1-click {'-' if click is None else f'{click:.2f}'}  "
            f"{record['wall_s']:.1f} s")


def _worker_process(config_path: str, overrides: List[str], storage: Optional[str], run_id: str,
                    threads: int) -> None:
    torch.set_num_threads(threads)
    sweep = load_sweep(config_path, overrides, storage)
    log_to_file(sweep)
    work(sweep, run_id, spread=True)


def log_to_file(sweep: SweepConfig) -> None:
    sweep.results.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger("fusionlab")
    root.setLevel(logging.INFO)
    target = str((sweep.results / "sweep.log").resolve())
    if not any(getattr(h, "baseFilename", None) == target for h in root.handlers):
        handler = logging.FileHandler(target)
        handler.setFormatter(logging.Formatter("%(asctime)s %(processName)s %(name)s %(levelname)s %(message)s"))
        root.addHandler(handler)


def cell_states(study: Optional[optuna.Study], sweep: SweepConfig) -> Dict[str, FrozenTrial]:
    """Each cell key's deciding trial: its COMPLETE one, else its latest."""
    states: Dict[str, FrozenTrial] = {}
    for trial in cell_trials(study, sweep) if study is not None else []:
        key = trial.user_attrs["cell"]
        if states.get(key) is None or states[key].state != TrialState.COMPLETE:
            states[key] = trial
    return states


def _existing_study(sweep: SweepConfig) -> Optional[optuna.Study]:
    """The study if its store exists already (a dry run creates nothing)."""
    url = sweep.storage
    for prefix in ("sqlite:///", "journal:"):
        if url.startswith(prefix) and not Path(url[len(prefix):]).is_file():
            return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return open_study(sweep) if url.startswith("journal:") else optuna.load_study(
            study_name=sweep.name, storage=url)
    except KeyError:
        return None


def print_cells(sweep: SweepConfig) -> int:
    """Print every cell with its state (COMPLETE / FAIL / RUNNING / pending) and trial number."""
    states = cell_states(_existing_study(sweep), sweep)
    print(f"sweep {sweep.name}: {len(sweep.variants)} variants x {len(sweep.seeds)} seeds = "
          f"{len(sweep.cells())} cells; storage {sweep.storage}")
    done = 0
    for cell in sweep.cells():
        trial = states.get(cell.key)
        state = trial.state.name if trial is not None else "pending"
        done += state == "COMPLETE"
        trial_text = f"trial {trial.number}" if trial is not None else ""
        print(f"  {cell.variant.name:<24} {cell.variant.group:<9} seed {cell.seed:<4} {state:<9} {trial_text}")
    print(f"{done}/{len(sweep.cells())} cells complete")
    return 0


def sweep_main(config_path: str, workers: int = 1, storage: Optional[str] = None, overrides: Sequence[str] = (),
               dry_run: bool = False) -> int:
    """``fusionlab sweep CONFIG [--workers N] [--storage URL] [--set a.b=v] [--dry-run]``.

    Runs every cell not yet COMPLETE (failed and stale ones included) with ``workers`` local
    processes; other machines join by running the same command on the same storage.

    Returns:
        0 when every cell is COMPLETE at the end, :data:`EXIT_SOME_FAILED` (3) when some
        failed (their errors are in ``trials.csv``; rerun the command to retry them).
    """
    if workers < 1:
        raise FusionlabError(f"--workers {workers}: expected at least 1")
    sweep = load_sweep(config_path, list(overrides), storage)
    if sweep.search is not None:
        from fusionlab.sweep.search import search_main

        return search_main(sweep, config_path, workers, list(overrides), storage, dry_run)
    if dry_run:
        return print_cells(sweep)
    log_to_file(sweep)
    study = open_study(sweep)
    write_sweep_json(sweep)
    cells = sweep.cells()
    done = sum(t.state == TrialState.COMPLETE for t in cell_states(study, sweep).values())
    log.info("sweep %s: %d cells, %d complete, %d worker(s), storage %s", sweep.name, len(cells), done, workers,
             sweep.storage)
    run_id = uuid.uuid4().hex
    bar = tqdm(total=len(cells), initial=done, desc=f"sweep {sweep.name}", unit="cell", dynamic_ncols=True)
    try:
        if workers == 1:
            def finished(cell: Cell, record: Dict[str, Any]) -> None:
                bar.write(summary_line(cell, record))
                bar.update(1)

            work(sweep, run_id, on_trial=finished)
        else:
            _run_processes(sweep, config_path, list(overrides), storage, run_id, workers, study, bar)
    finally:
        bar.close()
    write_trials_csv(study, sweep)
    states = cell_states(study, sweep)
    failed = [c.key for c in cells if c.key not in states or states[c.key].state != TrialState.COMPLETE]
    if failed:
        log.warning("%d of %d cells did not complete (see %s); rerun to retry them", len(failed), len(cells),
                    sweep.results / "trials.csv")
        return EXIT_SOME_FAILED
    log.info("sweep %s complete: %s", sweep.name, sweep.results)
    return 0


def _run_processes(sweep: SweepConfig, config_path: str, overrides: List[str], storage: Optional[str], run_id: str,
                   workers: int, study: optuna.Study, bar: tqdm) -> None:
    """Start ``workers`` spawned processes on the store; advance ``bar`` as cells settle."""
    def settled() -> int:
        return sum(t.state == TrialState.COMPLETE or t.user_attrs.get("run_id") == run_id
                   and t.state == TrialState.FAIL for t in cell_states(study, sweep).values())

    run_processes(_worker_process, (config_path, overrides, storage, run_id), workers, sweep, bar, settled)


def run_processes(target: Callable[..., None], args: tuple, workers: int, sweep: SweepConfig, bar: tqdm,
                  progress: Callable[[], int]) -> None:
    """Run ``target(*args, threads)`` in ``workers`` spawned processes; ``bar`` follows ``progress()``."""
    context = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    processes = [context.Process(target=target, name=f"worker-{i}", args=(*args, threads)) for i in range(workers)]
    for process in processes:
        process.start()
    try:
        while any(p.is_alive() for p in processes):
            time.sleep(1.0)
            bar.update(max(0, progress() - bar.n))
    finally:
        for process in processes:
            process.join()
    crashed = [p.name for p in processes if p.exitcode not in (0, None)]
    if crashed:
        log.error("worker(s) %s exited with an error; see %s", ", ".join(crashed), sweep.results / "sweep.log")
