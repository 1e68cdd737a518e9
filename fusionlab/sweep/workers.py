"""Workers: claim and run a sweep's cells until none is left to this launch; processes that share the cores.

What a launch (``run_id``) still has to do: every cell that is not COMPLETE, RUNNING in some
worker, or FAILED in this launch. A cell whose worker died (its trial failed as stale by a
sibling, after ``heartbeat.grace`` s without a heartbeat) is run again in the same launch, up
to :data:`STALE_RETRIES` times; a cell that failed by itself (e.g. a diverging loss) waits for
the next launch, so a rerun retries failures once and never retrains a finished cell. A cell
handed back on a stop request (``interrupted``) is no failure: any worker claims it again at
once. Either way a claimed cell continues from the resume points its earlier trial left
(:func:`fusionlab.sweep.cell.take_over_points`).

A worker whose process is asked to stop (:func:`fusionlab.train.request_stop`, Ctrl-C) hands its
cell back at the next training step, or finishes the cell it evaluates, and claims no other:
:func:`work` raises the :class:`~fusionlab.train.StopRequested`, or, asked outside training,
returns.
"""
from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from optuna.trial import FrozenTrial, TrialState

from fusionlab.errors import FusionlabError, one_line
from fusionlab.results import COST_COLUMNS, RESUMED_COLUMN, TRIALS_FILE, saved_metrics, write_trials
from fusionlab.sweep import trial_attrs
from fusionlab.sweep.cell import run_cell
from fusionlab.sweep.config import Cell, SweepConfig, load_sweep
from fusionlab.sweep.store import STALE_ERROR, Store, cell_trials, claim, fail_stale
from fusionlab.train import StopRequested, stop_on_interrupt, stop_requested

log = logging.getLogger("fusionlab.sweep")

STALE_RETRIES = 2
WAIT_POLL_S = 0.5  # how often a worker with nothing to claim looks again (a cell finished or went stale)
OnTrial = Callable[[Cell, Dict[str, Any]], None]


def redraw_interval() -> float:
    """Seconds between redraws of a sweep's progress bar: tqdm's 0.1 on a terminal, a minute when
    stderr is a file (a log), which the bar's once-a-second follow-ups would otherwise fill."""
    return 0.1 if sys.stderr.isatty() else 60.0


# ------------------------------------------------------------------------------ cell states
def cell_states(store: Optional[Store], sweep: SweepConfig) -> Dict[str, FrozenTrial]:
    """Each cell key's deciding trial: its COMPLETE one, else its latest."""
    states: Dict[str, FrozenTrial] = {}
    trials = cell_trials(store, [c.key for c in sweep.cells()]) if store is not None else []
    for trial in trials:
        key = trial.user_attrs[trial_attrs.CELL]
        if states.get(key) is None or states[key].state != TrialState.COMPLETE:
            states[key] = trial
    return states


def plan(store: Store, sweep: SweepConfig, run_id: str) -> Tuple[List[Cell], Dict[str, FrozenTrial]]:
    """The cells this launch still has to run, and the cells other workers hold now (key → trial)."""
    by_key: Dict[str, List[FrozenTrial]] = {}
    for trial in cell_trials(store, [c.key for c in sweep.cells()]):
        by_key.setdefault(trial.user_attrs[trial_attrs.CELL], []).append(trial)
    todo, held = [], {}
    for cell in sweep.cells():
        trials = by_key.get(cell.key, [])
        # a trial handed back on a stop request is no failure of the cell: left out of both counts
        mine = [t for t in trials if t.user_attrs.get(trial_attrs.RUN_ID) == run_id and t.state == TrialState.FAIL
                and not t.user_attrs.get(trial_attrs.INTERRUPTED)]
        running = [t for t in trials if t.state == TrialState.RUNNING]
        if any(t.state == TrialState.COMPLETE for t in trials):
            continue
        if running:
            held[cell.key] = running[0]
        elif any(not t.user_attrs.get(trial_attrs.STALE) for t in mine):
            continue  # failed by itself in this launch: the next launch retries it
        elif sum(bool(t.user_attrs.get(trial_attrs.STALE)) for t in mine) > STALE_RETRIES:
            continue  # its worker died every time: probably the cell kills it (memory); see the trials
        else:
            todo.append(cell)
    return todo, held


