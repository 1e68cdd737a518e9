"""What a resume point costs: the time to write one against the training time between two, and its size.

    python benchmarks/resume_cost.py                       # the demo, and L0 and L2 RGB-D
    python benchmarks/resume_cost.py --steps 40 --writes 5 --threads 1

Demo: the demo sweep's RGB-D cell (``ablations/fusion.yaml``, variant ``add``, seed 0) trains
``--steps`` steps of the real loop in this process, then the loop's own writer
(:class:`fusionlab.resume.ResumePoints`) writes ``--writes`` points of the run as it stands into a
temporary folder (``--folder``: the disk to measure; default the system's temporary folder); the
median write is timed, and reading one back (digest, tensors, fit) too. L0 and L2: the model with
``fusion: add`` built with random weights (nothing is downloaded) and an AdamW state for every
parameter (one step on zero gradients), written the same way, without training.

The cost is the median write over the training time between two points: ``train.resume_every``
(``--every``, default the config's default) minutes of training, whatever the model; the demo
row also gives its steps per interval. ``2 % at`` is the ``resume_every`` at which the write would
cost 2 % (the target): any interval longer than it costs less. Times are this machine's (its CPU
and disk); on a GPU the state is copied to the host first, which adds to the write.
"""
from __future__ import annotations

import argparse
import math
import platform
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import List, Optional, Sequence

import numpy as np
import torch

from fusionlab.config import TrainSection
from fusionlab.distributed import SINGLE
from fusionlab.models import build_model
from fusionlab.resume import Progress, ResumePoints, run_key
from fusionlab.sweep import load_sweep
from fusionlab.train import lr_factor, param_groups, run_steps, set_up

DEMO = Path(__file__).resolve().parents[1] / "ablations" / "fusion.yaml"


def point_size(json_path: Path) -> int:
    """Bytes of one point: its tensors file and its JSON."""
    return json_path.stat().st_size + json_path.with_suffix(".safetensors").stat().st_size


def time_writes(points: ResumePoints, progress: Progress, writes: int) -> dict:
    """Median seconds of ``writes`` point writes, of one read back, and the point's MB."""
    spans = []
    for i in range(writes):
        progress.step += 1  # each write a point of its own, as the loop's are
        started = time.perf_counter()
        path = points.write(progress, seconds=0.0)
        spans.append(time.perf_counter() - started)
    started = time.perf_counter()
    found = points.find()
    read_s = time.perf_counter() - started
    assert found is not None and found.step == progress.step
    return {"write_s": statistics.median(spans), "read_s": read_s, "mb": point_size(path) / 1e6}


def demo_row(args: argparse.Namespace, folder: Path) -> List[str]:
    """Train the demo's RGB-D cell for ``--steps`` steps, then time its points."""
    cell = next(c for c in load_sweep(str(DEMO)).cells() if c.variant.name == "add")
    config = cell.run_config()
    config.train.steps, config.train.max_steps, config.train.device = args.steps, None, "cpu"
    setup = set_up(config, progress=False)
    steps, _, seconds = run_steps(setup, config.train, None, False, None)
    step_s = seconds / steps
    progress = Progress(step_rng=np.random.default_rng(0), step=steps, epoch=0, batch=steps,
                        order=setup.loader.generator.get_state())
    measured = time_writes(ResumePoints(folder / "demo", setup, run_key(config), 0), progress, args.writes)
    params = sum(p.numel() for p in setup.model.parameters()) / 1e6
    return row("demo (efficientvit-sam-demo, add)", params, measured, args.every,
               f"{step_s * 1e3:.0f} ms/step, {args.every * 60 / step_s:.0f} steps")


def model_row(preset: str, args: argparse.Namespace, folder: Path) -> List[str]:
    """A point of ``preset`` with ``fusion: add``, random weights and an AdamW state of every parameter."""
    torch.manual_seed(0)
    model = build_model(preset, fusion="add")
    recipe = TrainSection()
    optimizer = torch.optim.AdamW(param_groups(model, recipe), lr=recipe.lr, betas=tuple(recipe.betas))
    for group in optimizer.param_groups:
        for param in group["params"]:
            param.grad = torch.zeros_like(param)
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, 1000, 0))
    setup = SimpleNamespace(model=model, optimizer=optimizer, scheduler=scheduler, world=SINGLE,
                            device=torch.device("cpu"))
    key = {"config": preset, "seed": 0, "checkpoint": None}
    progress = Progress(step_rng=np.random.default_rng(0), step=1, order=torch.Generator().get_state())
    measured = time_writes(ResumePoints(folder / preset, setup, key, 0), progress, args.writes)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return row(f"{preset}, add", params, measured, args.every, "-")


def row(label: str, params: float, measured: dict, every: float, training: str) -> List[str]:
    cost = measured["write_s"] / (every * 60)
    return [label, f"{params:.1f}", f"{measured['mb']:.1f}", f"{measured['write_s']:.3f}", f"{measured['read_s']:.3f}",
            f"{every:g} min ({training})", f"{100 * cost:.3f} %", f"{measured['write_s'] / 0.02 / 60:.2f} min"]


def print_table(rows: Sequence[Sequence[str]]) -> None:
    columns = ["model", "params (M)", "point (MB)", "write (s)", "read (s)", "training between points", "cost",
               "2 % at"]
    widths = [max(len(str(r[i])) for r in [columns, *rows]) for i in range(len(columns))]
    for i, values in enumerate([columns, *rows]):
        print("| " + " | ".join(str(v).ljust(w) if j == 0 else str(v).rjust(w)
                                for j, (v, w) in enumerate(zip(values, widths))) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) if j == 0 else "-" * (w + 1) + ":" for j, w in enumerate(widths)) + "|")


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="demo training steps timed before the writes")
    parser.add_argument("--writes", type=int, default=3, help="points written per model (the median is reported)")
    parser.add_argument("--every", type=float, default=TrainSection().resume_every,
                        help="train.resume_every in minutes (default: the config's default)")
    parser.add_argument("--presets", nargs="*", default=["efficientvit-sam-l0", "efficientvit-sam-l2"])
    parser.add_argument("--folder", help="where the points are written (default: a temporary folder)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not (args.every > 0 and math.isfinite(args.every)):
        raise SystemExit("--every: expected minutes > 0")
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s), "
          f"torch {torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory(dir=args.folder) as scratch:
        rows = [demo_row(args, Path(scratch))]
        rows += [model_row(preset, args, Path(scratch)) for preset in args.presets]
    print_table(rows)


if __name__ == "__main__":
    main()
