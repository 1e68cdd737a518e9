import numpy as np
import pytest

from fusionlab.depth.normalize import fill_invalid, invert, median_mad, minmax, postprocess
from fusionlab.errors import FusionlabError


def test_minmax_maps_to_unit_range():
    x = np.array([[2, 4], [6, 10]], dtype=np.float32)
    np.testing.assert_allclose(minmax(x), [[0, 0.25], [0.5, 1]])


def test_minmax_of_a_flat_map_is_half():
    out = minmax(np.full((3, 4), 7.0, dtype=np.float32))
    assert out.dtype == np.float32 and np.all(out == 0.5)


def test_median_mad_is_a_clipped_robust_z_score():
    x = np.array([[0, 1, 2, 3, 100]], dtype=np.float32)
    z = np.array([-2, -1, 0, 1, 98]) / 1.4826  # median 2, MAD 1
    np.testing.assert_allclose(median_mad(x), [(np.clip(z, -3, 3) + 3) / 6], rtol=1e-6)


def test_median_mad_falls_back_to_mean_deviation_when_mad_is_zero():
    x = np.array([[1, 1, 1, 1, 2]], dtype=np.float32)  # MAD 0; mean |x - median| = 0.2
    z = 1 / (np.sqrt(np.pi / 2) * 0.2)
    np.testing.assert_allclose(median_mad(x), [[0.5, 0.5, 0.5, 0.5, (min(z, 3) + 3) / 6]], rtol=1e-6)
    assert np.all(median_mad(np.ones((2, 2), dtype=np.float32)) == 0.5)


def test_invert_is_one_over_x_with_a_relative_floor():
    np.testing.assert_allclose(invert(np.array([1, 2, 4], dtype=np.float32)), [1, 0.5, 0.25])
    # a zero disparity (infinitely far) becomes 1000x the depth of the nearest pixel
    np.testing.assert_allclose(invert(np.array([0, 1, 2], dtype=np.float32)), [500, 1, 0.5])
    x = np.array([0.5, 1, 3, 8], dtype=np.float32)
    np.testing.assert_allclose(minmax(invert(7 * x)), minmax(invert(x)), atol=1e-6)


def test_invalid_pixels_take_the_farthest_value():
    depth = np.array([0, np.nan, 2, 5, -1, np.inf], dtype=np.float32)
    np.testing.assert_array_equal(fill_invalid(depth, "depth", "x"), [5, 5, 2, 5, 5, 5])
    disparity = np.array([np.nan, 0, 3, -2], dtype=np.float32)
    np.testing.assert_array_equal(fill_invalid(disparity, "disparity", "x"), [0, 0, 3, 0])


def test_all_invalid_map_is_a_one_line_error():
    with pytest.raises(FusionlabError, match=r"^depth/a\.png: no valid pixel in the depth map") as info:
        fill_invalid(np.zeros((2, 2), dtype=np.float32), "depth", "depth/a.png")
    assert "\n" not in str(info.value)


def test_postprocess_depth_to_disparity_puts_near_bright():
    depth = np.array([[1, 2], [4, 0]], dtype=np.float32)  # the 0 is a hole -> farthest (4 m)
    np.testing.assert_allclose(postprocess(depth, "depth", "disparity", "minmax", "x"), [[1, 1 / 3], [0, 0]],
                               rtol=1e-6)
    np.testing.assert_allclose(postprocess(depth, "depth", "depth", "none", "x"), [[1, 2], [4, 4]])
