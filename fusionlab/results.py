"""The result files' names and columns, and their one writer (no torch: the report imports it too).

``fusionlab.report.results`` documents the layout of a sweep's results folder and reads it;
this module writes what evaluation and the sweep produce, atomically and as strict JSON/CSV
(a NaN, e.g. the mIoU of an empty size bucket, is written as ``null`` / an empty cell).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence

import pandas as pd

from fusionlab.atomic import atomic_write_text

GROUPS = ("baseline", "fusion", "encoder", "control")
METRIC_COLUMNS = ("box_miou", "box_miou_small", "box_miou_medium", "box_miou_large", "click1_miou", "click3_miou")
COST_COLUMNS = ("params_m", "gmacs", "latency_ratio", "wall_s")
ID_COLUMNS = ("trial_id", "variant", "seed", "state")
METRICS_FILE = "metrics.json"
INSTANCES_FILE = "instances.csv"
TRIALS_FILE = "trials.csv"
SWEEP_FILE = "sweep.json"


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


def write_evaluation(folder: Path, metrics: Dict[str, Any], instances: pd.DataFrame) -> None:
    """``metrics.json`` and ``instances.csv`` (one row per instance and prompt) of one evaluation."""
    write_json(Path(folder) / METRICS_FILE, metrics)
    atomic_write_text(Path(folder) / INSTANCES_FILE, instances.to_csv(index=False))


def write_trials(path: Path, rows: Iterable[Dict[str, Any]]) -> Path:
    """``trials.csv``: the id columns, the known metrics, any extra metric, the costs, ``error``."""
    rows = list(rows)
    known = set(ID_COLUMNS) | set(METRIC_COLUMNS) | set(COST_COLUMNS) | {"error"}
    extra = sorted({k for row in rows for k in row} - known)
    columns: List[str] = [*ID_COLUMNS, *METRIC_COLUMNS, *extra, *COST_COLUMNS, "error"]
    return atomic_write_text(path, pd.DataFrame(rows, columns=columns).to_csv(index=False))


def numeric_metrics(metrics: Dict[str, Any], names: Sequence[str] = ()) -> Dict[str, float]:
    """The numeric entries of ``metrics`` as floats (``names``: only those)."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and (not names or k in names)}
