"""The official EfficientViT-SAM zero-shot protocol: box and N-click prompts, mIoU by object size.

Per image the encoder runs once; every instance's prompt goes into one batched decoder call
per round. The facts follow ``applications/efficientvit_sam`` of mit-han-lab/efficientvit:

- **box**: the annotation's box (``bbox`` as xyxy), multimask output, the mask with the
  highest predicted IoU; IoU against the ground-truth mask at the original resolution.
- **clickN**: click 1 is positive, at the maximum of the distance transform of the mask (the
  image border counts as boundary). Click k+1 goes to the maximum of the distance transform
  of the larger error region: false negatives give a positive click, false positives a
  negative one (a tie goes negative; a pixel already clicked is never clicked again). Every
  round predicts from all clicks so far with multimask output and keeps the mask with the
  highest predicted IoU, as the official code does (no low-res mask fed back). One pass of
  ``max N`` clicks gives the IoU after every click, so click1 and click3 share their first click.
  One deviation: once a prediction is perfect there is no error to click on, and the IoU is
  kept (the official clicker would add a negative click at pixel (0, 0)).
- **detections**: a detector's boxes as prompts (best-predicted-IoU mask), scored as mask AP
  by pycocotools ``COCOeval(iouType="segm")`` with ``maxDets`` up to ``max_detections``.

With ``eval.save_predictions`` (the default) the scored masks are kept as COCO results, one
list per prompt kind (``score`` = predicted IoU; the box or the clicks in image pixels), with
where each image is and a small preview of the depth the model received; ``write_result``
writes them beside the metrics (:class:`fusionlab.results.Predictions`).

Every scored mask also gets its **Boundary IoU** with the ground truth at the image's original
resolution (:mod:`fusionlab.boundary`, as boundary-iou-api defines it) and every instance its
attributes (:mod:`fusionlab.attributes`: how visible its outline is in RGB and in the real depth),
both from masks alone (:mod:`fusionlab.scoring`), so a finished evaluation's saved predictions give
the same numbers (``fusionlab rescore``).

Size buckets use the annotation ``area`` and the dataset's ``size_thresholds``
(small: area < t0, medium: t0 <= area < t1, large: area >= t1; COCO's 32², 96² by default);
the official script counts an area of exactly t0 or t1 in both neighbouring buckets.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy.ndimage import distance_transform_edt
from tqdm import tqdm

from fusionlab.config import RunConfig, parse_prompts, resolve_device
from fusionlab.data.types import Instance, Sample
from fusionlab.distributed import SINGLE, World, is_main_process, join
from fusionlab.errors import FusionlabError
from fusionlab.models import EfficientViTSam, Predictor
from fusionlab.models.checkpoint import DepthPreprocessing
from fusionlab.results import Predictions, depth_preview, write_evaluation
from fusionlab.scoring import attribute_depth, score_image

COCO_SIZE_THRESHOLDS: Tuple[float, float] = (32.0 ** 2, 96.0 ** 2)
SIZES: Tuple[str, ...] = ("small", "medium", "large")
# A boolean instance attribute reported as its own pair of metrics: (attribute, name if true, if false).
SPLIT_ATTRIBUTE = ("camouflaged", "camouflaged", "plain")
DROPPED_DEPTH = 0.5
DETECTION_KEYS = ("image_id", "category_id", "bbox", "score")

log = logging.getLogger("fusionlab")


@dataclass
class EvalResult:
    """What one evaluation gives.

    Attributes:
        metrics: ``{prompt}_miou`` and ``{prompt}_biou`` (× 100) overall, ``_small/_medium/_large``
            and, with a ``camouflaged`` attribute, ``_camouflaged/_plain``; counts ``n_images``,
            ``n_instances``, ``n_small`` …; ``mask_ap`` … with detections. NaN where a bucket is empty.
        instances: one row per (instance, prompt): ``image_id, ann_id, prompt, iou, biou`` (0..1),
            ``area, size``, ``rgb_edge, depth_edge, depth_contrast`` (:mod:`fusionlab.attributes`)
            and the instances' own scalar attributes (e.g. ``camouflaged``).
        predictions: the scored masks as COCO results per prompt kind, with where the images
            are; None with ``eval.save_predictions: false``.
    """

    metrics: Dict[str, float]
    instances: pd.DataFrame
    predictions: Optional[Predictions] = None


class Prompted(NamedTuple):
    """One prompt kind's outcome on the N instances of an image.

    Attributes:
        ious: ``(N,)`` IoU (0..1) of the scored masks with the ground truth.
        masks: ``(N, H, W)`` bool scored masks at the image's size.
        scores: ``(N,)`` their predicted IoU.
        prompts: N of ``{"box": [x0, y0, x1, y1]}`` or ``{"points": [[x, y, label], ...]}``.
    """

    ious: np.ndarray
    masks: np.ndarray
    scores: np.ndarray
    prompts: List[dict]


class Click(NamedTuple):
    """A simulated click at pixel ``(x, y)`` = (column, row); positive = on the object."""

    x: int
    y: int
    positive: bool


# ---------------------------------------------------------------- pure protocol pieces
def _max_distance(region: np.ndarray, clicked: Sequence[Tuple[int, int]]) -> Tuple[float, int, int]:
    """Largest distance to the region's boundary (outside the image counts as boundary) and its
    first pixel in row-major order, skipping pixels already clicked; (0, -1, -1) if none.

    The transform runs on the region's bounding box padded by one background pixel: every pixel
    outside that box is background, and the padding ring is at least as close, so the distances
    are those of the whole image.
    """
    rows = np.flatnonzero(region.any(axis=1))
    if rows.size == 0:
        return 0.0, -1, -1
    cols = np.flatnonzero(region.any(axis=0))
    top, left = rows[0], cols[0]
    crop = region[top:rows[-1] + 1, left:cols[-1] + 1]
    distance = distance_transform_edt(np.pad(crop, 1))[1:-1, 1:-1]
    for x, y in clicked:
        if 0 <= y - top < crop.shape[0] and 0 <= x - left < crop.shape[1]:
            distance[y - top, x - left] = 0.0
    flat = int(np.argmax(distance))
    row, col = divmod(flat, distance.shape[1])
    return float(distance[row, col]), int(top + row), int(left + col)


def next_click(gt: np.ndarray, pred: np.ndarray, clicked: Sequence[Tuple[int, int]] = ()) -> Optional[Click]:
    """The next simulated click on an ``(H, W)`` bool ground truth given the ``(H, W)`` bool prediction.

    With an empty prediction this is the first click: positive, at the mask's innermost pixel.
    ``clicked`` are earlier clicks ``(x, y)``, never repeated. None when no error pixel is left.
    """
    gt = np.asarray(gt, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    fn_dist, fn_row, fn_col = _max_distance(gt & ~pred, clicked)
    fp_dist, fp_row, fp_col = _max_distance(pred & ~gt, clicked)
    if fn_dist == 0.0 and fp_dist == 0.0:
        return None
    if fn_dist > fp_dist:
        return Click(x=fn_col, y=fn_row, positive=True)
    return Click(x=fp_col, y=fp_row, positive=False)


def size_bucket(area: float, thresholds: Tuple[float, float]) -> str:
    """``small`` (area < t0), ``medium`` (t0 <= area < t1) or ``large`` (area >= t1)."""
    small, large = thresholds
    return "small" if area < small else "medium" if area < large else "large"


def aggregate_metrics(instances: pd.DataFrame, prompts: Sequence[str]) -> Dict[str, float]:
    """Mean IoU × 100 per prompt, overall, per size bucket and per ``camouflaged`` split, the same of
    Boundary IoU (``{prompt}_biou…``) where the rows have it, plus counts.

    Args:
        instances: rows ``prompt, iou`` (0..1), ``size``, optionally ``biou`` (0..1) and a
            boolean ``camouflaged``.
        prompts: the prompt types to report (every key appears; an empty group is NaN).
    """
    attribute, yes, no = SPLIT_ATTRIBUTE
    split = attribute in instances.columns and instances[attribute].notna().any()
    metrics: Dict[str, float] = {}
    scores = [("iou", "miou")] + ([("biou", "biou")] if "biou" in instances.columns else [])
    for column, name in scores:
        for prompt in prompts:
            rows = instances[instances["prompt"] == prompt]
            metrics[f"{prompt}_{name}"] = _mean_score(rows, column)
            for size in SIZES:
                metrics[f"{prompt}_{name}_{size}"] = _mean_score(rows[rows["size"] == size], column)
            if split:
                flags = rows[attribute]
                # NaN is neither True nor False
                metrics[f"{prompt}_{name}_{yes}"] = _mean_score(rows[flags == True], column)  # noqa: E712
                metrics[f"{prompt}_{name}_{no}"] = _mean_score(rows[flags == False], column)  # noqa: E712
    counted = instances[instances["prompt"] == prompts[0]] if len(prompts) else instances.iloc[:0]
    metrics["n_instances"] = float(len(counted))
    for size in SIZES:
        metrics[f"n_{size}"] = float((counted["size"] == size).sum())
    if split:
        metrics[f"n_{yes}"] = float((counted[attribute] == True).sum())  # noqa: E712
        metrics[f"n_{no}"] = float((counted[attribute] == False).sum())  # noqa: E712
    return metrics


def _mean_score(rows: pd.DataFrame, column: str) -> float:
    return float(rows[column].mean() * 100.0) if len(rows) else math.nan


# ---------------------------------------------------------------- detections and mask AP
def read_detections(path: str) -> Dict[int, List[dict]]:
    """A COCO-results JSON ``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}, ...]``
    grouped by image id; anything else is a one-line error naming the file and the entry."""
    file = Path(path)
    if not file.is_file():
        raise FusionlabError(f"eval.detections: {file} not found; expected a COCO-results JSON of detector boxes")
    try:
        entries = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FusionlabError(f"{file}: not valid JSON ({exc}); expected a COCO-results list of detections") from exc
    if not isinstance(entries, list):
        raise FusionlabError(f"{file}: top level is a {type(entries).__name__}; expected a list of "
                             f"{{image_id, category_id, bbox, score}} objects")
    by_image: Dict[int, List[dict]] = {}
    for i, entry in enumerate(entries):
        _check_detection(entry, f"{file}: [{i}]")
        by_image.setdefault(int(entry["image_id"]), []).append(entry)
    return by_image


def _check_detection(entry: Any, where: str) -> None:
    expected = "expected {image_id, category_id, bbox: [x, y, w, h], score}"
    if not isinstance(entry, dict):
        raise FusionlabError(f"{where} is a {type(entry).__name__}; {expected}")
    for key in DETECTION_KEYS:
        if key not in entry:
            raise FusionlabError(f"{where} lacks {key!r}; {expected}")
    bbox = entry["bbox"]
    numbers = isinstance(bbox, list) and len(bbox) == 4 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)
    if not numbers or bbox[2] < 0 or bbox[3] < 0:
        raise FusionlabError(f"{where}: bbox={bbox!r}; expected [x, y, w, h], four finite numbers with w, h >= 0")
    if isinstance(entry["score"], bool) or not isinstance(entry["score"], (int, float)):
        raise FusionlabError(f"{where}: score={entry['score']!r}; expected a number")
    for key in ("image_id", "category_id"):
        if isinstance(entry[key], bool) or not isinstance(entry[key], int):
            raise FusionlabError(f"{where}: {key}={entry[key]!r}; expected an integer id")


def find_annotation_file(dataset: Any) -> Optional[Path]:
    """The COCO instances JSON behind ``dataset`` (``annotation_file``, else a path ``annotations``), or None."""
    for name in ("annotation_file", "annotations"):
        value = getattr(dataset, name, None)
        if isinstance(value, (str, Path)):
            return Path(value)
    return None


def annotation_file(dataset: Any) -> Path:
    """:func:`find_annotation_file`, a one-line error for a dataset without one."""
    path = find_annotation_file(dataset)
    if path is not None:
        return path
    raise FusionlabError(f"eval.detections: dataset {getattr(dataset, 'name', type(dataset).__name__)!r} has no "
                         f"COCO annotation file for mask AP; use a COCO-format dataset (coco, synthetic)")


def mask_ap(gt_file: Path, results: List[dict], image_ids: Sequence[int], max_detections: int) -> Dict[str, float]:
    """Mask AP × 100 of RLE ``results`` on ``image_ids`` of a COCO instances JSON.

    Read from ``COCOeval.eval["precision"]`` at ``maxDets = max_detections`` rather than
    ``COCOeval.summarize()``, which hard-codes 100 detections for its first number. LVIS's own
    ``max_dets`` is 300, but its federated AP (``lvis`` package) differs from COCOeval's.
    """
    keys = ("mask_ap", "mask_ap50", "mask_ap75", "mask_ap_small", "mask_ap_medium", "mask_ap_large")
    if not results:
        return {key: math.nan for key in keys}
    coco_gt = _coco_ground_truth(gt_file)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="segm")
        evaluator.params.imgIds = list(image_ids)
        evaluator.params.maxDets = sorted({1, 10, max_detections})
        evaluator.evaluate()
        evaluator.accumulate()
    params = evaluator.params
    precision = evaluator.eval["precision"]  # (iou thresholds, recall, categories, areas, maxDets)
    dets = params.maxDets.index(max_detections)

    def average(area: str, iou: Optional[float] = None) -> float:
        values = precision[:, :, :, params.areaRngLbl.index(area), dets]
        if iou is not None:
            values = values[np.isclose(params.iouThrs, iou)]
        values = values[values > -1]
        return float(values.mean() * 100.0) if values.size else math.nan

    return dict(zip(keys, (average("all"), average("all", 0.5), average("all", 0.75),
                           average("small"), average("medium"), average("large"))))


def _coco_ground_truth(path: Path) -> COCO:
    """The GT as a ``COCO`` object; annotations without ``iscrowd`` (LVIS) count as not crowd."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise FusionlabError(f"{path}: cannot read the COCO ground truth for mask AP ({exc})") from exc
    if not content.get("categories"):
        raise FusionlabError(f"{path}: no 'categories'; mask AP needs the category list of the instances JSON")
    for ann in content.get("annotations", []):
        ann.setdefault("iscrowd", 0)
    coco = COCO()
    coco.dataset = content
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def encode_masks(masks: np.ndarray) -> List[dict]:
    """``(N, H, W)`` bool masks → N compressed RLEs with ``counts`` as str (JSON-ready)."""
    if len(masks) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


