"""A fake results folder with known truth, written the way the sweep writes it.

Per instance, a latent difficulty sets the baseline IoU; "fusion_add" is truly better by
+5 IoU points on every instance (plus per-seed noise), "fusion_gated" equals the baseline
plus 0.5 points, and the control ("depth_zero") is the baseline's distribution with its own
noise. 30 % of the instances are camouflaged. Its sweep.json predates the depth-encoder keys.

``ENCODER_VARIANTS`` is a depth-encoder ablation: light encoders that keep part of the
``same`` encoder's gain at a lower cost, one of them dominated on both cost axes.

``AXIS_VARIANTS`` is a data-efficiency sweep over ``data.train.num_images`` in (25, 50, 100):
RGB only gains 3 points per doubling, ``add`` is 8, 4 and 0.5 points above it, ``gated`` equal.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import pytest

from fusionlab.report import Report, make_report

SEEDS = (0, 1, 2)
N_INSTANCES = 200
NOISE = 0.04


@dataclass(frozen=True)
class FakeVariant:
    """One variant of a fake sweep: its ``sweep.json`` entry and its truth.

    Attributes:
        shift: true shift of every IoU (0..1) over the baseline.
        latency: latency ratio (plus jitter); None: not measured. The baseline's comes from
            ``write_sweep``'s ``baseline_latency``.
        gmacs: None: twice the params.
        keys: further ``sweep.json`` keys (``depth_encoder``, ``depth_size``).
    """

    name: str
    group: str
    label: str
    shift: float
    params: float
    latency: Optional[float] = 1.8
    gmacs: Optional[float] = None
    keys: Dict[str, Any] = field(default_factory=dict)


VARIANTS = (
    FakeVariant("rgb_only", "baseline", "RGB only", 0.0, 9.8),
    FakeVariant("fusion_add", "fusion", "add_s3", 0.05, 19.5),
    FakeVariant("fusion_gated", "fusion", "gated_s3", 0.005, 19.9),
    FakeVariant("depth_zero", "control", "zero depth", 0.0, 19.5),
)


def _encoder(name: str, label: str, shift: float, latency: float, gmacs: float,
             depth_encoder: str, depth_size: Optional[int] = None,
             group: str = "encoder") -> FakeVariant:
    return FakeVariant(name, group, label, shift, params=10.0, latency=latency, gmacs=gmacs,
                       keys={"depth_encoder": depth_encoder, "depth_size": depth_size})


# Gains +4.0 (same), +3.5, +3.0, +2.0, +1.0, +2.5 box mIoU; timm:resnet18 and same@256 are
# dominated on both axes, shared only on GMACs (it costs what same costs).
ENCODER_VARIANTS = (
    FakeVariant("rgb_only", "baseline", "RGB only", 0.0, 9.8, gmacs=19.6,
                keys={"depth_encoder": None, "depth_size": None}),
    _encoder("same", "same", 0.04, 1.95, 39.0, "same", group="fusion"),
    _encoder("shared", "shared", 0.035, 1.9, 39.0, "shared"),
    _encoder("quarter", "efficientvit-quarter", 0.03, 1.2, 24.5, "efficientvit-quarter"),
    _encoder("mobilenet", "timm:mobilenetv3_small_050", 0.02, 1.07, 20.5,
             "timm:mobilenetv3_small_050"),
    _encoder("resnet18", "timm:resnet18", 0.01, 1.5, 30.0, "timm:resnet18"),
    _encoder("same_256", "same @256", 0.025, 1.4, 25.0, "same", depth_size=256),
    _encoder("shuffled", "shuffled depth", 0.0, 1.95, 39.0, "same", group="control"),
)
AXIS_VALUES = (25, 50, 100)
ADD_GAIN = {25: 0.08, 50: 0.04, 100: 0.005}


def _at(value: int, name: str, group: str, label: str, shift: float) -> FakeVariant:
    return FakeVariant(f"{name}@num_images={value}", group, f"{label}, num_images={value}", shift,
                       params=9.8 if group == "baseline" else 19.5,
                       keys={"design": name, "design_label": label, "axis_value": value,
                             "baseline": f"rgb_only@num_images={value}"})


AXIS_VARIANTS = tuple(
    variant for i, value in enumerate(AXIS_VALUES)
    for variant in (_at(value, "rgb_only", "baseline", "RGB only", 0.03 * i),
                    _at(value, "add", "fusion", "add", 0.03 * i + ADD_GAIN[value]),
                    _at(value, "gated", "fusion", "gated", 0.03 * i)))
PROMPT_PENALTY = {"box": 0.0, "click1": 0.15, "click3": 0.08}

Cell = Tuple[str, int]


def _instances(rng: np.random.Generator, difficulty: np.ndarray, shift: float,
               camouflaged: np.ndarray, with_attribute: bool, noise: float,
               edges: Optional[np.ndarray] = None) -> pd.DataFrame:
    areas = rng.choice([500.0, 5000.0, 50000.0], size=N_INSTANCES)
    frames = []
    for prompt, penalty in PROMPT_PENALTY.items():
        iou = difficulty - penalty + shift + rng.normal(0.0, noise, N_INSTANCES)
        frame = pd.DataFrame({"image_id": np.arange(N_INSTANCES) // 4,
                              "ann_id": np.arange(N_INSTANCES) + 1000, "prompt": prompt,
                              "iou": np.clip(iou, 0.0, 1.0), "area": areas,
                              "size": np.select([areas < 1024, areas < 9216],
                                                ["small", "medium"], "large")})
        if with_attribute:
            frame["camouflaged"] = camouflaged
        if edges is not None:  # Boundary IoU: 0.7 of the IoU, and so of its shift; RGB and depth edge strength
            frame.insert(4, "biou", np.clip(0.7 * iou + rng.normal(0.0, noise, N_INSTANCES), 0.0, 1.0))
            frame["rgb_edge"], frame["depth_edge"] = edges
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def write_sweep(root: Path, *, incomplete: Dict[Cell, Tuple[str, str]] | None = None,
                missing: Iterable[Cell] = (), with_attribute: bool = True,
                baseline_latency: Sequence[float] = (1.0, 1.0, 1.0),
                descriptions: Dict[str, str] | None = None,
                variants: Sequence[FakeVariant] = VARIANTS, noise: float = NOISE,
                throughput: Optional[Tuple[int, str]] = None,
                axis: Optional[Dict[str, Any]] = None, with_boundary: bool = False) -> Path:
    """Write ``sweep.json``, ``trials.csv`` and ``instances.csv`` files under ``root``.

    Args:
        variants: the variants, the first being the baseline.
        noise: std of the per-instance IoU noise; latency jitter is half of it, so 0 gives
            every Δ and cost exactly.
        incomplete: cell -> (state, error) for cells that did not complete.
        missing: cells without any row in ``trials.csv``.
        with_attribute: add the ``camouflaged`` column to the instances.
        baseline_latency: the baseline's ``latency_ratio`` per seed (older sweeps timed it
            against itself, so it was noisy).
        descriptions: replaces ``sweep.json``'s ``dataset`` / ``eval_dataset`` /
            ``depth_source`` strings.
        throughput: ``(batch, device)``: write the throughput columns, 100 img/s over the
            latency ratio; None: leave them out, as sweeps before them did.
        axis: ``sweep.json``'s ``axis`` (the variants then carry their ``axis_value`` etc. in
            ``keys``); None: leave the key out, as sweeps before axes did.
        with_boundary: add ``biou`` (0.7 × IoU, so 0.7 × each shift, plus noise), ``rgb_edge`` and
            ``depth_edge`` to the instances and ``{prompt}_biou`` to ``trials.csv``; False: as
            results before Boundary IoU.
    """
    incomplete = incomplete or {}
    rng = np.random.default_rng(1234)
    difficulty = rng.uniform(0.35, 0.8, N_INSTANCES)
    camouflaged = rng.random(N_INSTANCES) < 0.3
    edges = rng.gamma(2.0, 1.0, (2, N_INSTANCES)) if with_boundary else None
    root.mkdir(parents=True, exist_ok=True)
    sweep = {
        "name": "demo_sweep", "seeds": list(SEEDS), "baseline": variants[0].name,
        "variants": [{"name": v.name, "group": v.group,
                      "fusion": None if v.group == "baseline" else "add",
                      "fusion_point": None if v.group == "baseline" else "stage3",
                      "depth_source": None if v.group == "baseline" else "depth_anything",
                      "label": v.label, **v.keys} for v in variants],
        "dataset": "embedded COCO_tiny (200 instances)", "eval_dataset": "COCO val 5% split",
        "depth_source": "Depth Anything V2-S, cached", "prompts": list(PROMPT_PENALTY),
        "total_cells": len(variants) * len(SEEDS),
        **(descriptions or {}),
        **({"axis": axis} if axis is not None else {}),
    }
    (root / "sweep.json").write_text(json.dumps(sweep))
    rows = []
    for variant in variants:
        for seed in SEEDS:
            cell = (variant.name, seed)
            if cell in missing:
                continue
            trial_id = len(rows)
            if variant.group == "baseline":
                latency = baseline_latency[seed]
            else:
                latency = (float("nan") if variant.latency is None
                           else variant.latency + rng.normal(0, noise / 2))
            row = {"trial_id": trial_id, "variant": variant.name, "seed": seed,
                   "state": "COMPLETE", "params_m": variant.params,
                   "gmacs": variant.gmacs or 2.0 * variant.params, "latency_ratio": latency,
                   "wall_s": 100.0, "error": ""}
            if throughput is not None:
                row.update(throughput_ips=100.0 / latency, throughput_batch=throughput[0],
                           throughput_device=throughput[1])
            if cell in incomplete:
                row["state"], row["error"] = incomplete[cell]
            else:
                instances = _instances(rng, difficulty, variant.shift, camouflaged,
                                       with_attribute, noise, edges)
                folder = root / "trials" / str(trial_id)
                folder.mkdir(parents=True)
                instances.to_csv(folder / "instances.csv", index=False)
                box = instances[instances["prompt"] == "box"]
                row.update({f"{p}_miou": 100 * instances.loc[instances["prompt"] == p, "iou"].mean()
                            for p in PROMPT_PENALTY})
                row.update({f"box_miou_{s}": 100 * box.loc[box["size"] == s, "iou"].mean()
                            for s in ("small", "medium", "large")})
                if with_boundary:
                    row.update({f"{p}_biou": 100 * instances.loc[instances["prompt"] == p, "biou"].mean()
                                for p in PROMPT_PENALTY})
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
def boundary_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The complete fake sweep with Boundary IoU and edge attributes, as evaluation writes them now."""
    return write_sweep(tmp_path_factory.mktemp("boundary") / "demo_sweep", with_boundary=True)


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


