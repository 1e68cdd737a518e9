"""A sweep on SLURM: one job array, submitted through submitit, whose tasks are sweep workers.

``fusionlab sweep X.yaml --slurm`` calls :func:`submit`: it checks that the storage and this
machine can do it, binds the results folder to the study, and submits one array of
``slurm.workers`` tasks (the settings: :class:`~fusionlab.sweep.config.SlurmSection`). Each task
runs :class:`SweepTask`: one worker (:func:`~fusionlab.sweep.workers.work`) on the sweep's shared
storage and on the task's GPUs, until no cell is left to the launch. The tasks share one launch
id: a cell that fails by itself is not retried by a sibling, the next submit retries it.

Time limit and preemption: SLURM sends USR2 ``slurm.signal_delay`` s before a task's time limit
(and when it preempts the task, on clusters with ``PreemptParameters=send_user_signal``).
submitit's handler calls :meth:`SweepTask.checkpoint` in the task's main thread, while the worker
trains in another: the worker claims nothing more, the running cell is asked to write its resume
point and hand its cell back (:func:`fusionlab.train.request_stop`), and once it has, submitit
requeues the task (``scontrol requeue``) and ends it. The requeued task, or any other worker,
continues the cell from its resume point. SLURM signals every process of the task; the worker
thread blocks the stop signal and SIGTERM, so the processes it starts (data loader workers, a
cell's torchrun processes) inherit the block: they neither die of the signal nor run submitit's
handler themselves.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import shutil
import signal
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from optuna.trial import TrialState

from fusionlab.errors import FusionlabError
from fusionlab.sweep import trial_attrs
from fusionlab.sweep.config import SlurmSection, SweepConfig, load_sweep, sbatch_option, slurm_minutes
from fusionlab.sweep.store import redact

log = logging.getLogger("fusionlab.sweep")

LOG_FOLDER = "slurm"  # results/<name>/slurm/: submitit's job files and one log per task
# sbatch options that ask for GPUs in another way than --gpus-per-task
_OTHER_GPU_OPTIONS = ("gres", "gpus", "gpus-per-node", "gpus-per-socket", "gpus-per-task")


@dataclass
class Submission:
    """What :func:`submit` did: the array's ``job_id`` (None: every cell was complete, nothing submitted)."""

    job_id: Optional[str]
    tasks: int
    pending: int
    total: int
    logs: Path
    settings: str


def submit(sweep: SweepConfig, section: SlurmSection) -> Submission:
    """Submit one job array of ``section.workers`` sweep workers (default: one per cell not complete).

    Raises:
        FusionlabError: a search sweep, a SQLite storage, no ``sbatch`` here, submitit missing, too
            few GPUs per task for ``train.devices_per_cell``, or sbatch refusing the job (its reason).
    """
    check_submittable(sweep)
    submitit = _submitit()
    from submitit.core.utils import FailedJobError, FailedSubmissionError

    gpus = task_gpus(sweep, section)
    from fusionlab.sweep.launch import open_results, warn_about_old_cells, write_sweep_json
    from fusionlab.sweep.workers import cell_states

    store = open_results(sweep)
    write_sweep_json(sweep)
    warn_about_old_cells(store, sweep)
    states = cell_states(store, sweep)
    cells = sweep.cells()
    pending = sum(c.key not in states or states[c.key].state != TrialState.COMPLETE for c in cells)
    logs = (sweep.results / LOG_FOLDER).resolve()
    tasks = section.workers or pending
    settings = describe(section, gpus, tasks)
    if pending == 0:
        return Submission(None, 0, 0, len(cells), logs, settings)
    executor = submitit.SlurmExecutor(folder=logs, python=section.python)
    executor.update_parameters(**sbatch_parameters(sweep, section, gpus))
    task = SweepTask(config=str(sweep.source.resolve()), overrides=list(sweep.overrides), storage=sweep.storage,
                     run_id=uuid.uuid4().hex, stop_wait_s=max(5.0, section.signal_delay - 20.0))
    try:  # submitit prints sbatch's complaint itself: it is kept for the one-line error instead
        with contextlib.redirect_stderr(io.StringIO()), executor.batch():
            jobs = [executor.submit(task) for _ in range(tasks)]
    except (FailedJobError, FailedSubmissionError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "no message")
        raise FusionlabError(f"sbatch refused the job array ({settings}): {reason}") from None
    job_id = jobs[0].job_id.split("_")[0]
    log.info("sweep %s: submitted SLURM job %s, %d task(s) for %d cell(s) not complete (%s); launch %s, storage %s",
             sweep.name, job_id, tasks, pending, settings, task.run_id, redact(sweep.storage))
    return Submission(job_id, tasks, pending, len(cells), logs, settings)