# ---------------------------------------------------------------- prediction
def _best_masks(predictor: Predictor, chunk: int, points: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
                boxes: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Multimask prediction for N prompts (prompt frame), keeping each prompt's mask with the
    highest predicted IoU: ``(N, H, W)`` bool at the original size and ``(N,)`` that predicted
    IoU. At most ``chunk`` prompts go into one decoder call, which bounds memory on images
    with hundreds of objects."""
    count = len(boxes) if boxes is not None else len(points[0])
    best, scores = [], []
    for start in range(0, count, chunk):
        part = slice(start, start + chunk)
        masks, iou, _ = predictor.predict_torch(
            points=None if points is None else (points[0][part], points[1][part]),
            boxes=None if boxes is None else boxes[part], multimask_output=True)
        choice = iou.argmax(dim=1)
        best.append(masks[torch.arange(len(masks), device=masks.device), choice])
        scores.append(iou.gather(1, choice[:, None])[:, 0])
    return torch.cat(best), torch.cat(scores)


def mask_iou(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """IoU of ``(N, H, W)`` bool predictions with ``(N, H, W)`` bool ground truths: ``(N,)`` in [0, 1]."""
    inter = (pred & gt).flatten(1).sum(1)
    union = (pred | gt).flatten(1).sum(1)
    return inter.double() / union.clamp(min=1).double()


def _box_prompts(predictor: Predictor, instances: List[Instance], gts: torch.Tensor, chunk: int) -> Prompted:
    boxes = np.stack([np.asarray(inst.bbox_xyxy, dtype=np.float64) for inst in instances])
    prompt = torch.as_tensor(predictor.apply_boxes(boxes), dtype=torch.float, device=gts.device)
    masks, scores = _best_masks(predictor, chunk, boxes=prompt)
    return Prompted(ious=mask_iou(masks, gts).cpu().numpy(), masks=masks.cpu().numpy(), scores=scores.cpu().numpy(),
                    prompts=[{"box": box.tolist()} for box in boxes])


def _click_prompts(predictor: Predictor, instances: List[Instance], gts: torch.Tensor, click_counts: List[int],
                   chunk: int) -> Dict[int, Prompted]:
    """The outcome after N clicks for every N of ``click_counts``; all instances clicked in one batch per round."""
    count = len(instances)
    preds = np.zeros((count,) + instances[0].mask.shape, dtype=bool)
    scores = np.zeros(count)
    clicks: List[List[Click]] = [[] for _ in range(count)]
    ious = np.zeros((count, max(click_counts)))
    active = list(range(count))
    outcomes: Dict[int, Prompted] = {}
    for round_ in range(max(click_counts)):
        still = []
        for i in active:
            click = next_click(instances[i].mask, preds[i], [(c.x, c.y) for c in clicks[i]])
            if click is None:  # a perfect mask: nothing left to click, its IoU stands
                ious[i, round_:] = ious[i, round_ - 1]
                continue
            clicks[i].append(click)
            still.append(i)
        active = still
        if active:
            coords = np.array([[(c.x, c.y) for c in clicks[i]] for i in active], dtype=np.float64)
            labels = np.array([[int(c.positive) for c in clicks[i]] for i in active])
            points = (torch.as_tensor(predictor.apply_coords(coords), dtype=torch.float, device=gts.device),
                      torch.as_tensor(labels, dtype=torch.int, device=gts.device))
            masks, best = _best_masks(predictor, chunk, points=points)
            ious[active, round_] = mask_iou(masks, gts[active]).cpu().numpy()
            preds[active] = masks.cpu().numpy()
            scores[active] = best.cpu().numpy()
        if round_ + 1 in click_counts:
            outcomes[round_ + 1] = Prompted(
                ious=ious[:, round_].copy(), masks=preds.copy(), scores=scores.copy(),
                prompts=[{"points": [[c.x, c.y, int(c.positive)] for c in done]} for done in clicks])
    return outcomes


def _detection_results(predictor: Predictor, detections: List[dict], image_id: int, chunk: int) -> List[dict]:
    """Masks for one image's detector boxes, as COCO results with RLE ``segmentation``."""
    height, width = predictor.original_size
    boxes = np.array([d["bbox"] for d in detections], dtype=np.float64)
    boxes[:, 2:] += boxes[:, :2]
    boxes = np.clip(boxes, 0, [width, height, width, height])  # detector boxes may spill over the border
    prompt = torch.as_tensor(predictor.apply_boxes(boxes), dtype=torch.float, device=predictor.model.device)
    masks = _best_masks(predictor, chunk, boxes=prompt)[0].cpu().numpy()
    return [{"image_id": image_id, "category_id": d["category_id"], "score": float(d["score"]),
             "segmentation": rle} for d, rle in zip(detections, encode_masks(masks))]


# ---------------------------------------------------------------- the run
def val_dataset(config: RunConfig):
    from fusionlab.data import build_dataset

    return build_dataset(config.data.eval_dataset or config.data.dataset, **config.data.val)


def eval_depth_source(model: EfficientViTSam, config: RunConfig, dataset: Any, progress: bool,
                      world: World = SINGLE):
    """The depth source of an RGB-D model, prepared on ``dataset`` to run on ``eval.device`` (a share
    of the missing maps on each process's device under torchrun); None for an RGB-only model."""
    if not model.has_depth:
        return None
    from fusionlab.depth import build_depth_source
    from fusionlab.depth.precompute import prepare_for_run

    if config.eval.drop_depth:
        log.info("evaluating with depth dropped: every depth map is the constant %s", DROPPED_DEPTH)
        return build_depth_source("constant", value=DROPPED_DEPTH)
    source = build_depth_source(config.depth.source, **config.depth.options)
    device = world.device(resolve_device(config.eval.device, "eval.device"))
    counts = prepare_for_run(source, dataset, device, world, progress=progress)
    cache = getattr(getattr(source, "cache", None), "folder", None)
    log.info("evaluating with depth from %s on %s (cache: %s): %s", source.describe(), dataset.describe(),
             cache or "none, computed on the fly", counts)
    return source


def _attributes(instance: Instance) -> Dict[str, Any]:
    """The instance's scalar attributes (lists such as SA-1B's ``point_coords`` do not fit a CSV cell)."""
    return {k: v for k, v in instance.attributes.items() if isinstance(v, (bool, int, float, str, np.generic))}


def evaluate(model: EfficientViTSam, config: RunConfig, dataset: Any = None, progress: bool = True,
             max_images: Optional[int] = None, depth_source: Any = None) -> EvalResult:
    """Run the zero-shot protocol of ``config.eval`` on the validation set.

    Args:
        model: the (RGB or RGB-D) model; put in eval mode on ``config.eval.device`` and back in
            its former train/eval mode afterwards.
        config: the run config; ``data`` gives the dataset when ``dataset`` is None, ``depth``
            the depth source of an RGB-D model, ``eval`` the protocol.
        dataset: a dataset to evaluate on instead of the config's val set.
        progress: show a progress bar over images.
        max_images: evaluate the first images only (default ``config.eval.max_images``; None: all).
        depth_source: a depth source already prepared on ``dataset`` (see :func:`eval_depth_source`),
            for callers that evaluate one dataset many times; default: the config's, prepared here.

    Under torchrun the images are shared out over the processes (contiguous shards, each on its
    own device) and every process returns the whole result, gathered in image order.
    """
    config.eval.check()
    want_box, click_counts = parse_prompts(config.eval.prompts)
    detections = read_detections(config.eval.detections) if config.eval.detections else None
    dataset = val_dataset(config) if dataset is None else dataset
    gt_file = annotation_file(dataset) if detections is not None else None
    thresholds = tuple(getattr(dataset, "size_thresholds", COCO_SIZE_THRESHOLDS))
    limit = max_images if max_images is not None else config.eval.max_images
    count = len(dataset) if limit is None else min(int(limit), len(dataset))
    device = resolve_device(config.eval.device, "eval.device")
    world = join(device)
    progress = progress and world.is_main
    if depth_source is None:
        depth_source = eval_depth_source(model, config, dataset, progress, world)
    elif not model.has_depth:
        depth_source = None
    predictions = _new_predictions(dataset, depth_source, config.eval.prompts) if config.eval.save_predictions else None
    # the attributes' depth where the dataset has none: the model's, unless dropped (a constant)
    real_depth = None if depth_source is None or config.eval.drop_depth else config.depth.source
    was_training = model.training
    model.to(world.device(device)).eval()
    predictor = Predictor(model, None if depth_source is None else DepthPreprocessing.from_source(depth_source))
    rows: List[Dict[str, Any]] = []
    results: List[dict] = []
    image_ids: List[int] = []
    try:
        for index in tqdm(world.shard(count), desc="eval", unit="img", disable=not progress):
            sample = dataset[index]
            image_ids.append(sample.image_id)
            instances = [inst for inst in sample.instances if inst.area >= 1]
            boxes = detections.get(sample.image_id, []) if detections is not None else []
            if not instances and not boxes:
                continue
            depth = None if depth_source is None else depth_source(sample, index)
            predictor.set_image(sample.image, depth)
            if boxes:
                results += _detection_results(predictor, boxes, sample.image_id, config.eval.prompt_batch)
            if instances:
                outcomes = _predict_image(predictor, instances, want_box, click_counts, config.eval.prompt_batch)
                scores = score_image(sample.image, [inst.mask for inst in instances],
                                     {prompt: outcome.masks for prompt, outcome in outcomes.items()},
                                     attribute_depth(sample.depth, depth, real_depth))
                rows += _image_rows(sample.image_id, instances, outcomes, scores, thresholds)
                if predictions is not None:
                    _keep_predictions(predictions, dataset.image_path(index), sample, instances, outcomes, depth)
    finally:
        predictor.reset_image()
        model.train(was_training)
    rows, results, image_ids, predictions = _gather(world, rows, results, image_ids, predictions)
    table = _table(rows)
    metrics = {"n_images": float(count), **aggregate_metrics(table, config.eval.prompts)}
    if detections is not None:
        metrics.update(mask_ap(gt_file, results, image_ids, config.eval.max_detections))
    return EvalResult(metrics=metrics, instances=table, predictions=predictions)


def _gather(world: World, rows: List[Dict[str, Any]], results: List[dict], image_ids: List[int],
            predictions: Optional[Predictions]) -> Tuple[List[Dict[str, Any]], List[dict], List[int],
                                                         Optional[Predictions]]:
    """Every process's per-instance rows, detection results, image ids and predictions, in rank order
    (the image order: the shards are contiguous); in a world of one, these as they are."""
    if world.size == 1:
        return rows, results, image_ids, predictions
    shards = world.gather((rows, results, image_ids, predictions))
    rows, results, image_ids = ([item for shard in shards for item in shard[part]] for part in range(3))
    if predictions is not None:
        kept = [shard[3] for shard in shards]
        predictions = replace(predictions, entries={prompt: [e for p in kept for e in p.entries[prompt]]
                                                    for prompt in predictions.entries},
                              images=[image for p in kept for image in p.images],
                              depth_previews={k: v for p in kept for k, v in p.depth_previews.items()})
    return rows, results, image_ids, predictions


def _predict_image(predictor: Predictor, instances: List[Instance], want_box: bool, click_counts: List[int],
                   chunk: int) -> Dict[str, Prompted]:
    """Prompt kind -> outcome on the instances of the image whose embedding is set in ``predictor``."""
    gts = torch.from_numpy(np.stack([inst.mask for inst in instances])).to(predictor.model.device)
    outcomes: Dict[str, Prompted] = {}
    if want_box:
        outcomes["box"] = _box_prompts(predictor, instances, gts, chunk)
    if click_counts:
        clicked = _click_prompts(predictor, instances, gts, click_counts, chunk)
        outcomes.update({f"click{n}": outcome for n, outcome in clicked.items()})
    return outcomes


def _image_rows(image_id: int, instances: List[Instance], outcomes: Dict[str, Prompted],
                scores: Dict[str, List[Dict[str, float]]], thresholds: Tuple[float, float]) -> List[Dict[str, Any]]:
    """The per-instance rows of one image: one per (prompt kind, instance); ``scores`` of :func:`score_image`."""
    return [{"image_id": image_id, "ann_id": inst.ann_id, "prompt": prompt, "iou": float(iou), "biou": score["biou"],
             "area": float(inst.area), "size": size_bucket(inst.area, thresholds),
             **{k: v for k, v in score.items() if k != "biou"}, **_attributes(inst)}
            for prompt, outcome in outcomes.items()
            for inst, iou, score in zip(instances, outcome.ious, scores[prompt])]


def _new_predictions(dataset: Any, depth_source: Any, prompts: Sequence[str]) -> Predictions:
    """Empty predictions of every prompt kind, with the dataset's annotation file and descriptions."""
    annotations = find_annotation_file(dataset)
    return Predictions(entries={prompt: [] for prompt in prompts},
                       annotations=None if annotations is None else str(annotations.resolve()),
                       dataset=dataset.describe(), depth=None if depth_source is None else depth_source.describe())


def _keep_predictions(predictions: Predictions, image_path: Path, sample: Sample, instances: List[Instance],
                      outcomes: Dict[str, Prompted], depth: Optional[np.ndarray]) -> None:
    """Add one image's scored masks (RLE) and prompts, where its RGB file is, and a preview of its depth input."""
    height, width = sample.image.shape[:2]
    predictions.images.append({"image_id": sample.image_id, "file_name": sample.file_name, "height": height,
                               "width": width, "path": str(Path(image_path).resolve())})
    if depth is not None:
        predictions.depth_previews[sample.image_id] = depth_preview(depth)
    for prompt, outcome in outcomes.items():
        predictions.entries[prompt] += [
            {"image_id": sample.image_id, "category_id": int(inst.attributes.get("category_id", 1)),
             "segmentation": rle, "score": float(score), "prompt": prompt, "ann_id": inst.ann_id, **prompted}
            for inst, rle, score, prompted in zip(instances, encode_masks(outcome.masks), outcome.scores,
                                                  outcome.prompts)]


def _table(rows: List[Dict[str, Any]]) -> pd.DataFrame:
    columns = ["image_id", "ann_id", "prompt", "iou", "biou", "area", "size"]
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=columns)
    extra = [c for c in table.columns if c not in columns]
    return table[columns + extra]


