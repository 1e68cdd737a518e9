"""Boundary IoU (Cheng et al., CVPR 2021) of one predicted mask with its ground truth.

The definition is that of the reference implementation, ``boundary-iou-api``
(``boundary_iou/utils/boundary_utils.py``, ``mask_to_boundary``):

- the band width is ``d = round(0.02 · √(H² + W²))`` pixels of the image's original size
  (Python's ``round``), at least 1;
- a mask's boundary is the mask minus its erosion by ``d`` steps of a 3 × 3 square, where the
  mask is padded with zeros first: outside the image counts as background, so an object cut by
  the image border has a boundary along the border too;
- ``BIoU = |G_b ∩ P_b| / |G_b ∪ P_b|`` of the two boundaries.

``d`` erosions by a 3 × 3 square are one erosion by a ``(2d + 1)``-square, a separable minimum
filter, so the cost does not grow with ``d``; it runs on the masks' bounding box, outside which
both masks are background as the zero padding is.

The empty union (both boundaries empty: both masks empty) scores 0, as
:func:`fusionlab.evaluate.mask_iou` scores an empty union: the protocol never scores an empty
ground truth (instances of area < 1 are skipped), so it cannot occur in results, and a degenerate
row can never raise an average. A prediction at a lower resolution than the image is brought to
the image's size by nearest-neighbour sampling at pixel centres (:func:`resize_nearest`) before
its boundary is taken, so that ``d`` and the band are the image's.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
from scipy.ndimage import minimum_filter

BAND_RATIO = 0.02


def band_width(height: int, width: int, ratio: float = BAND_RATIO) -> int:
    """``d``: ``ratio`` of the image diagonal in pixels, rounded as Python rounds, at least 1."""
    return max(1, int(round(ratio * math.hypot(height, width))))


def resize_nearest(mask: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """An ``(h, w)`` mask at ``size = (H, W)``: output pixel ``(r, c)`` takes input pixel
    ``(⌊(r + ½)·h/H⌋, ⌊(c + ½)·w/W⌋)``, the one under its centre (an integer factor k copies each
    input pixel into a k × k block)."""
    height, width = size
    rows = np.minimum((np.arange(height) + 0.5) * mask.shape[0] / height, mask.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(width) + 0.5) * mask.shape[1] / width, mask.shape[1] - 1).astype(int)
    return mask[np.ix_(rows, cols)]


def mask_boundary(mask: np.ndarray, width: int) -> np.ndarray:
    """The ``(H, W)`` bool boundary band of an ``(H, W)`` bool mask: the mask minus its erosion by
    ``width`` steps of a 3 × 3 square, outside the image counting as background."""
    mask = np.asarray(mask, dtype=bool)
    eroded = minimum_filter(mask.view(np.uint8), size=2 * width + 1, mode="constant", cval=0)
    return mask & ~eroded.astype(bool)


def boundary_iou(gt: np.ndarray, pred: np.ndarray, width: Optional[int] = None) -> float:
    """Boundary IoU (0..1) of an ``(h, w)`` bool prediction with an ``(H, W)`` bool ground truth.

    Args:
        gt: the ground truth at the image's original size ``(H, W)``.
        pred: the prediction, at ``(H, W)`` or lower (resized by :func:`resize_nearest`).
        width: the band width ``d``; default :func:`band_width` of ``(H, W)``.
    """
    gt = np.asarray(gt, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    if pred.shape != gt.shape:
        pred = resize_nearest(pred, gt.shape)
    width = band_width(*gt.shape) if width is None else width
    rows = np.flatnonzero((gt | pred).any(axis=1))
    if rows.size == 0:
        return 0.0
    cols = np.flatnonzero((gt | pred).any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    gt_band, pred_band = mask_boundary(gt[box], width), mask_boundary(pred[box], width)
    union = np.count_nonzero(gt_band | pred_band)
    return np.count_nonzero(gt_band & pred_band) / union if union else 0.0
