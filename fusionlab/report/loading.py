"""Load and validate a sweep's result files: the contract between the sweep and the report.

The report reads only these files, never a model, so a sweep run on a GPU cluster can be
reported on a laptop. ``results/<name>/`` contains:

``sweep.json``
    ``{"name": str, "seeds": [int], "baseline": str, "axis": {...} | null, "variants": [...],
    "dataset": str, "eval_dataset": str, "depth_source": str,
    "prompts": ["box", "click1", "click3"], "total_cells": int}``

    - ``baseline``: the variant name of the RGB-only baseline (every Δ is against it, unless a
      variant names its own).
    - ``axis``: ``{"key": "data.train.num_images", "values": [25, 50, 100, 200]}`` when the
      sweep crossed every variant with the values of one numeric field, else null or absent.
      Each variant then also has ``"design"`` (its name without the axis value, e.g. ``add``:
      one line of the curve figure), ``"design_label"``, ``"axis_value"`` (one of ``values``)
      and ``"baseline"``: the RGB-only variant at the same value, which its Δ is against.
    - ``variants``: ``{"name": str, "group": "baseline" | "fusion" | "encoder" | "control",
      "fusion": str | null, "fusion_point": str | null, "depth_source": str | null,
      "depth_encoder": str | null, "depth_size": int | null, "label": str}``; ``label`` is
      the short display label used in tables and plots. ``depth_encoder`` names the depth
      branch's encoder (``"same"``: a full copy of the RGB encoder, the paper's design;
      ``"shared"``, ``"efficientvit-quarter"``, ``"timm:resnet18"`` ...: lighter ones; null
      for the RGB-only baseline); ``depth_size`` is the depth branch's own input side (null:
      the RGB encoder's). Sweeps written before these two keys existed lack them: a missing
      ``depth_encoder`` reads as ``"same"`` for a variant with a fusion, else null; a missing
      ``depth_size`` as null.
    - ``dataset`` / ``eval_dataset`` / ``depth_source``: one-line descriptions for the caption.
    - ``total_cells``: the number of (variant, seed) cells the sweep plans.

``trials.csv``
    One row per trial, i.e. per (variant, seed) cell attempt:
    ``trial_id, variant, seed, state`` (``COMPLETE`` / ``FAIL`` / ``RUNNING`` / ``PRUNED`` /
    ``WAITING``), ``box_miou, box_miou_small, box_miou_medium, box_miou_large, click1_miou,
    click3_miou`` (mIoU × 100), ``box_biou, click1_biou, click3_biou`` (Boundary IoU × 100;
    sweeps evaluated before it lack them until ``fusionlab rescore``), ``params_m, gmacs,
    latency_ratio`` (latency relative to the
    RGB-only model, measured in the same process; 1 for the baseline by definition, which the
    report enforces because older sweeps recorded a noisy measurement there),
    ``throughput_ips`` (images per second through the encoder(s) and fusion blocks, measured at
    ``throughput_batch`` images per forward on ``throughput_device``, e.g. ``NVIDIA H200`` or
    ``cpu``; sweeps older than these three columns lack them),
    ``wall_s``, ``resumed_from_step`` (the step of the resume point the trial's training
    continued from, 0 from scratch; sweeps older than this column lack it), ``error`` (the
    reason when failed).
    Any further numeric column is an extra metric and is kept.

``trials/<trial_id>/instances.csv``
    The per-instance IoUs of one trial: ``image_id, ann_id, prompt`` (``box`` / ``click1`` /
    ``click3`` ...), ``iou`` (0..1), ``biou`` (Boundary IoU, 0..1), ``area`` (annotation area),
    ``size`` (small / medium / large), ``rgb_edge, depth_edge, depth_contrast`` (floats, NaN where
    there is no real depth: :mod:`fusionlab.attributes`), and optional boolean attribute columns
    such as ``camouflaged``. Trials evaluated before Boundary IoU lack ``biou`` and the three
    attributes until ``fusionlab rescore`` adds them from the saved predictions.

``trials/<trial_id>/predictions_<prompt>.json`` (``predictions_box.json``, ``predictions_click1.json`` ...)
    The masks the trial's evaluation scored, as COCO results: pycocotools ``COCO.loadRes``
    reads the file and ``COCOeval(iouType="segm")`` scores it against the ``annotations`` file
    of ``images.json``. One entry per instance: ``{"image_id", "category_id", "segmentation"``
    (compressed RLE, ``counts`` a str), ``"score"`` (the predicted IoU), ``"prompt"``,
    ``"ann_id"`` (the instance's annotation id, as in ``instances.csv``), and the prompt in the
    image's pixels: ``"box": [x0, y0, x1, y1]`` or ``"points": [[x, y, label], ...]`` (label 1
    positive, 0 negative)``}``. For clicks the mask and points are those after the last click
    of that kind. Written with ``eval.save_predictions: true`` (the default); trials evaluated
    before these files existed, or with it off, lack them and the report draws no qualitative
    figure (``fusionlab eval`` writes the same files in its ``--out`` folder).

``trials/<trial_id>/images.json`` (with the predictions)
    ``{"dataset": str, "annotations": str | null, "depth": str | null, "images": [...]}``:
    ``annotations`` is the COCO instances JSON the ids refer to (absolute path, null for a
    dataset without one), ``depth`` the depth source's description (null: RGB-only model);
    ``images`` has one ``{"image_id", "file_name", "height", "width", "path", "depth"}`` per
    image with instances, ``path`` the absolute path of its RGB file and ``depth`` the relative
    path of its depth preview, or null. The RGB and annotation files are the dataset's own,
    read where the evaluation found them (the embedded scenes: under ``$FUSIONLAB_CACHE``).

``trials/<trial_id>/depth/<image_id>.png``
    An 8-bit preview of the depth map the RGB-D model received for that image (min-max scaled
    per image, long side at most 160 px): the depth column of the qualitative figure, whatever
    the depth source (dataset, Depth Anything's cache, a control computed on the fly).

A cell retried after a failure may have several rows; the report keeps its ``COMPLETE`` row
(the last one if there are several), else its last row. A folder without any ``COMPLETE`` row
has nothing to report (:func:`require_a_complete_trial`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pandas as pd

from fusionlab.errors import FusionlabError
from fusionlab.results import GROUPS, ID_COLUMNS

STATES = ("COMPLETE", "FAIL", "RUNNING", "PRUNED", "WAITING")
MISSING = "MISSING"
INSTANCE_COLUMNS = ("image_id", "ann_id", "prompt", "iou")
# The metrics the contract names, in table order; any other numeric column follows them.
KNOWN_METRICS = ("box_miou", "box_miou_small", "box_miou_medium", "box_miou_large",
                 "click1_miou", "click3_miou", "box_biou", "click1_biou", "click3_biou", "params_m", "gmacs",
                 "latency_ratio", "throughput_ips")
# trials.csv columns that identify a trial or say how it was measured, rather than measure it;
# named here because numeric ones, or empty ones (read as NaN), would pass for metrics.
NON_METRIC_COLUMNS = ("trial_id", "seed", "throughput_batch", "throughput_device", "resumed_from_step", "error")


@dataclass(frozen=True)
class VariantRecord:
    """A variant as ``sweep.json`` records it: one row of the ablation table, a model configuration
    trained once per seed."""

    name: str
    group: str
    label: str
    fusion: Optional[str] = None
    fusion_point: Optional[str] = None
    depth_source: Optional[str] = None
    depth_encoder: Optional[str] = None
    depth_size: Optional[int] = None
    design: str = ""
    design_label: str = ""
    axis_value: Optional[float] = None
    baseline: Optional[str] = None  # the variant its Δ is against; None: the sweep's baseline


@dataclass(frozen=True)
class Sweep:
    """The contents of ``sweep.json``."""

    name: str
    seeds: Tuple[int, ...]
    baseline: str
    variants: Tuple[VariantRecord, ...]
    dataset: str
    eval_dataset: str
    depth_source: str
    prompts: Tuple[str, ...]
    total_cells: int
    axis_key: Optional[str] = None
    axis_values: Tuple[float, ...] = ()

    def variant(self, name: str) -> VariantRecord:
        return next(v for v in self.variants if v.name == name)

    def baseline_of(self, name: str) -> str:
        """The RGB-only variant that ``name``'s Δ is computed against (itself for a baseline)."""
        return self.variant(name).baseline or self.baseline

    @property
    def baselines(self) -> List[str]:
        """Every variant that is some variant's baseline: one, or one per axis value."""
        return sorted({self.baseline_of(v.name) for v in self.variants})

    def ordered_variants(self) -> List[VariantRecord]:
        """Variants in table order: by axis value (in ``axis.values`` order) if any, then by group in
        ``GROUPS`` order, ``sweep.json`` order within."""
        return sorted(self.variants, key=lambda v: (self.axis_position(v), GROUPS.index(v.group)))

    def axis_position(self, variant: VariantRecord) -> int:
        """The index of ``variant``'s axis value in ``axis_values``; 0 without an axis."""
        return self.axis_values.index(variant.axis_value) if self.axis_key else 0


