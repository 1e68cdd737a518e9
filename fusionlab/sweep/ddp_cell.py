"""A sweep cell trained on K processes (``train.devices_per_cell: K``) through torchrun.

The worker writes the cell's run config into the trial folder and runs
``python -m torch.distributed.run --standalone --nproc_per_node K -m fusionlab.sweep.ddp_cell
CONFIG FOLDER``: the K processes train as one (see :mod:`fusionlab.distributed`) and rank 0
writes ``checkpoint.safetensors``, ``train_log.csv`` and ``train_done.json`` into the folder.
The worker then loads the checkpoint and evaluates and times the model itself, as for a cell of
one process, so the trial's results and files are the same whichever way it trained.

torchrun runs in a session of its own, so that a terminal's Ctrl-C reaches the worker alone: a
stop request in the worker (Ctrl-C, :func:`fusionlab.train.request_stop`) is passed to torchrun
as one SIGINT, which torchrun passes to each process; they write a resume point at the next
step and stop, and the worker raises :class:`~fusionlab.train.StopRequested`. A second request
kills them at once.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import torch
import yaml

from fusionlab.config import RunConfig, load_run_config, resolve_device
from fusionlab.errors import FusionlabError
from fusionlab.resume import newest_point, step_of
from fusionlab.train import StopRequested, clear_stop, stop_on_interrupt, stop_requested

log = logging.getLogger("fusionlab.sweep")

RUN_FILE = "run.yaml"
LOG_FILE = "torchrun.log"
EXIT_STOPPED = 75  # a process stopped on request, its resume point written (EX_TEMPFAIL: try again later)


def train_on_processes(config: RunConfig, folder: Path) -> Tuple[torch.nn.Module, int, float, int]:
    """Train ``config`` on ``config.train.devices_per_cell`` processes into ``folder`` (continuing
    from a resume point there, as :func:`fusionlab.train.train` does).

    Returns:
        ``(model, steps, final loss, resumed from step)``: the model loaded from the checkpoint
        rank 0 wrote (deleted again unless ``train.save_checkpoint``), on the worker's device.

    Raises:
        FusionlabError: the GPUs the cell needs are not there, or torchrun failed (its last line;
            the whole output is in ``folder/torchrun.log``).
        StopRequested: a stop was requested; the processes wrote a resume point and stopped.
    """
    processes = config.train.devices_per_cell
    device = resolve_device(config.train.device, "train.device")
    run = copy.deepcopy(config)
    run.train.save_checkpoint = True  # the worker loads the trained weights from it
    env = {**os.environ}
    if device.type == "cuda":
        env["CUDA_VISIBLE_DEVICES"] = ",".join(cell_gpus(device.index or 0, processes))
        run.train.device = "cuda"  # each process takes cuda:LOCAL_RANK of those
    (folder / RUN_FILE).write_text(yaml.safe_dump(run.to_dict(), sort_keys=False))
    threads = max(1, torch.get_num_threads() // processes)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
               "-m", "fusionlab.sweep.ddp_cell", "--threads", str(threads), str(folder / RUN_FILE), str(folder)]
    log.info("training on %d processes: %s", processes, " ".join(command[1:]))
    code, stopped = run_torchrun(command, env, folder / LOG_FILE)
    if stopped:
        point = newest_point(folder)
        raise StopRequested(step_of(point) if point is not None else 0, point)
    if code != 0:
        lines = [line for line in (folder / LOG_FILE).read_text(errors="replace").splitlines() if line.strip()]
        reason = next((line for line in reversed(lines) if "Error" in line), lines[-1] if lines else "no output")
        raise FusionlabError(f"torchrun of {processes} processes exited with {code}: {reason.strip()} "
                             f"(see {folder / LOG_FILE})")
    summary = json.loads((folder / "train_done.json").read_text())
    checkpoint = folder / "checkpoint.safetensors"
    model = config.model.build(str(checkpoint))
    if not config.train.save_checkpoint:
        checkpoint.unlink()
    return model, int(summary["steps"]), float(summary["final_loss"]), int(summary.get("resumed_from_step", 0))


def run_torchrun(command: List[str], env: dict, log_path: Path) -> Tuple[int, bool]:
    """Run torchrun, its output into ``log_path``; returns its exit code and whether a stop was
    requested (and passed on) while it ran. A second request kills its processes at once."""
    stopped = False
    with open(log_path, "w") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            with stop_on_interrupt():
                code: Optional[int] = None
                while code is None:
                    try:
                        code = process.wait(timeout=0.5)
                    except subprocess.TimeoutExpired:
                        if stop_requested() and not stopped:
                            process.send_signal(signal.SIGINT)
                            stopped = True
        except BaseException:  # a second request (KeyboardInterrupt), or anything else: none of them may outlive it
            # torchrun answers SIGTERM by terminating its processes (each in a session of its own) and exiting
            process.terminate()
            process.wait()
            raise
    if stopped:
        clear_stop()
    return code, stopped


def cell_gpus(first: int, count: int) -> List[str]:
    """The ``CUDA_VISIBLE_DEVICES`` entries of GPUs ``first`` … ``first + count - 1`` as this process
    numbers them (through its own ``CUDA_VISIBLE_DEVICES``, when set)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
    if first + count > len(names):
        raise FusionlabError(f"train.devices_per_cell: {count} GPUs from cuda:{first} on, but only {len(names)} "
                             f"are visible; start one worker per {count} GPUs (the default) or list every "
                             f"{count}-th GPU in --devices")
    return names[first:first + count]


def main(argv: List[str]) -> int:
    """``[--threads N] CONFIG FOLDER``: one of the torchrun processes of a cell."""
    from fusionlab.train import train

    if argv[:1] == ["--threads"]:
        torch.set_num_threads(int(argv[1]))
        argv = argv[2:]
    config_path, folder = argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:  # the points stay until the worker has recorded the trial (it removes them)
        train(load_run_config(config_path), Path(folder), progress=False, keep_resume_points=True)
    except StopRequested as stop:
        logging.getLogger("fusionlab.sweep").info("%s", stop)
        return EXIT_STOPPED
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
