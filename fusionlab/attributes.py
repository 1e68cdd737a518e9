"""Per-instance attributes on any dataset: how visible an object's outline is in RGB and in depth.

They say *where* depth can help: an object whose edge RGB hardly shows but depth shows well is
where a fusion model should gain. Each is a number per instance, written to ``instances.csv``
beside the annotation's ``area`` (``fusionlab.evaluate``):

- ``rgb_edge``: the mean, over the instance's boundary band B (its Boundary IoU band,
  :func:`fusionlab.boundary.mask_boundary` with the image's ``d``), of the grey image's Sobel
  gradient magnitude divided by that magnitude's mean over the whole image:
  ``mean_B |∇I| / mean_image |∇I|`` (1: as strong as the image's average edge).
- ``depth_edge``: the same on the depth map, ``mean_B |∇D| / mean_image |∇D|``.
- ``depth_contrast``: ``|median_O D − median_R D| / std_image D``, the depth step between the
  object O and a ring R of width ``d`` around it, in units of the image's depth spread.

The depth map is the *real* one (the dataset's own depth, or the run's depth source when that
is not a control), the same for every variant of a sweep, so that a control, which sees other
depth, is binned like the others. Pixels without a measurement (0 or not finite) are left out;
without any, the depth attributes are NaN.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy.ndimage import maximum_filter, sobel

from fusionlab.boundary import band_width, mask_boundary

COLUMNS = ("rgb_edge", "depth_edge", "depth_contrast")


def relative_edges(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` Sobel gradient magnitude of an ``(H, W)`` map over its image mean (0 on a flat map).

    Dividing by the mean makes it free of the map's scale (grey levels, metres), so float32 and
    the sum of the RGB channels serve."""
    image = np.asarray(image, dtype=np.float32)
    magnitude = np.hypot(sobel(image, axis=0), sobel(image, axis=1))
    mean = magnitude.mean()
    return magnitude / mean if mean > 0 else np.zeros_like(magnitude)


def instance_attributes(image: np.ndarray, masks: Sequence[np.ndarray],
                        depth: Optional[np.ndarray] = None) -> List[Dict[str, float]]:
    """``rgb_edge``, ``depth_edge`` and ``depth_contrast`` of each instance of one image.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        masks: N ``(H, W)`` bool ground-truth masks.
        depth: ``(H, W)`` real depth (0 / NaN: no measurement), or None (depth attributes NaN).
    """
    width = band_width(*image.shape[:2])
    rgb_edges = relative_edges(image.sum(axis=2, dtype=np.float32))
    valid = None if depth is None else np.isfinite(depth) & (depth > 0)
    if valid is not None and not valid.any():
        valid = None
    if valid is not None:
        filled = np.where(valid, depth, np.median(depth[valid]))
        depth_edges, spread = relative_edges(filled), float(filled[valid].std())
    rows = []
    for mask in masks:
        if not mask.any():  # nothing to measure (the protocol skips such instances)
            rows.append(dict.fromkeys(COLUMNS, math.nan))
            continue
        box = _around(mask, width)
        band = mask_boundary(mask[box], width)
        row = {"rgb_edge": float(rgb_edges[box][band].mean()), "depth_edge": math.nan, "depth_contrast": math.nan}
        if valid is not None:
            row["depth_edge"] = _mean(depth_edges[box], band & valid[box])
            row["depth_contrast"] = _contrast(filled[box], mask[box], valid[box], width, spread)
        rows.append(row)
    return rows


def _around(mask: np.ndarray, width: int) -> Tuple[slice, slice]:
    """The mask's bounding box grown by ``width`` within the image: its band and ring lie inside, and
    the image border stays where it is, so the filters give what they give on the whole image."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return (slice(max(rows[0] - width, 0), rows[-1] + width + 1),
            slice(max(cols[0] - width, 0), cols[-1] + width + 1))


def _mean(values: np.ndarray, where: np.ndarray) -> float:
    return float(values[where].mean()) if where.any() else math.nan


def _contrast(depth: np.ndarray, mask: np.ndarray, valid: np.ndarray, width: int, spread: float) -> float:
    """``|median inside − median of the ring of width d outside| / spread``; NaN without both or a spread."""
    ring = maximum_filter(mask.view(np.uint8), size=2 * width + 1, mode="constant", cval=0).astype(bool) & ~mask
    inside, outside = depth[mask & valid], depth[ring & valid]
    if not inside.size or not outside.size or spread <= 0:
        return math.nan
    return float(abs(np.median(inside) - np.median(outside)) / spread)