@dataclass
class SweepResults:
    """A loaded results folder.

    Attributes:
        root: the ``results/<name>/`` folder.
        sweep: the parsed ``sweep.json``.
        cells: one row per planned (variant, seed) cell, plus any cell ``trials.csv`` adds;
            the ``trials.csv`` columns, with ``state == "MISSING"`` for cells without a row.
    """

    root: Path
    sweep: Sweep
    cells: pd.DataFrame

    def complete(self) -> pd.DataFrame:
        """The ``COMPLETE`` cells, in ``cells`` order."""
        return self.cells[self.cells["state"] == "COMPLETE"]

    def metric_columns(self) -> List[str]:
        """Numeric ``trials.csv`` columns that measure a model: known ones first, then extras."""
        numeric = [c for c in self.cells.select_dtypes("number").columns
                   if c not in NON_METRIC_COLUMNS]
        return [c for c in KNOWN_METRICS if c in numeric] + [c for c in numeric
                                                             if c not in KNOWN_METRICS]

    def instances(self, trial_id: Any) -> pd.DataFrame:
        """The per-instance IoUs of one trial (columns of ``instances.csv``)."""
        return load_instances(self.root / "trials" / str(trial_id) / "instances.csv")


def load_results(results_dir: Path | str) -> SweepResults:
    """Read and validate ``sweep.json`` and ``trials.csv`` of ``results_dir``."""
    root = Path(results_dir)
    if not root.is_dir():
        raise FusionlabError(f"{root}: not a folder; expected a sweep results folder "
                             "with sweep.json and trials.csv")
    for required in ("sweep.json", "trials.csv"):
        if not (root / required).is_file():
            raise FusionlabError(f"{root}: no {required}; expected a sweep results folder "
                                 "with sweep.json and trials.csv (written by the sweep)")
    sweep = _parse_sweep(root / "sweep.json")
    trials = _baseline_latency_is_one(_read_trials(root / "trials.csv", sweep), sweep)
    return SweepResults(root=root, sweep=sweep, cells=_one_row_per_cell(trials, sweep))