@pytest.fixture(scope="session")
def throughput_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """The complete fake sweep with throughput measured at batch 8 on a named GPU (12 columns)."""
    root = write_sweep(tmp_path_factory.mktemp("throughput") / "demo_sweep",
                       throughput=(8, "NVIDIA H200"))
    return make_report(root, n_boot=100)


@pytest.fixture
def fusion_variants() -> Tuple[FakeVariant, ...]:
    """``VARIANTS``, to change and pass to ``sweep_writer(..., variants=...)``."""
    return VARIANTS


@pytest.fixture
def encoder_variants() -> Tuple[FakeVariant, ...]:
    """``ENCODER_VARIANTS``, to pass to ``sweep_writer(..., variants=...)``."""
    return ENCODER_VARIANTS


@pytest.fixture(scope="session")
def exact_encoder_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """The report of ``ENCODER_VARIANTS`` without noise: every Δ is exactly its true shift
    (same +4.0, efficientvit-quarter +3.0 box mIoU ...) and every cost exactly as listed."""
    root = write_sweep(tmp_path_factory.mktemp("exact") / "demo_sweep",
                       variants=ENCODER_VARIANTS, noise=0.0)
    return make_report(root, n_boot=50)


@pytest.fixture(scope="session")
def axis_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """The report of ``AXIS_VARIANTS``: a data-efficiency sweep over 3 training-set sizes."""
    root = write_sweep(tmp_path_factory.mktemp("axis") / "demo_sweep", variants=AXIS_VARIANTS,
                       axis={"key": "data.train.num_images", "values": list(AXIS_VALUES)})
    return make_report(root, n_boot=500)


@pytest.fixture(scope="session")
def encoder_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """The report of a complete depth-encoder ablation (``ENCODER_VARIANTS``), with noise."""
    root = write_sweep(tmp_path_factory.mktemp("encoder") / "demo_sweep",
                       variants=ENCODER_VARIANTS)
    return make_report(root, n_boot=200)