# ------------------------------------------------------------------------------ one worker
def work(sweep: SweepConfig, run_id: str, say: Callable[[str], None] = print, on_trial: Optional[OnTrial] = None,
         worker: Optional[int] = None, attrs: Optional[Dict[str, Any]] = None) -> None:
    """Claim and run cells until none is left to this launch; wait while other workers hold cells.

    ``say`` prints a line per finished cell and one when it starts waiting; ``on_trial(cell,
    record)`` follows each cell. A lone worker (``worker`` None) runs the cells in plan order.
    Worker ``worker`` of several takes them from the end of the plan, where the costly ones
    usually are (the RGB-only baseline comes first; an axis's largest values last), so that the
    long cells start early and the workers finish together; when no cell is held yet, its first
    claim is the ``worker``-th cell from the end, so that workers starting together claim different cells.
    ``attrs`` go into each trial it claims (a SLURM task's job id).

    While it works, Ctrl-C is a stop request (:func:`~fusionlab.train.stop_on_interrupt`): a cell in
    training is handed back at its next step (:class:`~fusionlab.train.StopRequested` is raised);
    one evaluating is finished first; then no other is claimed. A second Ctrl-C stops at once.
    """
    with stop_on_interrupt():
        _work(sweep, run_id, say, on_trial, worker, attrs)


def _work(sweep: SweepConfig, run_id: str, say: Callable[[str], None], on_trial: Optional[OnTrial],
          worker: Optional[int], attrs: Optional[Dict[str, Any]]) -> None:
    store = Store(sweep.storage, sweep.name)
    first = True
    waited: Optional[frozenset] = None
    while True:
        if stop_requested():
            line = "stop requested: this worker claims no more cells"
            log.info(line)
            say(line)
            return
        fail_stale(store, sweep.heartbeat.grace)
        todo, held = plan(store, sweep, run_id)
        if not todo:
            if not held:
                return
            if frozenset(held) != waited:
                waited = frozenset(held)
                line = waiting_line(held, sweep.heartbeat.grace)
                log.info(line)
                say(line)
            # polled often, so that the launch ends as soon as the last held cell does
            time.sleep(min(sweep.heartbeat.interval, WAIT_POLL_S))
            continue
        waited = None
        cell = todo[0] if worker is None else todo[::-1][(worker if first and not held else 0) % len(todo)]
        first = False
        trial = claim(store, cell.key, {trial_attrs.VARIANT: cell.variant.name, trial_attrs.SEED: cell.seed,
                                        trial_attrs.RUN_ID: run_id,
                                        trial_attrs.DEVICE: cell.variant.config.train.device, **code_version(),
                                        **(attrs or {})})
        if trial is None:
            continue
        try:
            record = run_cell(store, sweep, cell, trial)
        except StopRequested as stop:
            write_trials_csv(store, sweep)
            line = (f"trial {trial.number}  {cell.variant.name}  seed {cell.seed}  stopped at step {stop.step} and "
                    f"handed back: the next worker continues it from its resume point")
            log.info(line)
            say(line)
            raise
        write_trials_csv(store, sweep)
        line = summary_line(cell, record)
        log.info(line)
        say(line)
        if on_trial is not None:
            on_trial(cell, record)


def waiting_line(held: Dict[str, FrozenTrial], grace: float) -> str:
    """What a worker with nothing left to claim waits for, and for how long at most."""
    now = time.time()
    parts = [f"{key.rsplit('/', 1)[0]} (trial {t.number}, worker {t.user_attrs.get(trial_attrs.HOST)}:"
             f"{t.user_attrs.get(trial_attrs.PID)}, heartbeat "
             f"{now - float(t.user_attrs.get(trial_attrs.HEARTBEAT, now)):.0f} s ago)"
             for key, t in held.items()]
    return (f"waiting for {len(held)} cell(s) that other workers run: {'; '.join(parts)}; a cell whose worker is "
            f"silent for {grace:g} s is run again here")


def summary_line(cell: Cell, record: Dict[str, Any]) -> str:
    """``trial 4  add  seed 1  box mIoU 61.20  1-click 48.10  37.2 s`` (or the failure)."""
    head = f"trial {record['trial']}  {cell.variant.name}  seed {cell.seed}"
    if record["state"] == "DISCARDED":
        return f"{head}  discarded: another worker took the cell over while this one was silent"
    if record["state"] != "COMPLETE":
        return f"{head}  FAILED after {record[trial_attrs.WALL_S]:.1f} s: {record[trial_attrs.ERROR]}"
    metrics = record[trial_attrs.METRICS]
    click = metrics.get("click1_miou")
    return (f"{head}  box mIoU {metrics['box_miou']:.2f}  1-click {'-' if click is None else f'{click:.2f}'}  "
            f"{record[trial_attrs.WALL_S]:.1f} s")