def require_a_complete_trial(results: SweepResults) -> None:
    """Raise unless at least one cell is ``COMPLETE``: a table of dashes would hide that.

    Raises:
        FusionlabError: naming the folder and how many cells are in which state.
    """
    if len(results.complete()):
        return
    counts = results.cells["state"].value_counts()
    states = ", ".join(f"{counts[s]} {s}" for s in (*STATES, MISSING) if s in counts)
    raise FusionlabError(f"{results.root}: no COMPLETE trial yet ({len(results.cells)} cells: "
                         f"{states}); run the sweep first, see {results.root / 'trials.csv'}")


def load_instances(path: Path) -> pd.DataFrame:
    """Read one ``instances.csv``; IoUs must lie in [0, 1]."""
    if not path.is_file():
        raise FusionlabError(f"{path}: missing; a COMPLETE trial must have its per-instance "
                             "IoUs there (columns image_id, ann_id, prompt, iou)")
    frame = _read_csv(path)
    _require_columns(frame, INSTANCE_COLUMNS, path)
    repeated = frame.duplicated(["image_id", "ann_id", "prompt"])
    if repeated.any():
        row = frame[repeated].iloc[0]
        raise FusionlabError(f"{path}: image_id={row['image_id']}, ann_id={row['ann_id']}, "
                             f"prompt={row['prompt']!r} appears twice; expected one row each")
    bad = ~frame["iou"].between(0.0, 1.0)
    if bad.any():
        row = frame[bad].iloc[0]
        raise FusionlabError(f"{path}: iou={row['iou']} for ann_id={row['ann_id']}; "
                             "expected a value in [0, 1]")
    return frame


