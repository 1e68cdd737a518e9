"""A fake results folder with known truth, written the way the sweep writes it.

Per instance, a latent difficulty sets the baseline IoU; "fusion_add" is truly better by
+5 IoU points on every instance (plus per-seed noise), "fusion_gated" equals the baseline
plus 0.5 points, and the control ("depth_zero") is the baseline's distribution with its own
noise. 30 % of the instances are camouflaged.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Dict, Iterable, Sequence, Tuple

import numpy as np
import pandas as pd
import pytest

from fusionlab.report import Report, make_report

SEEDS = (0, 1, 2)
N_INSTANCES = 200
NOISE = 0.04
# name, group, label, true shift in IoU (0..1)
VARIANTS = (
    ("rgb_only", "baseline", "RGB only", 0.0),
    ("fusion_add", "fusion", "add_s3", 0.05),
    ("fusion_gated", "fusion", "gated_s3", 0.005),
    ("depth_zero", "control", "zero depth", 0.0),
)
PARAMS = {"rgb_only": 9.8, "fusion_add": 19.5, "fusion_gated": 19.9, "depth_zero": 19.5}
PROMPT_PENALTY = {"box": 0.0, "click1": 0.15, "click3": 0.08}

Cell = Tuple[str, int]


def _instances(rng: np.random.Generator, difficulty: np.ndarray, shift: float,
               camouflaged: np.ndarray, with_attribute: bool) -> pd.DataFrame:
    areas = rng.choice([500.0, 5000.0, 50000.0], size=N_INSTANCES)
    frames = []
    for prompt, penalty in PROMPT_PENALTY.items():
        iou = difficulty - penalty + shift + rng.normal(0.0, NOISE, N_INSTANCES)
        frame = pd.DataFrame({"image_id": np.arange(N_INSTANCES) // 4,
                              "ann_id": np.arange(N_INSTANCES) + 1000, "prompt": prompt,
                              "iou": np.clip(iou, 0.0, 1.0), "area": areas,
                              "size": np.select([areas < 1024, areas < 9216],
                                                ["small", "medium"], "large")})
        if with_attribute:
            frame["camouflaged"] = camouflaged
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def write_sweep(root: Path, *, incomplete: Dict[Cell, Tuple[str, str]] | None = None,
                missing: Iterable[Cell] = (), with_attribute: bool = True,
                baseline_latency: Sequence[float] = (1.0, 1.0, 1.0),
                descriptions: Dict[str, str] | None = None) -> Path:
    """Write ``sweep.json``, ``trials.csv`` and ``instances.csv`` files under ``root``.

    Args:
        incomplete: cell -> (state, error) for cells that did not complete.
        missing: cells without any row in ``trials.csv``.
        with_attribute: add the ``camouflaged`` column to the instances.
        baseline_latency: the baseline's ``latency_ratio`` per seed (older sweeps timed it
            against itself, so it was noisy).
        descriptions: replaces ``sweep.json``'s ``dataset`` / ``eval_dataset`` /
            ``depth_source`` strings.
    """
    incomplete = incomplete or {}
    rng = np.random.default_rng(1234)
    difficulty = rng.uniform(0.35, 0.8, N_INSTANCES)
    camouflaged = rng.random(N_INSTANCES) < 0.3
    root.mkdir(parents=True, exist_ok=True)
    sweep = {
        "name": "demo_sweep", "seeds": list(SEEDS), "baseline": "rgb_only",
        "variants": [{"name": n, "group": g, "fusion": None if g == "baseline" else "add",
                      "fusion_point": None if g == "baseline" else "stage3",
                      "depth_source": None if g == "baseline" else "depth_anything",
                      "label": label} for n, g, label, _ in VARIANTS],
        "dataset": "embedded COCO_tiny (200 instances)", "eval_dataset": "COCO val 5% split",
        "depth_source": "Depth Anything V2-S, cached", "prompts": list(PROMPT_PENALTY),
        "total_cells": len(VARIANTS) * len(SEEDS),
        **(descriptions or {}),
    }
    (root / "sweep.json").write_text(json.dumps(sweep))
    rows = []
    for name, _, _, shift in VARIANTS:
        for seed in SEEDS:
            cell = (name, seed)
            if cell in missing:
                continue
            trial_id = len(rows)
            row = {"trial_id": trial_id, "variant": name, "seed": seed, "state": "COMPLETE",
                   "params_m": PARAMS[name], "gmacs": 2.0 * PARAMS[name],
                   "latency_ratio": (baseline_latency[seed] if name == "rgb_only"
                                     else 1.8 + rng.normal(0, 0.02)),
                   "wall_s": 100.0, "error": ""}
            if cell in incomplete:
                row["state"], row["error"] = incomplete[cell]
            else:
                instances = _instances(rng, difficulty, shift, camouflaged, with_attribute)
                folder = root / "trials" / str(trial_id)
                folder.mkdir(parents=True)
                instances.to_csv(folder / "instances.csv", index=False)
                box = instances[instances["prompt"] == "box"]
                row.update({f"{p}_miou": 100 * instances.loc[instances["prompt"] == p, "iou"].mean()
                            for p in PROMPT_PENALTY})
                row.update({f"box_miou_{s}": 100 * box.loc[box["size"] == s, "iou"].mean()
                            for s in ("small", "medium", "large")})
            rows.append(row)
    pd.DataFrame(rows).to_csv(root / "trials.csv", index=False)
    return root


@pytest.fixture
def sweep_writer() -> Callable[..., Path]:
    """``write_sweep(root, incomplete=..., missing=..., with_attribute=...)``."""
    return write_sweep


@pytest.fixture(scope="session")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """The report of the complete fake sweep, with the default 2000 bootstrap resamples."""
    return make_report(write_sweep(tmp_path_factory.mktemp("full") / "demo_sweep"))


@pytest.fixture(scope="session")
def partial_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """The report of a sweep with one failed, one running and one missing cell."""
    root = write_sweep(tmp_path_factory.mktemp("partial") / "demo_sweep",
                       incomplete={("fusion_add", 2): ("FAIL", "CUDA out of memory at step 12"),
                                   ("depth_zero", 0): ("RUNNING", "")},
                       missing=[("depth_zero", 1)])
    return make_report(root, n_boot=500)


@pytest.fixture(scope="session")
def wide_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """The complete fake sweep with long variant labels: its table is wider than any page."""
    root = write_sweep(tmp_path_factory.mktemp("wide") / "demo_sweep")
    sweep = json.loads((root / "sweep.json").read_text())
    for variant in sweep["variants"]:
        variant["label"] += " (depth: V2-S, stage 3)"
    (root / "sweep.json").write_text(json.dumps(sweep))
    return make_report(root, n_boot=100)