# ------------------------------------------------------------------------------ records
def write_trials_csv(store: Store, sweep: SweepConfig) -> Path:
    """Regenerate ``trials.csv`` from the study: one row per trial of the current cells; a COMPLETE
    trial's metrics also from its ``metrics.json``, which ``fusionlab rescore`` may have added to."""
    rows = []
    for trial in cell_trials(store, [c.key for c in sweep.cells()]):
        attrs = trial.user_attrs
        error = attrs.get(trial_attrs.ERROR)
        if trial.state == TrialState.FAIL and not error:
            error = STALE_ERROR
        rescored = saved_metrics(sweep.results / "trials" / str(trial.number)) if trial.state == TrialState.COMPLETE \
            else {}
        rows.append({"trial_id": trial.number, "variant": attrs[trial_attrs.VARIANT], "seed": attrs[trial_attrs.SEED],
                     "state": trial.state.name, **rescored, **attrs.get(trial_attrs.METRICS, {}),
                     **{c: attrs.get(c) for c in COST_COLUMNS},
                     RESUMED_COLUMN: attrs.get(trial_attrs.RESUMED_FROM_STEP), "error": error})
    path = sweep.results / TRIALS_FILE
    try:
        return write_trials(path, rows)
    except OSError as exc:
        raise FusionlabError(f"cannot write {path}: {exc.strerror or exc}; check the results folder") from None


_CODE: Dict[str, str] = {}


def code_version() -> Dict[str, str]:
    """``fusionlab_version`` and, in a git checkout, ``git_commit`` (``+dirty`` with uncommitted edits)."""
    if not _CODE:
        import fusionlab

        _CODE[trial_attrs.FUSIONLAB_VERSION] = fusionlab.__version__
        root = Path(fusionlab.__file__).resolve().parent
        try:
            commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                    text=True, timeout=10).stdout.strip()
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "."],
                                   capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            commit, dirty = "", ""
        if commit:
            _CODE[trial_attrs.GIT_COMMIT] = commit + ("+dirty" if dirty else "")
    return dict(_CODE)


