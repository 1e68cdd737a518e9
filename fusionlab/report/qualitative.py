"""The qualitative figure: where a variant gains most IoU over RGB only, where it loses most, and a few at random.

One row per instance: the image with the prompt | the depth the variant received | the RGB-only
mask | the variant's mask | the ground truth, each mask's IoU under it. The two masks come from
one seed's matched trials (the first seed where both completed). Everything is read from result
files (``instances.csv``, ``predictions_<prompt>.json``, ``images.json`` and the depth previews,
see :mod:`fusionlab.report.loading`) and from the dataset's image and annotation files that
``images.json`` names: no model runs.
"""
from __future__ import annotations

import contextlib
import io
import json
import textwrap
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from fusionlab.errors import FusionlabError
from fusionlab.report.loading import SweepResults
from fusionlab.results import IMAGES_FILE, predictions_file

DEFAULT_ROWS: Tuple[int, int, int] = (3, 3, 2)
"""Rows of the largest gains, the largest losses and random instances."""
INSTANCE_KEY = ["image_id", "ann_id"]
_MASK_COLOURS = {"baseline": "#1f77b4", "variant": "#d62728", "truth": "#2ca02c"}
_PANEL_INCHES = 1.7
# A row shows its object with as much context again on each side, and at least this share of
# the image's long side: the embedded scenes' objects can be a few pixels wide.
_MIN_WINDOW = 0.4
_CAPTION_CHARS = 150


class FigureSkipped(Exception):
    """Why these results cannot give the figure, in one line; the report goes on without it."""


@dataclass(frozen=True)
class Trials:
    """The matched trials the figure compares: the training seed and each side's folder."""

    seed: int
    variant: Path
    baseline: Path


def check_options(results: SweepResults, variant: Optional[str], prompt: str, rows: Sequence[int]) -> None:
    """Refuse, before anything is written, a variant or prompt the sweep lacks, or bad row counts."""
    sweep_file = results.root / "sweep.json"
    names = [v.name for v in results.sweep.variants if v.name not in results.sweep.baselines]
    if variant is not None and variant not in names:
        raise FusionlabError(f"qualitative variant {variant!r}: not a non-baseline variant of {sweep_file}; "
                             f"expected one of {names}")
    if prompt not in results.sweep.prompts:
        raise FusionlabError(f"qualitative prompt {prompt!r}: not evaluated by the sweep ({sweep_file}); expected "
                             f"one of {list(results.sweep.prompts)}")
    if len(rows) != 3 or any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in rows) or not any(rows):
        raise FusionlabError(f"qualitative rows {tuple(rows)}: expected (gains, losses, random), three integers "
                             f">= 0, not all 0")


def default_variant(summary: pd.DataFrame) -> str:
    """The ``fusion``-group variant with the largest Δ box mIoU of :func:`fusionlab.report.stats.summarize`;
    in a sweep without one (a depth-encoder ablation), the best of the other trained designs."""
    rows = summary[(summary["metric"] == "box_miou") & ~summary["group"].isin(["baseline", "reference", "control"])]
    rows = rows.dropna(subset=["delta"])
    fusion = rows[rows["group"] == "fusion"]
    rows = fusion if len(fusion) else rows
    if rows.empty:
        raise FigureSkipped("no fusion or encoder variant has a Δ box mIoU yet (no seed matched with the "
                            "baseline's); name a variant for it")
    return str(rows.loc[rows["delta"].idxmax(), "variant"])