# ---------------------------------------------------------------- fusionlab eval
def write_result(folder: Path, result: EvalResult) -> None:
    """``metrics.json`` (strict JSON: an empty bucket's NaN becomes null), ``instances.csv`` and, when
    kept, the predictions files (:func:`fusionlab.results.write_predictions`), atomically. Under
    torchrun rank 0 alone writes them (every process holds the same result)."""
    if not is_main_process():
        return
    write_evaluation(Path(folder), result.metrics, result.instances, result.predictions)


def format_metrics(metrics: Dict[str, float], prompts: Sequence[str]) -> str:
    """A compact text table: one row per prompt and score (mIoU, then Boundary IoU: all / by size / by
    split), then counts and mask AP."""
    _, yes, no = SPLIT_ATTRIBUTE
    groups = ["", *(f"_{s}" for s in SIZES)] + ([f"_{yes}", f"_{no}"] if f"n_{yes}" in metrics else [])
    header = ["prompt"] + [g.lstrip("_") or "all" for g in groups]
    scores = [("miou", "")] + ([("biou", " BIoU")] if any(k.endswith("_biou") for k in metrics) else [])
    lines = [header] + [[p + label] + [_number(metrics.get(f"{p}_{score}{g}")) for g in groups]
                        for score, label in scores for p in prompts]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.rjust(w) for cell, w in zip(line, widths)) for line in lines]
    text.append("  ".join(f"{k}={int(v)}" for k, v in metrics.items() if k.startswith("n_")))
    if "mask_ap" in metrics:
        text.append("  ".join(f"{k}={_number(v)}" for k, v in metrics.items() if k.startswith("mask_ap")))
    return "\n".join(text)


def _number(value: Optional[float]) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}"