def check_submittable(sweep: SweepConfig, on_cluster: bool = True) -> None:
    """Refuse, in one line, what a job array of workers cannot run: a search, SQLite and, with ``on_cluster``,
    a machine without SLURM's commands."""
    if sweep.search is not None:
        raise FusionlabError(f"{sweep.source}: search: --slurm submits the cells of an ablation; a TPE search runs "
                             f"with local workers (--workers N) or on machines sharing one --storage")
    if sweep.storage.startswith("sqlite:"):
        raise FusionlabError(f"storage {sweep.storage}: --slurm runs the workers on other machines, which cannot share "
                             f"a SQLite file (its locks do not hold on a network disk); use a database server "
                             f"(--storage postgresql://user:password@host:5432/db) or a journal file on a shared disk "
                             f"(--storage journal:/shared/disk/{sweep.name}.log)")
    missing = [tool for tool in ("sbatch", "srun") if on_cluster and shutil.which(tool) is None]
    if missing:
        raise FusionlabError(f"--slurm: {' and '.join(missing)} not on PATH; run it on a SLURM login node (to try "
                             f"it on this machine: tests/cluster/start_slurm.sh, then the export it prints)")


def _submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise FusionlabError("--slurm submits through submitit, which is not installed: "
                             "pip install 'fusionlab[slurm]'") from None
    return submitit


def task_gpus(sweep: SweepConfig, section: SlurmSection) -> int:
    """GPUs per task: ``slurm.gpus_per_task``; by default ``train.devices_per_cell`` unless every cell trains on
    the CPU (``train.device: auto`` asks for GPUs, and runs on the CPU with ``gpus_per_task: 0``).

    A cell of ``devices_per_cell: K`` trains through torchrun on K processes inside its task (as on one
    machine, :mod:`fusionlab.sweep.ddp_cell`), so that one worker holds the cell's claim and heartbeat.
    Fewer GPUs than a cell on ``cuda`` trains on are refused.
    """
    per_cell = max(v.config.train.devices_per_cell for v in sweep.variants)
    if section.gpus_per_task is None:
        return per_cell if any(v.config.train.device != "cpu" for v in sweep.variants) else 0
    needed = per_cell if any(v.config.train.device.startswith("cuda") for v in sweep.variants) else 0
    asked_otherwise = any(sbatch_option(line, "slurm.sbatch")[0] in _OTHER_GPU_OPTIONS for line in section.sbatch)
    if section.gpus_per_task < needed and not asked_otherwise:
        raise FusionlabError(f"{sweep.source}: slurm.gpus_per_task: {section.gpus_per_task}, but a cell trains on "
                             f"{needed} GPU(s) (train.devices_per_cell: {per_cell}); set gpus_per_task: {needed}, or "
                             f"leave it out (or ask for them with an sbatch line such as --gres=gpu:{needed})")
    return section.gpus_per_task


def sbatch_parameters(sweep: SweepConfig, section: SlurmSection, gpus: int) -> Dict[str, Any]:
    """submitit's ``SlurmExecutor`` parameters of the array (it writes the sbatch script and the signal line)."""
    extra = dict(sbatch_option(line, "slurm.sbatch") for line in section.sbatch)
    if "no-requeue" not in extra:
        extra.setdefault("requeue", True)  # preempted or on a failed node: back in the queue, not cancelled
    parameters: Dict[str, Any] = {"job_name": f"fusionlab-{sweep.name}", "time": slurm_minutes(section.time, "time"),
                                  "signal_delay_s": section.signal_delay, "stderr_to_stdout": True,
                                  "additional_parameters": extra}
    for name in ("partition", "account", "qos", "cpus_per_task", "mem"):
        if getattr(section, name) is not None:
            parameters[name] = getattr(section, name)
    if gpus:
        parameters["gpus_per_task"] = gpus
    if section.max_running is not None:
        parameters["array_parallelism"] = section.max_running
    if section.setup:
        parameters["setup"] = list(section.setup)
    return parameters


def describe(section: SlurmSection, gpus: int, tasks: int) -> str:
    """``4 tasks, partition gpu, time 4:00:00, 1 GPU, 8 CPUs, 64G per task, at most 2 running``."""
    parts = [f"{tasks} task(s)"] + [f"{name} {getattr(section, name)}" for name in ("partition", "account", "qos")
                                    if getattr(section, name) is not None]
    parts.append(f"time {section.time}")
    per_task = [f"{gpus} GPU(s)"] if gpus else ["no GPU"]
    per_task += [f"{section.cpus_per_task} CPU(s)"] if section.cpus_per_task else []
    per_task += [section.mem] if section.mem else []
    parts.append(", ".join(per_task) + " per task")
    if section.max_running is not None:
        parts.append(f"at most {section.max_running} running")
    return ", ".join(parts)


