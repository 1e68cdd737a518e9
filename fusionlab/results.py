"""The result files' names and columns, and their one writer (no torch: the report imports it too).

``fusionlab.report.loading`` documents the layout of a sweep's results folder and reads it;
this module writes what evaluation and the sweep produce, atomically and as strict JSON/CSV
(a NaN, e.g. the mIoU of an empty size bucket, is written as ``null`` / an empty cell).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from fusionlab.atomic import atomic_write, atomic_write_text

GROUPS = ("baseline", "reference", "fusion", "encoder", "control")
METRIC_COLUMNS = ("box_miou", "box_miou_small", "box_miou_medium", "box_miou_large", "click1_miou", "click3_miou",
                  "box_biou", "click1_biou", "click3_biou")
COST_COLUMNS = ("params_m", "gmacs", "latency_ratio", "throughput_ips", "throughput_batch", "throughput_device",
                "wall_s")
ID_COLUMNS = ("trial_id", "variant", "seed", "state")
# the step of the resume point a trial's training continued from (0: from scratch); empty when it did not train
RESUMED_COLUMN = "resumed_from_step"
METRICS_FILE = "metrics.json"
INSTANCES_FILE = "instances.csv"
TRIALS_FILE = "trials.csv"
SWEEP_FILE = "sweep.json"
IMAGES_FILE = "images.json"
DEPTH_PREVIEW_FOLDER = "depth"
# Depth previews are for figures: a long side of 160 px bounds one at 25.6 KB before PNG compression.
DEPTH_PREVIEW_SIDE = 160


def predictions_file(prompt: str) -> str:
    """The predictions file of one prompt kind: ``predictions_box.json``, ``predictions_click1.json`` ..."""
    return f"predictions_{prompt}.json"


@dataclass
class Predictions:
    """The predicted masks of one evaluation, what they were prompted with, and where the images are.

    Attributes:
        entries: prompt kind -> COCO results, one per instance: ``{"image_id", "category_id",
            "segmentation": compressed RLE (counts a str), "score": predicted IoU, "prompt",
            "ann_id", "box": [x0, y0, x1, y1]}`` for a box, ``"points": [[x, y, label], ...]``
            (label 1 positive, 0 negative) for clicks; coordinates are the image's pixels. The
            mask is the one the protocol scores (for clicks: after the last click of the kind).
        images: per image with instances: ``{"image_id", "file_name", "height", "width",
            "path"}``, ``path`` the absolute path of its RGB file.
        annotations: the COCO instances JSON whose ``ann_id`` / ``category_id`` the entries name
            (absolute), or None for a dataset without one.
        dataset: the dataset's one-line description.
        depth: the depth source's one-line description; None for an RGB-only model.
        depth_previews: image id -> ``(h, w)`` uint8 of the depth map the model received
            (:func:`depth_preview`); empty for an RGB-only model.
    """

    entries: Dict[str, List[dict]]
    images: List[dict] = field(default_factory=list)
    annotations: Optional[str] = None
    dataset: str = ""
    depth: Optional[str] = None
    depth_previews: Dict[int, np.ndarray] = field(default_factory=dict)


def depth_preview(depth: np.ndarray) -> np.ndarray:
    """An ``(H, W)`` depth map as ``(h, w)`` uint8, min-max scaled (a constant map is 0) and
    shrunk (antialiased) to a long side of at most :data:`DEPTH_PREVIEW_SIDE`."""
    depth = np.asarray(depth, dtype=np.float64)
    low, high = float(depth.min()), float(depth.max())
    scaled = (depth - low) / (high - low) if high > low else np.zeros_like(depth)
    picture = Image.fromarray(np.rint(scaled * 255).astype(np.uint8))
    picture.thumbnail((DEPTH_PREVIEW_SIDE, DEPTH_PREVIEW_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(picture)


def strict(value: Any) -> Any:
    """``value`` with every float NaN/inf (also inside mappings and lists) replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


def write_json(path: Path, data: Any) -> Path:
    """``data`` as indented strict JSON (NaN → null), atomically."""
    return atomic_write_text(path, json.dumps(strict(data), indent=2, default=float, allow_nan=False) + "\n")


def write_evaluation(folder: Path, metrics: Dict[str, Any], instances: pd.DataFrame,
                     predictions: Optional[Predictions] = None) -> None:
    """``metrics.json`` and ``instances.csv`` (one row per instance and prompt) of one evaluation,
    and with ``predictions`` its predictions files (:func:`write_predictions`)."""
    write_json(Path(folder) / METRICS_FILE, metrics)
    atomic_write_text(Path(folder) / INSTANCES_FILE, instances.to_csv(index=False))
    if predictions is not None:
        write_predictions(Path(folder), predictions)


def write_predictions(folder: Path, predictions: Predictions) -> List[Path]:
    """``predictions_<prompt>.json`` per prompt kind (compact JSON, loadable by pycocotools'
    ``COCO.loadRes``), ``images.json`` and ``depth/<image id>.png`` per depth preview."""
    paths = [atomic_write_text(folder / predictions_file(prompt), json.dumps(entries))
             for prompt, entries in predictions.entries.items()]
    images = []
    for image in predictions.images:
        preview = predictions.depth_previews.get(image["image_id"])
        name = None if preview is None else f"{DEPTH_PREVIEW_FOLDER}/{image['image_id']}.png"
        if preview is not None:
            picture = Image.fromarray(preview)
            paths.append(atomic_write(folder / name, lambda tmp: picture.save(tmp, format="PNG")))
        images.append({**image, "depth": name})
    summary = {"dataset": predictions.dataset, "annotations": predictions.annotations,
               "depth": predictions.depth, "images": images}
    return paths + [write_json(folder / IMAGES_FILE, summary)]


def write_trials(path: Path, rows: Iterable[Dict[str, Any]]) -> Path:
    """``trials.csv``: the id columns, the known metrics, any extra metric, the costs, ``resumed_from_step``,
    ``error``."""
    rows = list(rows)
    known = set(ID_COLUMNS) | set(METRIC_COLUMNS) | set(COST_COLUMNS) | {RESUMED_COLUMN, "error"}
    extra = sorted({k for row in rows for k in row} - known)
    columns: List[str] = [*ID_COLUMNS, *METRIC_COLUMNS, *extra, *COST_COLUMNS, RESUMED_COLUMN, "error"]
    return atomic_write_text(path, pd.DataFrame(rows, columns=columns).to_csv(index=False))


def saved_metrics(folder: Path) -> Dict[str, float]:
    """The numeric entries of ``folder/metrics.json``; {} without one. ``fusionlab rescore`` adds
    metrics there that the sweep's storage lacks, and ``trials.csv`` keeps them from here."""
    path = Path(folder) / METRICS_FILE
    return numeric_metrics(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else {}


def numeric_metrics(metrics: Dict[str, Any], names: Sequence[str] = ()) -> Dict[str, float]:
    """The numeric entries of ``metrics`` as floats (``names``: only those)."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and (not names or k in names)}