def instance_diffs(variant: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """Instances of both runs (rows ``image_id, ann_id, iou`` of one prompt): ``image_id, ann_id,
    iou_baseline, iou_variant, diff`` (variant − baseline, IoU 0..1)."""
    both = baseline[[*INSTANCE_KEY, "iou"]].merge(variant[[*INSTANCE_KEY, "iou"]], on=INSTANCE_KEY,
                                                  suffixes=("_baseline", "_variant"))
    return both.assign(diff=both["iou_variant"] - both["iou_baseline"])


def select_instances(diffs: pd.DataFrame, rows: Sequence[int] = DEFAULT_ROWS, seed: int = 0) -> pd.DataFrame:
    """The figure's rows: ``rows = (gains, losses, random)``.

    Gains are the instances with the largest positive ``diff`` (largest first), losses those
    with the most negative (most negative first), ties broken by ``(image_id, ann_id)``; the
    random ones are drawn (seeded) from the rest. Fewer exist, fewer are taken.

    Returns:
        ``diffs``' chosen rows in that order, with a column ``kind`` (gain / loss / random).
    """
    gains, losses, random = rows
    ordered = diffs.sort_values(INSTANCE_KEY, kind="stable")
    best = ordered[ordered["diff"] > 0].sort_values("diff", ascending=False, kind="stable").head(gains)
    worst = ordered[ordered["diff"] < 0].sort_values("diff", kind="stable").head(losses)
    rest = ordered.drop(index=best.index.union(worst.index))
    drawn = np.random.default_rng(seed).choice(len(rest), size=min(random, len(rest)), replace=False)
    return pd.concat([best.assign(kind="gain"), worst.assign(kind="loss"), rest.iloc[drawn].assign(kind="random")])


def matched_trials(results: SweepResults, variant: str) -> Trials:
    """The first seed of ``sweep.json`` where both ``variant`` and the baseline completed."""
    done, baseline = results.complete(), results.sweep.baseline_of(variant)
    for seed in results.sweep.seeds:
        ids = [done.loc[(done["variant"] == name) & (done["seed"] == seed), "trial_id"] for name in (variant, baseline)]
        if all(len(trial) for trial in ids):
            folders = [results.root / "trials" / str(trial.iloc[-1]) for trial in ids]
            return Trials(seed=int(seed), variant=folders[0], baseline=folders[1])
    raise FigureSkipped(f"no seed where both {variant} and {baseline} completed")


def qualitative_figure(results: SweepResults, summary: pd.DataFrame, variant: Optional[str] = None,
                       prompt: str = "box", rows: Sequence[int] = DEFAULT_ROWS, seed: int = 0) -> Figure:
    """The figure for ``variant`` (default :func:`default_variant`) against the baseline.

    Args:
        summary: the tidy table of :func:`fusionlab.report.stats.summarize`.
        prompt: the prompt kind whose masks and IoUs are shown.
        rows: ``(gains, losses, random)`` instance counts (:func:`select_instances`).
        seed: seed of the random rows.

    Raises:
        FigureSkipped: the trials lack predictions (evaluated before they were kept, or with
            ``eval.save_predictions: false``), or the dataset files are not where they were.
    """
    variant = variant or default_variant(summary)
    trials = matched_trials(results, variant)
    diffs = instance_diffs(*(_prompt_rows(results, folder, prompt) for folder in (trials.variant, trials.baseline)))
    predicted = {side: _read_predictions(folder, prompt)
                 for side, folder in (("variant", trials.variant), ("baseline", trials.baseline))}
    both = predicted["variant"].keys() & predicted["baseline"].keys()
    diffs = diffs[pd.MultiIndex.from_frame(diffs[INSTANCE_KEY]).isin(list(both))]
    chosen = select_instances(diffs, rows, seed)
    if chosen.empty:
        raise FigureSkipped(f"no instance of prompt {prompt!r} has predictions in both {trials.variant} and "
                            f"{trials.baseline}")
    images = _read_json(trials.variant / IMAGES_FILE)
    truth = _ground_truth(images.get("annotations"), chosen["ann_id"].tolist())
    label, base = results.sweep.variant(variant).label, results.sweep.variant(results.sweep.baseline_of(variant)).label
    figure = _grid(chosen, images, trials.variant, predicted, truth, (base, label))
    figure.suptitle(f"{results.sweep.name}: {label} vs {base}, {prompt} prompt, training seed {trials.seed}")
    counts = chosen["kind"].value_counts()
    caption = (f"Rows: the {counts.get('gain', 0)} instances where {label} gains most IoU over {base}, the "
               f"{counts.get('loss', 0)} where it loses most, {counts.get('random', 0)} drawn at random (seed "
               f"{seed}), each zoomed on its object; masks of the seed-{trials.seed} trials "
               f"{trials.variant.name} ({label}) and {trials.baseline.name} ({base}), IoU under each. Depth: the "
               f"input {label} received ({images.get('depth') or 'none'}), scaled to its range.")
    figure.supxlabel(textwrap.fill(caption, _CAPTION_CHARS), x=0.01, ha="left", fontsize=7, color="0.3")
    return figure


def _prompt_rows(results: SweepResults, folder: Path, prompt: str) -> pd.DataFrame:
    instances = results.instances(folder.name)
    return instances[instances["prompt"] == prompt]


def _read_predictions(folder: Path, prompt: str) -> Dict[Tuple[int, int], dict]:
    """``(image_id, ann_id)`` -> entry of ``predictions_<prompt>.json``."""
    path = folder / predictions_file(prompt)
    if not path.is_file():
        raise FigureSkipped(f"{path} missing: the figure needs the evaluations' predicted masks; rerun the "
                            f"evaluations with eval.save_predictions: true (the default)")
    return {(int(e["image_id"]), int(e["ann_id"])): e for e in _read_json(path)}


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FigureSkipped(f"{path} missing: the evaluation wrote its predictions without it; rerun it") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FusionlabError(f"{path}: not valid JSON ({exc}); rerun the evaluation that wrote it") from exc


def _ground_truth(annotations: Optional[str], ann_ids: Sequence[int]) -> Dict[int, dict]:
    """Ground-truth masks of ``ann_ids`` as compressed RLEs, from the COCO instances JSON; none without one."""
    if annotations is None:
        return {}
    if not Path(annotations).is_file():
        raise FigureSkipped(f"{annotations}: annotation file not found; the figure reads the dataset where the "
                            f"evaluation found it")
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco = COCO(annotations)
    return {ann: coco.annToRLE(coco.anns[ann]) for ann in ann_ids if ann in coco.anns}


def _decode(rle: dict) -> np.ndarray:
    """A compressed RLE as an ``(H, W)`` bool mask."""
    with warnings.catch_warnings():
        # pycocotools' decoder trips numpy 2's __array__(copy=...) deprecation on every call.
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


def _image(record: dict) -> np.ndarray:
    path = Path(record["path"])
    if not path.is_file():
        raise FigureSkipped(f"{path}: image file not found; the figure reads the dataset's images where the "
                            f"evaluation found them")
    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB"))


def _grid(chosen: pd.DataFrame, images: dict, folder: Path, predicted: Dict[str, dict],
          truth: Dict[int, dict], labels: Tuple[str, str]) -> Figure:
    """One row per chosen instance (:func:`_draw_row`); ``labels`` are the baseline's and the variant's."""
    records = {int(r["image_id"]): r for r in images["images"]}
    figure = Figure(figsize=(5 * _PANEL_INCHES, len(chosen) * _PANEL_INCHES + 1.0), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(chosen), 5, squeeze=False)
    for ax, title in zip(axes[0], ("image + prompt", "depth input", *labels, "ground truth")):
        ax.set_title(title, fontsize=8)
    for row, item in zip(axes, chosen.itertuples()):
        key = (int(item.image_id), int(item.ann_id))
        _draw_row(row, item, records[key[0]], folder, (predicted["baseline"][key], predicted["variant"][key]),
                  truth.get(key[1]))
    return figure


def _draw_row(row: Sequence[Axes], item: Any, record: dict, folder: Path, entries: Tuple[dict, dict],
              truth: Optional[dict]) -> None:
    """image + shared prompt | depth preview | baseline mask | variant mask | ground truth, the IoUs
    under the masks, all zoomed on the object (:func:`_window`).

    Args:
        item: a row of :func:`select_instances` (``image_id, ann_id, kind, diff, iou_baseline, iou_variant``).
        entries: the baseline's and the variant's predictions entries of the instance.
        truth: the ground truth's RLE, None without an annotation file.
    """
    image = _image(record)
    base, var = entries
    _panel(row[0], image)
    _draw_prompt(row[0], _shared_prompt(base, var))
    row[0].set_ylabel(f"{item.kind}: Δ {item.diff:+.2f}\nimage {item.image_id}, object {item.ann_id}", fontsize=7)
    _depth_panel(row[1], folder, record)
    for ax, entry, iou, colour in ((row[2], base, item.iou_baseline, _MASK_COLOURS["baseline"]),
                                   (row[3], var, item.iou_variant, _MASK_COLOURS["variant"])):
        _panel(ax, image, _decode(entry["segmentation"]), colour)
        _draw_prompt(ax, entry)
        ax.set_xlabel(f"IoU {iou:.2f}", fontsize=8)
    _panel(row[4], image, None if truth is None else _decode(truth), _MASK_COLOURS["truth"])
    if truth is None:
        row[4].text(0.5, 0.5, "no annotation file", ha="center", va="center", transform=row[4].transAxes,
                    fontsize=7, color="white")
    masks = [base["segmentation"], var["segmentation"]] + ([] if truth is None else [truth])
    left, top, side = _window(masks, entries, image.shape[:2])
    for ax in row:  # pixel i spans [i - 0.5, i + 0.5] in imshow's coordinates
        ax.set(xlim=(left - 0.5, left + side - 0.5), ylim=(top + side - 0.5, top - 0.5))


def _window(rles: Sequence[dict], entries: Sequence[dict], size: Tuple[int, int]) -> Tuple[float, float, float]:
    """``(left, top, side)`` in pixel edges of the square a row shows: the boxes of the masks and
    of the entries' prompts with as much context again on each side, at least ``_MIN_WINDOW`` of
    the long side, inside an ``(H, W)`` image where it fits."""
    height, width = size
    boxes = [(x, y, x + w, y + h) for x, y, w, h in mask_utils.toBbox(list(rles)) if w > 0]
    for entry in entries:
        boxes += [tuple(entry["box"])] if "box" in entry else []
        boxes += [(x, y, x + 1, y + 1) for x, y, _ in entry.get("points", [])]
    if not boxes:  # empty masks and no click: the whole image
        return 0.0, 0.0, float(max(size))
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    side = min(max(2.0 * max(x1 - x0, y1 - y0), _MIN_WINDOW * max(size)), max(size))
    left = min(max((x0 + x1 - side) / 2, 0.0), max(width - side, 0.0))
    top = min(max((y0 + y1 - side) / 2, 0.0), max(height - side, 0.0))
    return left, top, side


def _panel(ax: Axes, image: np.ndarray, mask: Optional[np.ndarray] = None, colour: str = "") -> None:
    """The image, dimmed under a mask drawn filled and outlined in ``colour``."""
    ax.imshow(image, alpha=1.0 if mask is None else 0.6)
    if mask is not None and mask.any():
        ax.imshow(np.ma.masked_where(~mask, mask.astype(float)), cmap=ListedColormap([colour]), vmin=0, vmax=1,
                  alpha=0.55, interpolation="nearest")
        ax.contour(mask.astype(float), levels=[0.5], colors=[colour], linewidths=0.8)
    ax.set_xticks([])
    ax.set_yticks([])


def _depth_panel(ax: Axes, folder: Path, record: dict) -> None:
    """The variant's depth preview stretched over the image's pixel grid, or a note without one."""
    ax.set_xticks([])
    ax.set_yticks([])
    preview = folder / record["depth"] if record.get("depth") else None
    if preview is None or not preview.is_file():
        ax.text(0.5, 0.5, "no depth input", ha="center", va="center", transform=ax.transAxes, fontsize=7)
        return
    with Image.open(preview) as picture:
        depth = np.asarray(picture)
    height, width = record["height"], record["width"]
    ax.imshow(depth, cmap="magma", extent=(-0.5, width - 0.5, height - 0.5, -0.5), interpolation="bilinear")


def _shared_prompt(baseline: dict, variant: dict) -> dict:
    """The prompt both models got: the box, or the clicks both made before their masks differed."""
    if "box" in variant:
        return {"box": variant["box"]}
    shared = []
    for mine, theirs in zip(variant.get("points", []), baseline.get("points", [])):
        if mine != theirs:
            break
        shared.append(mine)
    return {"points": shared}


def _draw_prompt(ax: Axes, entry: dict) -> None:
    """A box as a yellow rectangle; clicks as dots, green positive, red negative (pixel centres)."""
    if "box" in entry:
        x0, y0, x1, y1 = entry["box"]
        # pixel i spans [i - 0.5, i + 0.5] in imshow's coordinates; a box's corners are pixel edges
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="yellow",
                               linewidth=1.2))
    for x, y, positive in entry.get("points", []):
        ax.plot(x, y, marker="o", markersize=5, linestyle="", markeredgecolor="black",
                markerfacecolor="lime" if positive else "red")