# ------------------------------------------------------------------------------ inside a task
@dataclass
class SweepTask:
    """One array task: a sweep worker, run by submitit on a node (pickled: its fields say what to run).

    Attributes:
        config: the sweep YAML (absolute path); ``overrides`` its ``--set`` items; ``storage`` the URL.
        run_id: the launch the array's tasks share.
        stop_wait_s: how long the stop signal's handler waits for the cell to hand itself back.
    """

    config: str
    overrides: List[str]
    storage: str
    run_id: str
    stop_wait_s: float
    _done: Optional[threading.Event] = field(default=None, init=False, repr=False, compare=False)
    _stopping: bool = field(default=False, init=False, repr=False, compare=False)

    def __call__(self) -> str:
        """Run the worker in a thread until no cell is left to the launch (or it hands its cell back on the stop
        signal); the main thread waits, so that submitit's signal handler runs there."""
        import torch

        from fusionlab.sweep.workers import assign_devices, log_to_file, pin_device, work
        from fusionlab.train import StopRequested

        _log_to_stderr()
        threads, why = task_threads()
        torch.set_num_threads(threads)
        sweep = load_sweep(self.config, self.overrides, self.storage)
        log_to_file(sweep)
        per_cell = max(v.config.train.devices_per_cell for v in sweep.variants)
        device = assign_devices(1, None, 1, per_cell)[0]
        pin_device(sweep, device)
        job, index = task_id()
        log.info("SLURM task %s on %s: sweep worker %d of %s, launch %s, storage %s, device %s, %d thread(s) (%s)",
                 job, os.uname().nodename, index, sweep.name, self.run_id, redact(sweep.storage),
                 device or "as configured", threads, why)
        self._done = threading.Event()
        failure: List[BaseException] = []

        def worker() -> None:
            signal.pthread_sigmask(signal.SIG_BLOCK, {stop_signal(), signal.SIGTERM})  # inherited by its children
            try:  # say: nothing more, the log (this task's log file) has each line
                work(sweep, self.run_id, say=lambda line: None, worker=index, attrs={trial_attrs.SLURM_JOB: job})
            except StopRequested:
                log.info("SLURM task %s: the cell is handed back; the task ends and submitit requeues it", job)
            except BaseException as exc:  # handed to the main thread, which fails the task with it
                failure.append(exc)
            finally:
                self._done.set()

        threading.Thread(target=worker, name="sweep-worker", daemon=True).start()
        # a short wait in a loop: a signal that the kernel gave another thread runs its handler here within 1 s
        done = False
        while not done:
            done = self._done.wait(1.0)
        if failure:
            raise failure[0]
        return f"task {job}: no cell left to launch {self.run_id}"

    def checkpoint(self) -> Any:
        """submitit's handler of the stop signal (time limit or preemption): hand the running cell back,
        then return this task, which submitit requeues."""
        import submitit

        from fusionlab.train import request_stop

        job, _ = task_id()
        log.warning("SLURM task %s got the stop signal (time limit or preemption): the running cell writes its resume "
                    "point and is handed back, then the task is requeued", job)
        if not self._stopping:  # a second request would stop the cell at once, without a resume point
            self._stopping = True
            request_stop()
        if self._done is not None and not self._done.wait(self.stop_wait_s):
            log.warning("SLURM task %s: the cell did not hand itself back within %.0f s; requeued anyway, the cell "
                        "runs again from its last resume point once its heartbeat is older than the grace", job,
                        self.stop_wait_s)
        return submitit.helpers.DelayedSubmission(dataclasses.replace(self))


def _log_to_stderr() -> None:
    """fusionlab's log records on stderr, which is the task's log file (submitit's own logger has its handler)."""
    root = logging.getLogger("fusionlab")
    root.setLevel(logging.INFO)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)


def stop_signal() -> signal.Signals:
    """The signal SLURM sends before the time limit: submitit's (USR2 unless ``SUBMITIT_PREEMPT_SIGNAL`` says)."""
    import submitit

    return signal.Signals["SIG" + submitit.JobEnvironment.USR_SIG]


def task_id() -> Tuple[str, int]:
    """``("1234_3", 3)``: this task's SLURM job id and its index in the array (0 outside an array)."""
    array, index = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and index:
        return f"{array}_{index}", int(index)
    return os.environ.get("SLURM_JOB_ID", "?"), 0


def task_threads() -> Tuple[int, str]:
    """torch threads of a task: ``FUSIONLAB_THREADS`` when set, else the task's ``--cpus-per-task``, else auto."""
    from fusionlab.config import cpu_threads

    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if "FUSIONLAB_THREADS" not in os.environ and cpus and cpus.isdigit():
        return int(cpus), "the task's CPUs (SLURM_CPUS_PER_TASK)"
    return cpu_threads(None)
