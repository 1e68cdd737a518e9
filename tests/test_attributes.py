"""Per-instance attributes: edge strength along the boundary band in RGB and depth, depth contrast."""
import math

import numpy as np
import pytest

from fusionlab.attributes import instance_attributes
from fusionlab.scoring import attribute_depth


def _scene():
    """A 40 x 40 image with two 10 x 10 squares: A visible in RGB and depth, B (camouflaged) in depth only."""
    image = np.full((40, 40, 3), 100, dtype=np.uint8)
    depth = np.full((40, 40), 4.0)
    a, b = np.zeros((40, 40), bool), np.zeros((40, 40), bool)
    a[5:15, 5:15], b[20:30, 20:30] = True, True
    image[a] = 200
    depth[a], depth[b] = 2.0, 3.0
    return image, depth, a, b


def test_an_outline_depth_shows_but_rgb_does_not_has_depth_edge_without_rgb_edge():
    image, depth, a, b = _scene()
    first, second = instance_attributes(image, [a, b], depth)
    assert first["rgb_edge"] > 1 and second["rgb_edge"] == 0.0
    assert second["depth_edge"] > 1 and first["depth_edge"] > second["depth_edge"]  # a 2 m step vs a 1 m step
    # |2 - 4| and |3 - 4| over the same image std
    assert first["depth_contrast"] == pytest.approx(2 * second["depth_contrast"])
    assert second["depth_contrast"] == pytest.approx(1.0 / depth.std())


def test_without_depth_or_measurements_the_depth_attributes_are_nan():
    image, depth, a, _ = _scene()
    for missing in (None, np.zeros_like(depth)):
        (row,) = instance_attributes(image, [a], missing)
        assert row["rgb_edge"] > 1 and math.isnan(row["depth_edge"]) and math.isnan(row["depth_contrast"])


def test_the_attribute_depth_is_the_dataset_s_else_a_real_source_s_never_a_control_s():
    own, given = np.ones((2, 2)), np.zeros((2, 2))
    assert attribute_depth(own, given, "shuffled") is own
    assert attribute_depth(None, given, "depth_anything") is given
    assert attribute_depth(None, given, "shuffled") is None and attribute_depth(None, None, None) is None
