"""``fusionlab rescore``: Boundary IoU and instance attributes for evaluations that predate them,
from the predictions they saved, without a model.

A command of its own rather than part of ``fusionlab report`` because it reads the dataset (the
ground-truth masks, the images and their depth) and the report reads result files only. Each
evaluation folder (a sweep trial's ``trials/<id>/`` or ``fusionlab eval --out``) needs its
``config.yaml`` (which dataset) and ``predictions_<prompt>.json`` (``eval.save_predictions``,
the default). Its ``instances.csv`` gains the columns ``biou``, ``rgb_edge``, ``depth_edge`` and
``depth_contrast``, its ``metrics.json`` the ``{prompt}_biou…`` keys; nothing it had changes (each
decoded mask must give back the IoU recorded, or the folder is refused). A sweep's ``trials.csv``
then gains the new metrics as columns.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pandas as pd
from pycocotools import mask as mask_utils

from fusionlab.atomic import atomic_write_text
from fusionlab.errors import FusionlabError
from fusionlab.results import (IMAGES_FILE, INSTANCES_FILE, METRICS_FILE, TRIALS_FILE, predictions_file, saved_metrics,
                               write_json, write_trials)
from fusionlab.scoring import attribute_depth, score_image

NEW_COLUMNS = ("biou", "rgb_edge", "depth_edge", "depth_contrast")
# a decoded RLE gives back the recorded IoU up to the float rounding of the CSV
IOU_TOLERANCE = 1e-6


def rescore_sweep(results: Path) -> List[Tuple[str, str]]:
    """Rescore every COMPLETE trial of ``results/<name>/`` and add the new metrics to ``trials.csv``;
    ``(trial id, what happened)`` per trial."""
    path = Path(results) / TRIALS_FILE
    if not path.is_file():
        raise FusionlabError(f"{results}: no {TRIALS_FILE}; expected a sweep's results folder (results/<name>)")
    trials = pd.read_csv(path, dtype={"trial_id": str})
    done = [(t, rescore_folder(Path(results) / "trials" / t)) for t in trials.loc[trials["state"] == "COMPLETE",
                                                                                  "trial_id"]]
    rows = [{**row, **_new_metrics(Path(results) / "trials" / str(row["trial_id"]), row)}
            for row in trials.to_dict("records")]
    write_trials(path, rows)
    return done


def _new_metrics(folder: Path, row: Dict[str, Any]) -> Dict[str, float]:
    """The metrics of a COMPLETE trial's ``metrics.json`` that its ``trials.csv`` row lacks."""
    if row["state"] != "COMPLETE":
        return {}
    return {k: v for k, v in saved_metrics(folder).items() if k not in row}


def rescore_folder(folder: Path) -> str:
    """Add Boundary IoU and the attributes to one evaluation folder; what was done, in a few words."""
    instances = pd.read_csv(folder / INSTANCES_FILE)
    if all(c in instances.columns for c in NEW_COLUMNS):
        return "already scored"
    prompts = list(instances["prompt"].drop_duplicates())
    missing = [p for p in prompts if not (folder / predictions_file(p)).is_file()]
    if missing:
        return f"skipped: no {predictions_file(missing[0])} (evaluated with eval.save_predictions: false?)"
    from fusionlab.config import load_run_config
    from fusionlab.evaluate import aggregate_metrics, val_dataset

    config = load_run_config(folder / "config.yaml", training=False)
    masks = {p: _saved_masks(folder / predictions_file(p)) for p in prompts}
    images = json.loads((folder / IMAGES_FILE).read_text(encoding="utf-8"))
    scores = _score(val_dataset(config), masks, {i["image_id"] for i in images["images"]}, images["depth"], config)
    merged = instances.drop(columns=[c for c in NEW_COLUMNS if c in instances.columns]).merge(
        scores, on=["image_id", "ann_id", "prompt"], how="left", validate="one_to_one")
    merged = _check_ious(merged, folder)
    columns = list(instances.columns[:instances.columns.get_loc("iou") + 1]) + ["biou"]
    merged = merged[columns + [c for c in merged.columns if c not in columns]]
    metrics = json.loads((folder / METRICS_FILE).read_text(encoding="utf-8"))
    metrics.update({k: v for k, v in aggregate_metrics(merged, prompts).items() if k not in metrics})
    write_json(folder / METRICS_FILE, metrics)
    atomic_write_text(folder / INSTANCES_FILE, merged.to_csv(index=False))
    return f"rescored {len(merged)} rows"


def _saved_masks(path: Path) -> Dict[Tuple[int, int], dict]:
    """``(image_id, ann_id)`` -> the RLE of one ``predictions_<prompt>.json``."""
    return {(int(e["image_id"]), int(e["ann_id"])): e["segmentation"] for e in json.loads(path.read_text())}


def _score(dataset: Any, masks: Dict[str, Dict[Tuple[int, int], dict]], image_ids: set, depth: Any,
           config: Any) -> pd.DataFrame:
    """Rows ``image_id, ann_id, prompt, iou_check`` and :data:`NEW_COLUMNS` for the images in ``image_ids``."""
    source = _depth_source(config, dataset) if depth is not None else None
    rows: List[Dict[str, Any]] = []
    for index in range(len(dataset)):
        if not image_ids:
            break
        sample = dataset[index]
        if sample.image_id not in image_ids:
            continue
        image_ids.discard(sample.image_id)
        instances = [inst for inst in sample.instances if inst.area >= 1]
        predicted = {p: np.stack([mask_utils.decode(by_key[(sample.image_id, inst.ann_id)]).astype(bool)
                                  for inst in instances]) for p, by_key in masks.items()}
        model_depth = None if source is None or sample.depth is not None else source(sample, index)
        real = attribute_depth(sample.depth, model_depth, config.depth.source)
        for prompt, per_instance in score_image(sample.image, [i.mask for i in instances], predicted, real).items():
            rows += [{"image_id": sample.image_id, "ann_id": inst.ann_id, "prompt": prompt,
                      "iou_check": _iou(inst.mask, pred), **score}
                     for inst, pred, score in zip(instances, predicted[prompt], per_instance)]
    return pd.DataFrame(rows)


def _depth_source(config: Any, dataset: Any) -> Any:
    """The run's depth source prepared on ``dataset`` when it gives the attributes' depth (not a control)."""
    from fusionlab.depth import build_depth_source
    from fusionlab.scoring import CONTROL_DEPTH_SOURCES

    if config.depth.source in CONTROL_DEPTH_SOURCES or config.eval.drop_depth:
        return None
    source = build_depth_source(config.depth.source, **config.depth.options)
    source.prepare(dataset, progress=False)
    return source


def _iou(gt: np.ndarray, pred: np.ndarray) -> float:
    union = np.count_nonzero(gt | pred)
    return np.count_nonzero(gt & pred) / union if union else 0.0


def _check_ious(merged: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """``merged`` without its check column; refuses predictions that are not the scored masks of these rows
    (another dataset, an edited file)."""
    off = merged["iou_check"].isna() | (merged["iou_check"] - merged["iou"]).abs().gt(IOU_TOLERANCE)
    if off.any():
        row = merged[off].iloc[0]
        raise FusionlabError(f"{folder / INSTANCES_FILE}: image_id={row['image_id']} ann_id={row['ann_id']} "
                             f"prompt={row['prompt']}: iou={row['iou']} but its saved mask gives {row['iou_check']}; "
                             f"the predictions do not match the instances of the dataset in config.yaml")
    return merged.drop(columns="iou_check")
