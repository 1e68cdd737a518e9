"""What the loggers cost: the demo's training step with TensorBoard, W&B (offline) and MLflow on, against off.

    python benchmarks/logger_overhead.py                  # 3 runs of 20 steps each way
    python benchmarks/logger_overhead.py --steps 40 --rounds 5 --threads 1

The demo sweep's RGB-D cell (``ablations/fusion.yaml``, variant ``add``, seed 0) trains ``--steps``
steps through :func:`fusionlab.train.train` into a temporary folder, with ``train.loggers`` empty
and with all three, one after the other, ``--rounds`` times (the order alternating, so that a slower
moment of a shared machine falls on both). Every step is logged (``train.log_every: 1``, the default
and the worst case). The step time is the loop's own (``TrainResult.wall_s`` / steps: opening and
closing the loggers, once per run, are left out; a first, untimed run warms up): each step is
timed from one logged step to the next, logging included. The ratios are of the median step with
loggers over the median without (target: at most 1.03), and of the 10th percentiles: the steps
least disturbed by other processes. The CPU columns count the CPU time of the whole process (the
training thread and the loggers' threads) and of its child processes (W&B's service) per step:
what the loggers cost a machine whose cores are all busy, and the figure least moved by other
processes on a shared machine (Linux: read from ``/proc``). W&B runs offline; MLflow writes its
sqlite store in the temporary folder.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from fusionlab.sweep import load_sweep
from fusionlab.train import train

DEMO = Path(__file__).resolve().parents[1] / "ablations" / "fusion.yaml"
LOGGERS = ["tensorboard", "wandb", "mlflow"]
COLUMNS = ("loggers", "runs", "steps each", "median step (ms)", "ratio", "p10 step (ms)", "p10 ratio",
           "CPU per step (ms)", "CPU ratio")


def cpu_seconds() -> float:
    """CPU seconds of this process (all its threads) and of its child processes, alive or not."""
    tick, total = os.sysconf("SC_CLK_TCK"), time.process_time()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == os.getpid():
            total += (int(fields[11]) + int(fields[12])) / tick
    return total + sum(os.times()[2:4])


def step_seconds(loggers: List[str], steps: int, folder: Path) -> Tuple[List[float], float]:
    """Seconds of each step but the first of the demo's RGB-D cell trained ``steps`` steps with ``loggers``
    into ``folder`` (the time between two logged steps: every step is logged), and the CPU seconds per step."""
    cell = next(c for c in load_sweep(str(DEMO)).cells() if c.variant.name == "add" and c.seed == 0)
    config = cell.run_config()
    config.train.steps, config.train.max_steps, config.train.device = steps, None, "cpu"
    config.train.save_checkpoint, config.train.resume_every, config.train.loggers = False, 0.0, loggers
    config.train.log_every = 1
    stamps: List[float] = []
    cpu: List[float] = []

    def stamp(step: int, *_: object) -> None:
        stamps.append(time.perf_counter())
        if step in (1, steps):
            cpu.append(cpu_seconds())

    train(config, folder, progress=False, on_log=stamp)
    return [after - before for before, after in zip(stamps, stamps[1:])], (cpu[1] - cpu[0]) / (steps - 1)


def percentile(values: List[float], share: float) -> float:
    return sorted(values)[int(share * (len(values) - 1))]


def measure(steps: int, rounds: int, scratch: Path) -> Dict[str, List[float]]:
    """Step seconds per run, off and on, the order alternating round by round, after a warm-up run (not
    timed: the data cache and the first steps' allocations would fall on the first mode alone)."""
    step_seconds([], 2, scratch / "warm-up")
    times: Dict[str, List[float]] = {"off": [], "on": [], "off cpu": [], "on cpu": []}
    for i in range(rounds):
        for mode in (("off", "on") if i % 2 == 0 else ("on", "off")):
            wall, cpu = step_seconds(LOGGERS if mode == "on" else [], steps, scratch / f"{mode}-{i}")
            times[mode] += wall
            times[f"{mode} cpu"].append(cpu)
    return times


def print_table(times: Dict[str, List[float]], steps: int, rounds: int) -> None:
    median, p10 = statistics.median(times["off"]), percentile(times["off"], 0.1)
    cpu = statistics.median(times["off cpu"])
    rows = [(label, str(rounds), str(steps), f"{statistics.median(times[mode]) * 1e3:.1f}",
             f"{statistics.median(times[mode]) / median:.3f}", f"{percentile(times[mode], 0.1) * 1e3:.1f}",
             f"{percentile(times[mode], 0.1) / p10:.3f}", f"{statistics.median(times[mode + ' cpu']) * 1e3:.1f}",
             f"{statistics.median(times[mode + ' cpu']) / cpu:.3f}")
            for mode, label in (("off", "none"), ("on", " + ".join(LOGGERS)))]
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    for i, values in enumerate([COLUMNS, *rows]):
        print("| " + " | ".join(v.ljust(w) if j == 0 else v.rjust(w)
                                for j, (v, w) in enumerate(zip(values, widths))) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) if j == 0 else "-" * (w + 1) + ":" for j, w in enumerate(widths)) + "|")


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="training steps per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs each way")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # the store in the scratch folder, never a user's server
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s), "
          f"torch {torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        times = measure(args.steps, args.rounds, Path(scratch))
    print_table(times, args.steps, args.rounds)


if __name__ == "__main__":
    main()
