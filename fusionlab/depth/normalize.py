"""Post-processing shared by every depth source: invalid pixels, depth <-> disparity, normalisation.

A raw map is one of two kinds:

* ``"depth"``: larger = farther (sensor or rendered depth, metres or any scale). A pixel is
  invalid when it is 0, negative or non-finite (sensors write 0 where they measured nothing).
* ``"disparity"``: relative inverse depth, larger = nearer (what Depth Anything predicts).
  0 is valid (infinitely far); a pixel is invalid when it is negative or non-finite.

Invalid pixels take the farthest valid value of their map (the largest depth, the smallest
disparity): a hole reads as background, never as a bright near object. A map with no valid
pixel is an error.

The model receives the ``output`` kind (``"disparity"`` by default: near is bright, as the
paper feeds Depth Anything's map). Converting between kinds is ``1 / max(x, EPS_REL * max(x))``:
the floor is relative, so the conversion commutes with rescaling the map (Depth Anything's
disparity has an unknown scale) and a zero disparity becomes a finite depth ``1 / EPS_REL``
times the nearest. An all-zero map (everything at infinity) stays flat.

Per-image normalisation (``normalize``):

* ``"minmax"``: ``(x - min) / (max - min)``, in [0, 1]. A flat map (max == min) has no range
  and becomes 0.5 everywhere.
* ``"median_mad"``: robust z-score ``z = (x - median) / (1.4826 * MAD)`` (1.4826 makes it the
  standard deviation for Gaussian data), clipped to [-3, 3] and mapped to [0, 1] by
  ``(z + 3) / 6``, so the median is 0.5. When more than half the pixels share one value
  (MAD = 0, e.g. a large filled hole), the scale falls back to ``1.2533 * mean|x - median|``;
  a flat map becomes 0.5 everywhere.
* ``"none"``: the map in the output kind, unscaled (finite, not bounded).
"""
from __future__ import annotations

import math
import typing
from typing import Literal, Optional

import numpy as np

from fusionlab.errors import FusionlabError

RawKind = Literal["depth", "disparity"]
RAW_KINDS = typing.get_args(RawKind)
Normalization = Literal["minmax", "median_mad", "none"]
NORMALIZATIONS = typing.get_args(Normalization)
EPS_REL = 1e-3
MAD_TO_STD = 1.4826
MEAN_ABS_TO_STD = math.sqrt(math.pi / 2)
Z_CLIP = 3.0


def fill_invalid(raw: np.ndarray, kind: str, where: str) -> np.ndarray:
    """Replace invalid pixels of an ``(H, W)`` map of ``kind`` by its farthest valid value.

    Returns a float32 ``(H, W)`` map; raises ``FusionlabError`` naming ``where`` if no pixel is valid.
    """
    raw = np.asarray(raw, dtype=np.float32)
    finite = np.isfinite(raw)
    valid = finite & (raw > 0) if kind == "depth" else finite & (raw >= 0)
    if not valid.any():
        rule = "0, negative or NaN/inf" if kind == "depth" else "negative or NaN/inf"
        raise FusionlabError(f"{where}: no valid pixel in the {kind} map (every pixel is {rule})")
    if valid.all():
        return raw
    farthest = raw[valid].max() if kind == "depth" else raw[valid].min()
    return np.where(valid, raw, farthest).astype(np.float32)


def invert(x: np.ndarray) -> np.ndarray:
    """Depth <-> disparity of a valid, non-negative ``(H, W)`` map: ``1 / max(x, EPS_REL * max(x))``."""
    peak = float(x.max())
    if peak <= 0:
        return np.ones_like(x, dtype=np.float32)
    return (1.0 / np.maximum(x, np.float32(EPS_REL * peak))).astype(np.float32)


def minmax(x: np.ndarray) -> np.ndarray:
    """``(x - min) / (max - min)`` in [0, 1]; a flat map becomes 0.5 everywhere."""
    lo, hi = float(x.min()), float(x.max())
    if not hi > lo:
        return np.full(x.shape, 0.5, dtype=np.float32)
    return ((x - lo) / (hi - lo)).astype(np.float32)


def median_mad(x: np.ndarray) -> np.ndarray:
    """Robust z-score clipped to [-3, 3], mapped to [0, 1] (median -> 0.5); see the module doc."""
    x = x.astype(np.float64)
    median = float(np.median(x))
    deviation = np.abs(x - median)
    scale = MAD_TO_STD * float(np.median(deviation))
    if scale == 0:
        scale = MEAN_ABS_TO_STD * float(deviation.mean())
    if scale == 0:
        return np.full(x.shape, 0.5, dtype=np.float32)
    z = np.clip((x - median) / scale, -Z_CLIP, Z_CLIP)
    return ((z + Z_CLIP) / (2 * Z_CLIP)).astype(np.float32)


def normalize_map(x: np.ndarray, method: str) -> np.ndarray:
    """Apply the per-image normalisation ``method`` (one of ``NORMALIZATIONS``) to a valid map."""
    if method == "minmax":
        return minmax(x)
    if method == "median_mad":
        return median_mad(x)
    return x.astype(np.float32)


def postprocess(raw: np.ndarray, raw_kind: Optional[str], output: str, normalize: str, where: str) -> np.ndarray:
    """Raw ``(H, W)`` map of ``raw_kind`` -> finite float32 ``(H, W)`` map of ``output`` kind, normalised.

    ``raw_kind`` None marks a finite plain signal (noise, grey levels): it is only normalised.
    ``where`` names the map's origin (a file, an image) in errors.
    """
    if raw_kind is None:
        return normalize_map(np.asarray(raw, dtype=np.float32), normalize)
    x = fill_invalid(raw, raw_kind, where)
    if raw_kind != output:
        x = invert(x)
    return normalize_map(x, normalize)
