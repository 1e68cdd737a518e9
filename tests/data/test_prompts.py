"""Prompt sampling from ground truth: points inside masks, tight and jittered boxes."""
from __future__ import annotations

import numpy as np
import pytest

from fusionlab.data.prompts import box_from_instance, mask_to_box, sample_points
from fusionlab.data.types import Instance


def _l_shape() -> np.ndarray:
    mask = np.zeros((16, 20), bool)
    mask[3:12, 4:7] = True
    mask[9:12, 4:15] = True
    return mask


def test_points_are_inside_the_mask_and_reproducible():
    mask = _l_shape()
    points = sample_points(mask, 200, np.random.default_rng(0))
    assert points.shape == (200, 2) and points.dtype == np.float32
    xs, ys = points[:, 0].astype(int), points[:, 1].astype(int)
    assert mask[ys, xs].all()  # (x, y) order: column first
    assert len(set(zip(xs, ys))) > 30  # spread over the mask, not one pixel
    np.testing.assert_array_equal(points, sample_points(mask, 200, np.random.default_rng(0)))
    with pytest.raises(ValueError, match="empty mask"):
        sample_points(np.zeros((4, 4), bool), 1, np.random.default_rng(0))


def test_mask_box_has_exclusive_far_edges():
    np.testing.assert_array_equal(mask_to_box(_l_shape()), [4, 3, 15, 12])


def test_instance_box_is_exact_without_noise_and_clipped_with_it():
    mask = _l_shape()
    inst = Instance(ann_id=1, mask=mask, bbox_xyxy=np.array([4, 3, 15, 12], np.float32), area=float(mask.sum()))
    np.testing.assert_array_equal(box_from_instance(inst), [4, 3, 15, 12])
    rng = np.random.default_rng(0)
    boxes = np.stack([box_from_instance(inst, noise=0.5, rng=rng) for _ in range(200)])
    assert (boxes[:, [0, 1]] >= 0).all() and (boxes[:, 2] <= 20).all() and (boxes[:, 3] <= 16).all()
    assert (boxes[:, 2] - boxes[:, 0] > 0.999).all() and (boxes[:, 3] - boxes[:, 1] > 0.999).all()
    assert np.abs(boxes - [4, 3, 15, 12]).mean() > 1.0
    with pytest.raises(ValueError, match="needs an rng"):
        box_from_instance(inst, noise=0.1)