# ------------------------------------------------------------------------------ processes
def thread_share(workers: int) -> int:
    """torch threads per worker process: this process's threads (``--threads``) split between the workers."""
    return max(1, torch.get_num_threads() // workers)


@contextmanager
def in_worker(config_path: str, overrides: List[str], storage: Optional[str], threads: int) -> Iterator[SweepConfig]:
    """Set up a spawned worker: its share of the cores, the sweep reloaded, the sweep's log file.

    A :class:`FusionlabError` inside ends the process with one line on stderr and exit code 2.
    """
    torch.set_num_threads(threads)
    try:
        sweep = load_sweep(config_path, overrides, storage)
        log_to_file(sweep)
        yield sweep
    except FusionlabError as exc:
        log.error("%s", exc)
        print(f"fusionlab sweep: error: {one_line(exc)}", file=sys.stderr, flush=True)
        sys.exit(2)


def worker_process(config_path: str, overrides: List[str], storage: Optional[str], run_id: str,
                   devices: List[Optional[str]], worker: int, threads: int) -> None:
    """Entry point of one spawned cell worker, pinned to ``devices[worker]`` (None: the config's).

    A stop request ends it without an error: its cell is handed back (see :func:`work`)."""
    with in_worker(config_path, overrides, storage, threads) as sweep:
        pin_device(sweep, devices[worker])
        try:
            work(sweep, run_id, say=lambda line: print(line, flush=True), worker=worker)
        except StopRequested:
            return


def assign_devices(workers: Optional[int], devices: Optional[Sequence[str]], per_device: int = 1,
                   per_cell: int = 1) -> List[Optional[str]]:
    """The device of each worker: one worker per GPU by default, never two on one GPU unless allowed.

    Args:
        workers: how many workers (None: one per listed GPU times ``per_device``, or 1 on the CPU).
        devices: ``cuda:N`` / ``cpu`` names (None: every visible GPU, else the config's devices).
        per_device: workers allowed on one GPU (``--workers-per-device``); CPU workers share the
            cores instead (each gets its share of ``--threads``).
        per_cell: GPUs one cell trains on (``train.devices_per_cell``): by default every
            ``per_cell``-th visible GPU gets a worker, whose cells take it and the next ones.
    Returns:
        ``workers`` entries, GPUs taken in turn; None means "leave train/eval.device as configured".
    """
    import torch

    from fusionlab.config import resolve_device

    if per_device < 1:
        raise FusionlabError(f"--workers-per-device {per_device}: expected at least 1")
    if workers is not None and workers < 1:
        raise FusionlabError(f"--workers {workers}: expected at least 1")
    if devices is None:
        visible = ([f"cuda:{i}" for i in range(0, torch.cuda.device_count() - per_cell + 1, per_cell)]
                   if torch.cuda.is_available() else [])
        if not visible:
            return [None] * (workers or 1)
        devices = visible
    for name in devices:
        resolve_device(name, "--devices")
    gpus = [d for d in devices if d != "cpu"]
    if workers is None:
        workers = len(gpus) * per_device if gpus else 1
    if gpus and len(gpus) == len(devices) and workers > len(gpus) * per_device:
        raise FusionlabError(f"--workers {workers} on {len(gpus)} GPU(s) with --workers-per-device {per_device}: "
                             f"cells would share a GPU; pass --workers-per-device "
                             f"{-(-workers // len(gpus))} to allow it, or fewer --workers")
    return [devices[i % len(devices)] for i in range(workers)]


def pin_device(sweep: SweepConfig, device: Optional[str]) -> None:
    """Run every cell of ``sweep`` on ``device`` (train and eval; the cell keys do not include devices)."""
    if device is None:
        return
    for variant in sweep.variants:
        variant.config.train.device = device
        variant.config.eval.device = device


def run_processes(target: Callable[..., None], args: tuple, workers: int, progress: Callable[[], None]) -> List[str]:
    """Run ``target(*args, worker_index, threads)`` in ``workers`` worker processes; ``progress()`` every second.

    The processes are forked from a server that has imported torch (:mod:`fusionlab.processes`),
    and the call returns as soon as the last one exits. Returns the names of the processes that
    exited with an error.
    """
    from multiprocessing.connection import wait

    from fusionlab import processes as worker_processes

    threads = thread_share(workers)
    started = [worker_processes.start(target, (*args, i, threads), name=f"worker-{i}") for i in range(workers)]
    interrupts = Interrupts()
    try:
        with interrupts:
            running = list(started)
            while running:
                wait([p.sentinel for p in running], timeout=1.0)
                running = [p for p in running if p.is_alive()]
                if interrupts.count and not interrupts.said:
                    interrupts.said = True
                    print("Ctrl-C: each worker writes its cell's resume point after its current training step and "
                          "hands the cell back (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)
                progress()
    finally:
        for process in started:
            process.join()
    if interrupts.count:  # the workers had the Ctrl-C too, and handed their cells back
        raise KeyboardInterrupt
    return [p.name for p in started if p.exitcode not in (0, None)]


class Interrupts:
    """The Ctrl-Cs that reach the launching process while its workers run, counted by a handler.

    A KeyboardInterrupt raised wherever the signal happens to land can be lost there (in a
    library's clean-up code, say), and the launch would then end as if no Ctrl-C had come; a
    count cannot be. The second Ctrl-C raises at once. Only the main thread receives signals:
    elsewhere the handlers stay as they are.
    """

    def __init__(self) -> None:
        self.count = 0
        self.said = False
        self.previous: Any = None

    def __call__(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.count > 1:
            raise KeyboardInterrupt

    def __enter__(self) -> "Interrupts":
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def log_to_file(sweep: SweepConfig) -> None:
    """Append fusionlab's log records to ``results/<name>/sweep.log`` (once per process)."""
    root = logging.getLogger("fusionlab")
    root.setLevel(logging.INFO)
    target = str((sweep.results / "sweep.log").resolve())
    if not any(getattr(h, "baseFilename", None) == target for h in root.handlers):
        handler = logging.FileHandler(target)
        handler.setFormatter(logging.Formatter("%(asctime)s %(processName)s %(name)s %(levelname)s %(message)s"))
        root.addHandler(handler)


def settled_count(store: Store, sweep: SweepConfig, run_id: str) -> int:
    """Cells COMPLETE, or failed for good in this launch (what a progress bar counts)."""
    todo, held = plan(store, sweep, run_id)
    return len(sweep.cells()) - len(todo) - len(held)

