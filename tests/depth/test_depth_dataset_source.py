import numpy as np
import pytest

from fusionlab.depth import build_depth_source
from fusionlab.errors import FusionlabError


def test_dataset_depth_as_disparity_puts_near_bright(dataset):
    source = build_depth_source("dataset")
    source.prepare(dataset, progress=False)
    out = source(dataset[0], 0)  # a ramp from 1 m (top left) to 2 m (bottom right)
    assert out.shape == (6, 8) and out.dtype == np.float32
    assert out[0, 0] == 1 and out[-1, -1] == 0 and np.isfinite(out).all()
    np.testing.assert_allclose(out[0, 1], (1 / dataset[0].depth[0, 1] - 0.5) / 0.5, rtol=1e-5)


def test_dataset_depth_as_depth_puts_far_bright(dataset):
    out = build_depth_source("dataset", output="depth")(dataset[0], 0)
    assert out[0, 0] == 0 and out[-1, -1] == 1


def test_sensor_holes_read_as_background(dataset):
    sample = dataset[0]
    sample.depth[2, 3] = 0
    sample.depth[4, 4] = np.nan
    out = build_depth_source("dataset")(sample, 0)
    assert out[2, 3] == 0 and out[4, 4] == 0  # farthest -> darkest disparity


def test_a_dataset_without_depth_is_refused_by_name(make_dataset):
    split = make_dataset([(6, 8), (6, 8)], with_depth=False)
    with pytest.raises(FusionlabError, match=r"^dataset 'tiny' has no depth; use depth_anything or file$"):
        build_depth_source("dataset").prepare(split, progress=False)
    with pytest.raises(FusionlabError, match=r"image 'sub/img_0.jpg' has no depth; use depth_anything or file"):
        build_depth_source("dataset")(split[0], 0)


def test_depth_of_another_size_names_both_sizes(dataset):
    sample = dataset[0]
    sample.depth = np.ones((3, 4), dtype=np.float32)
    with pytest.raises(FusionlabError, match=r"depth map is 3x4 \(HxW\) but image 'sub/img_0.jpg' is 6x8"):
        build_depth_source("dataset")(sample, 0)