def _parse_sweep(path: Path) -> Sweep:
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise FusionlabError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from err
    if not isinstance(raw, dict):
        raise FusionlabError(f"{path}: expected a JSON object at the top level")
    variants = tuple(_parse_variant(v, path, i) for i, v in enumerate(_key(raw, "variants", path)))
    names = [v.name for v in variants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise FusionlabError(f"{path}: variants: duplicate name(s) {duplicates}; "
                             "expected unique variant names")
    baseline = _key(raw, "baseline", path)
    for where, name in [("baseline", baseline)] + [(f"variants[{i}].baseline", v.baseline)
                                                  for i, v in enumerate(variants) if v.baseline]:
        if name not in names:
            raise FusionlabError(f"{path}: {where}={name!r} is not a variant; expected one of {names}")
    axis_key, axis_values = _parse_axis(raw.get("axis"), variants, path)
    return Sweep(
        name=str(_key(raw, "name", path)),
        seeds=tuple(int(s) for s in _key(raw, "seeds", path)),
        baseline=baseline,
        variants=variants,
        dataset=str(_key(raw, "dataset", path)),
        eval_dataset=str(_key(raw, "eval_dataset", path)),
        depth_source=str(_key(raw, "depth_source", path)),
        prompts=tuple(str(p) for p in _key(raw, "prompts", path)),
        total_cells=int(_key(raw, "total_cells", path)),
        axis_key=axis_key,
        axis_values=axis_values,
    )


def _parse_axis(raw: Any, variants: Tuple[VariantRecord, ...], path: Path
                ) -> Tuple[Optional[str], Tuple[float, ...]]:
    """``(key, values)`` of ``sweep.json``'s ``axis``, ``(None, ())`` without one; every variant must
    then sit at one of the values."""
    if raw is None:
        return None, ()
    values = raw.get("values") if isinstance(raw, dict) else None
    if (not isinstance(raw, dict) or not isinstance(raw.get("key"), str) or not isinstance(values, list)
            or not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
        raise FusionlabError(f"{path}: axis: expected {{\"key\": \"data.train.num_images\", \"values\": [25, 50]}} "
                             "(a dotted key and a non-empty list of numbers) or null")
    for i, variant in enumerate(variants):
        if variant.axis_value not in values:
            raise FusionlabError(f"{path}: variants[{i}]: axis_value={variant.axis_value!r}; expected one of "
                                 f"the axis values {values}")
    return raw["key"], tuple(values)


def _parse_variant(raw: Any, path: Path, index: int) -> VariantRecord:
    where = f"{path}: variants[{index}]"
    if not isinstance(raw, dict) or "name" not in raw:
        raise FusionlabError(f"{where}: expected an object with at least 'name' and 'group'")
    group = raw.get("group")
    if group not in GROUPS:
        raise FusionlabError(f"{where}: group={group!r}; expected one of {list(GROUPS)}")
    depth_size = raw.get("depth_size")
    if depth_size is not None and (isinstance(depth_size, bool) or not isinstance(depth_size, int)
                                   or depth_size <= 0):
        raise FusionlabError(f"{where}: depth_size={depth_size!r}; expected a positive integer "
                             "(pixels) or null")
    fusion = raw.get("fusion")
    # Sweeps older than the depth-encoder axis always copied the RGB encoder for depth.
    depth_encoder = raw.get("depth_encoder", "same" if fusion else None)
    axis_value = raw.get("axis_value")
    if axis_value is not None and (isinstance(axis_value, bool) or not isinstance(axis_value, (int, float))):
        raise FusionlabError(f"{where}: axis_value={axis_value!r}; expected a number or null")
    label = str(raw.get("label") or raw["name"])
    return VariantRecord(name=str(raw["name"]), group=group, label=label,
                         fusion=fusion, fusion_point=raw.get("fusion_point"),
                         depth_source=raw.get("depth_source"),
                         depth_encoder=None if depth_encoder is None else str(depth_encoder),
                         depth_size=depth_size, design=str(raw.get("design") or raw["name"]),
                         design_label=str(raw.get("design_label") or label), axis_value=axis_value,
                         baseline=None if raw.get("baseline") is None else str(raw["baseline"]))


def _key(raw: Dict[str, Any], key: str, path: Path) -> Any:
    if key not in raw:
        raise FusionlabError(f"{path}: missing key {key!r}")
    return raw[key]


def _read_csv(path: Path, **kwargs: Any) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise FusionlabError(f"{path}: not a readable CSV ({reason})") from err


def _require_columns(frame: pd.DataFrame, columns: Tuple[str, ...], path: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FusionlabError(f"{path}: missing column(s) {missing}; "
                             f"expected at least {list(columns)}")


def _read_trials(path: Path, sweep: Sweep) -> pd.DataFrame:
    # trial_id names a folder: kept as text so that missing cells cannot turn it into a float.
    trials = _read_csv(path, dtype={"trial_id": str})
    _require_columns(trials, ID_COLUMNS, path)
    if trials["state"].eq("COMPLETE").any():
        _require_columns(trials, ("box_miou",), path)
    # A sweep whose trials all failed or still run may not have written a metric yet.
    trials = trials.reindex(columns=[*trials.columns, *(c for c in ("box_miou", "error")
                                                       if c not in trials.columns)])
    _check_values(trials, "state", trials["state"].isin(STATES), f"one of {list(STATES)}", path)
    names = sorted(v.name for v in sweep.variants)
    _check_values(trials, "variant", trials["variant"].isin(names),
                  f"a variant of sweep.json, one of {names}", path)
    seeds = pd.to_numeric(trials["seed"], errors="coerce")
    _check_values(trials, "seed", seeds.notna() & (seeds % 1 == 0), "an integer", path)
    trials["seed"] = seeds.astype(int)
    for column in [c for c in KNOWN_METRICS if c in trials.columns]:
        values = pd.to_numeric(trials[column], errors="coerce")
        _check_values(trials, column, values.notna() | trials[column].isna(),
                      "a number (or an empty cell)", path)
        trials[column] = values.astype(float)
    return trials


def _baseline_latency_is_one(trials: pd.DataFrame, sweep: Sweep) -> pd.DataFrame:
    """The baseline's latency ratio is 1 by definition; an old sweep timed it against itself.

    Only measured values are replaced, so a trial without a latency stays without one.
    """
    if "latency_ratio" in trials.columns:
        timed = trials["variant"].isin(sweep.baselines) & trials["latency_ratio"].notna()
        trials.loc[timed, "latency_ratio"] = 1.0
    return trials


def _check_values(trials: pd.DataFrame, column: str, ok: pd.Series, expected: str,
                  path: Path) -> None:
    if not ok.all():
        row = trials[~ok].iloc[0]
        raise FusionlabError(f"{path}: trial_id={row['trial_id']}: {column}={row[column]!r}; "
                             f"expected {expected}")


def _one_row_per_cell(trials: pd.DataFrame, sweep: Sweep) -> pd.DataFrame:
    # A stable sort keeps file order within a cell, so "last" means the latest attempt.
    ranked = trials.assign(_done=trials["state"].eq("COMPLETE")).sort_values("_done", kind="stable")
    cells = ranked.groupby(["variant", "seed"], sort=False).tail(1).drop(columns="_done")
    # a reference variant (a released model, evaluated as it is) is planned at the first seed only
    planned = pd.DataFrame([(v.name, s) for v in sweep.variants
                            for s in (sweep.seeds[:1] if v.group == "reference" else sweep.seeds)],
                           columns=["variant", "seed"])
    cells = planned.merge(cells, on=["variant", "seed"], how="outer")
    cells["state"] = cells["state"].fillna(MISSING)
    order = {v.name: i for i, v in enumerate(sweep.ordered_variants())}
    cells = cells.assign(_order=cells["variant"].map(order)).sort_values(["_order", "seed"])
    return cells.drop(columns="_order").reset_index(drop=True)
