"""Prompts drawn from ground-truth instances, for training and evaluation.

Coordinates follow segment-anything: points are ``(x, y)`` = (column, row) of a pixel in the
image's own pixel frame (the prompt encoder adds the half-pixel shift); boxes are
``(x0, y0, x1, y1)`` with exclusive right/bottom edges, as COCO's ``[x, y, w, h]`` gives.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from fusionlab.data.types import Instance


def sample_points(mask: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` positive points drawn uniformly (with replacement) from the pixels of a mask.

    Args:
        mask: ``(H, W)`` bool, non-empty.
        n: how many points.
        rng: the generator that makes the draw reproducible.

    Returns:
        ``(n, 2)`` float32 ``(x, y)`` pixel coordinates.
    """
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("cannot sample points in an empty mask")
    pick = rng.integers(0, rows.size, size=n)
    return np.stack([cols[pick], rows[pick]], axis=1).astype(np.float32)


def mask_to_box(mask: np.ndarray) -> np.ndarray:
    """The tight box of a non-empty ``(H, W)`` bool mask: ``(4,)`` float32 ``(x0, y0, x1, y1)``."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("an empty mask has no box")
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float32)


def box_from_instance(instance: Instance, noise: float = 0.0,
                      rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """The box prompt of an instance: its annotated box, optionally jittered.

    Args:
        instance: the ground truth; its ``bbox_xyxy`` is used (the mask's box if that is empty).
        noise: standard deviation of each coordinate's offset as a share of the box's side
            (0 gives the exact box, as the COCO box-prompt protocol does).
        rng: required when ``noise > 0``.

    Returns:
        ``(4,)`` float32 ``(x0, y0, x1, y1)``, clipped to the image and at least one pixel wide.
    """
    box = np.asarray(instance.bbox_xyxy, dtype=np.float32)
    if not box[2] > box[0] or not box[3] > box[1]:
        box = mask_to_box(instance.mask)
    if noise > 0:
        if rng is None:
            raise ValueError("box noise needs an rng")
        side = np.array([box[2] - box[0], box[3] - box[1]] * 2, dtype=np.float32)
        box = box + rng.normal(0.0, noise, size=4).astype(np.float32) * side
    height, width = instance.mask.shape
    x0, x1 = np.sort(box[[0, 2]])
    y0, y1 = np.sort(box[[1, 3]])
    x0, y0 = np.clip(x0, 0, width - 1), np.clip(y0, 0, height - 1)
    x1, y1 = np.clip(x1, x0 + 1, width), np.clip(y1, y0 + 1, height)
    return np.array([x0, y0, x1, y1], dtype=np.float32)
