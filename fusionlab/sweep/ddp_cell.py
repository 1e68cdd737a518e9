"""A sweep cell trained on K processes (``train.devices_per_cell: K``) through torchrun.

The worker writes the cell's run config into the trial folder and runs
``python -m torch.distributed.run --standalone --nproc_per_node K -m fusionlab.sweep.ddp_cell
CONFIG FOLDER``: the K processes train as one (see :mod:`fusionlab.distributed`) and rank 0
writes ``checkpoint.safetensors``, ``train_log.csv`` and ``train_done.json`` into the folder.
The worker then loads the checkpoint and evaluates and times the model itself, as for a cell of
one process, so the trial's results and files are the same whichever way it trained.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import torch
import yaml

from fusionlab.config import RunConfig, load_run_config, resolve_device
from fusionlab.errors import FusionlabError

log = logging.getLogger("fusionlab.sweep")

RUN_FILE = "run.yaml"
LOG_FILE = "torchrun.log"


def train_on_processes(config: RunConfig, folder: Path) -> Tuple[torch.nn.Module, int, float]:
    """Train ``config`` on ``config.train.devices_per_cell`` processes into ``folder``.

    Returns:
        ``(model, steps, final loss)``: the model loaded from the checkpoint rank 0 wrote (deleted
        again unless ``train.save_checkpoint``), on the worker's device.

    Raises:
        FusionlabError: the GPUs the cell needs are not there, or torchrun failed (its last line;
            the whole output is in ``folder/torchrun.log``).
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
    with open(folder / LOG_FILE, "w") as output:
        done = subprocess.run(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        lines = [line for line in (folder / LOG_FILE).read_text(errors="replace").splitlines() if line.strip()]
        reason = next((line for line in reversed(lines) if "Error" in line), lines[-1] if lines else "no output")
        raise FusionlabError(f"torchrun of {processes} processes exited with {done.returncode}: {reason.strip()} "
                             f"(see {folder / LOG_FILE})")
    summary = json.loads((folder / "train_done.json").read_text())
    checkpoint = folder / "checkpoint.safetensors"
    model = config.model.build(str(checkpoint))
    if not config.train.save_checkpoint:
        checkpoint.unlink()
    return model, int(summary["steps"]), float(summary["final_loss"])


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
    train(load_run_config(config_path), Path(folder), progress=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
