"""Wall time of one sweep on one worker against the same sweep on two, side by side in one run.

    python benchmarks/sweep_scaling.py                         # CPU: 1 worker x 1 thread vs 2 workers x 1 thread (~9 min)
    python benchmarks/sweep_scaling.py --devices cuda:0,cuda:1 # GPUs: one device vs two
    python benchmarks/sweep_scaling.py --cells 8 --steps 40

Each configuration runs ``fusionlab sweep`` as a user would (a subprocess, its own results
folder and storage) on the same cells: RGB-only and ``add`` on the embedded scenes, ``--cells``
cells in all, each a cell of ``ablations/fusion.yaml`` (200 images, batch 8, 16 masks per image,
box and click evaluation on 50 images) with ``--steps`` steps (default 100, as there), latency
not measured. The table gives each wall time and its ratio to the first
row, one worker on one device; the target is a ratio of at most 0.55 for two devices (perfect
scaling is 0.5). On the CPU a "device" is half the cores: the first row is one worker on half
of them, the last two workers on all of them (the scaling of the sweep runner), and the middle
row one worker threading over all of them (what splitting a sweep buys over letting torch
thread one cell at a time).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

import yaml


def sweep_file(folder: Path, cells: int, steps: int) -> Path:
    """A sweep of ``cells`` cells (RGB-only and ``add``, ``cells / 2`` seeds) under ``folder``."""
    seeds = list(range(max(1, cells // 2)))
    sweep = {
        "name": "scaling", "results_dir": str(folder / "results"), "seeds": seeds,
        "latency": {"enabled": False},
        "base": {"model": {"preset": "efficientvit-sam-demo"},
                 "data": {"dataset": "synthetic", "train": {"split": "train", "num_images": 200},
                          "val": {"split": "val", "num_images": 50}},
                 "depth": {"source": "dataset"},
                 "train": {"steps": steps, "batch_size": 8, "masks_per_image": 16},
                 "eval": {"prompts": ["box", "click1", "click3"], "save_predictions": False}},
        "variants": [{"name": "add", "group": "fusion", "model": {"fusion": "add"}}],
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


def run(config: Path, args: List[str]) -> float:
    """Seconds ``fusionlab <args> sweep CONFIG`` takes; raises if it fails."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "fusionlab", *args], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        raise SystemExit(f"fusionlab {' '.join(args)} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def main(argv: List[str] | None = None) -> List[Tuple[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=4, help="cells per sweep (even; default 4)")
    parser.add_argument("--steps", type=int, default=100,
                        help="training steps per cell (default 100: the cells of ablations/fusion.yaml)")
    parser.add_argument("--devices", help="two GPUs, e.g. cuda:0,cuda:1 (default: the CPU)")
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    # (label, global options, sweep options)
    if args.devices:
        first = args.devices.split(",")[0]
        setups = [(f"1 worker on {first}", [], ["--devices", first, "--workers", "1"]),
                  (f"2 workers on {args.devices}", [], ["--devices", args.devices, "--workers", "2"])]
    else:
        half = max(1, cores // 2)
        setups = [(f"1 worker x {half} thread(s): one device's share", ["--threads", str(half)], ["--workers", "1"]),
                  (f"1 worker x {cores} threads", ["--threads", str(cores)], ["--workers", "1"]),
                  (f"2 workers x {half} thread(s)", ["--threads", str(cores)], ["--workers", "2"])]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        # the scenes are generated once, before either timed run
        warm = sweep_file(Path(scratch) / "warm", 2, 1)
        run(warm, ["sweep", str(warm), "--workers", "1"])
        for i, (label, options, sweep_options) in enumerate(setups):
            config = sweep_file(Path(scratch) / f"run{i}", args.cells, args.steps)
            rows.append((label, run(config, [*options, "sweep", str(config), *sweep_options])))
    print(f"| sweep of {args.cells} cells, {args.steps} steps each | wall (s) | × first row |")
    print("|---|---|---|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.1f} | {seconds / rows[0][1]:.2f} |")
    return rows


if __name__ == "__main__":
    main()
