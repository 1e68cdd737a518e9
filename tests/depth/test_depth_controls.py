import numpy as np
import pytest

from fusionlab.data.types import Sample
from fusionlab.depth import build_depth_source
from fusionlab.depth.shuffled import derangement
from fusionlab.errors import FusionlabError


def test_constant_is_its_value_at_the_image_size(dataset):
    out = build_depth_source("constant", value=0.25)(dataset[0], 0)
    assert out.shape == (6, 8) and out.dtype == np.float32 and np.all(out == 0.25)
    assert np.all(build_depth_source("constant")(dataset[0], 0) == 0.5)


def test_noise_is_seeded_per_image(dataset):
    first, again = build_depth_source("noise", seed=3), build_depth_source("noise", seed=3)
    out = first(dataset[0], 0)
    assert out.shape == (6, 8) and out.dtype == np.float32 and out.min() == 0 and out.max() == 1
    np.testing.assert_array_equal(out, again(dataset[0], 0))
    assert not np.array_equal(out, first(dataset[1], 1))
    assert not np.array_equal(out, build_depth_source("noise", seed=4)(dataset[0], 0))


def test_gaussian_noise_is_normalised_and_finite(dataset):
    out = build_depth_source("noise", distribution="gaussian", normalize="median_mad")(dataset[0], 0)
    assert np.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
    raw = build_depth_source("noise", distribution="gaussian", normalize="none")(dataset[0], 0)
    assert raw.min() < 0  # a plain signal: negative values are noise, not invalid pixels


def test_rgb_feeds_the_luma():
    image = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    sample = Sample(image_id=1, file_name="a.jpg", image=image, instances=[])
    np.testing.assert_allclose(build_depth_source("rgb", normalize="none")(sample, 0), [[0.299, 0.587, 0.114, 1]],
                               rtol=1e-6)
    luma = np.array([[0.299, 0.587, 0.114, 1]])
    np.testing.assert_allclose(build_depth_source("rgb")(sample, 0), (luma - 0.114) / (1 - 0.114), atol=1e-6)


@pytest.mark.parametrize("n", [2, 3, 5, 17])
def test_derangement_has_no_fixed_point_and_is_seeded(n):
    permutation = derangement(n, seed=1)
    assert sorted(permutation) == list(range(n)) and np.all(permutation != np.arange(n))
    np.testing.assert_array_equal(permutation, derangement(n, seed=1))


def test_derangement_depends_on_the_seed():
    assert not np.array_equal(derangement(10, seed=0), derangement(10, seed=1))


def test_shuffled_gives_another_images_depth(dataset):
    shuffled, plain = build_depth_source("shuffled", seed=2), build_depth_source("dataset")
    shuffled.prepare(dataset, progress=False)
    plain.prepare(dataset, progress=False)
    for index in range(len(dataset)):
        other = int(shuffled.permutation[index])
        assert other != index
        np.testing.assert_array_equal(shuffled(dataset[index], index), plain(dataset[other], other))


def test_shuffled_passes_options_to_the_inner_source_and_resizes(make_dataset):
    split = make_dataset([(6, 8), (4, 4)])
    source = build_depth_source("shuffled", source="dataset", output="depth", normalize="none")
    source.prepare(split, progress=False)
    out = source(split[1], 1)  # borrows image 0's 6x8 depth ramp from 1 to 2 metres
    assert out.shape == (4, 4) and out.dtype == np.float32 and 1 <= out.min() < out.max() <= 2
    assert source.config() == {"name": "shuffled", "seed": 0,
                               "source": {"name": "dataset", "output": "depth", "normalize": "none"}}


def test_shuffled_refuses_a_sample_of_another_split(dataset, make_dataset):
    source = build_depth_source("shuffled")
    with pytest.raises(FusionlabError, match=r"call prepare\(dataset\) on its split first"):
        source(dataset[0], 0)
    source.prepare(dataset, progress=False)
    stranger = make_dataset([(6, 8)], seed=5)[0]
    stranger.image_id = 999
    with pytest.raises(FusionlabError, match=r"is not image 0 of dataset 'tiny'"):
        source(stranger, 0)


def test_shuffled_needs_two_images(make_dataset):
    with pytest.raises(FusionlabError, match=r"needs at least 2 images in the split, got 1"):
        build_depth_source("shuffled").prepare(make_dataset([(6, 8)]), progress=False)
