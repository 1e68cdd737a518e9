"""The depth cache stores maps compactly (uint16, long side bounded) and reads them back at the image's size."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fusionlab.data.types import Sample
from fusionlab.depth import build_depth_source
from fusionlab.depth.cache import DepthCache
from fusionlab.depth.normalize import minmax
from fusionlab.errors import FusionlabError

NPZ_OVERHEAD = 1024  # bytes of zip and .npy headers per file, generously


def predicted_like(height: int, width: int, short_side: int, seed: int = 0) -> np.ndarray:
    """A disparity map made as Depth Anything's are: a ramp and sharp discs at ``short_side``,
    bilinearly enlarged to ``(height, width)``."""
    rng = np.random.default_rng(seed)
    scale = short_side / min(height, width)
    h, w = round(height * scale), round(width * scale)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    disparity = 1.0 + 3.0 * yy / h
    for _ in range(6):
        cy, cx, r = rng.random() * h, rng.random() * w, 2 + rng.random() * h / 5
        disparity = np.where((yy - cy) ** 2 + (xx - cx) ** 2 < r * r, disparity + rng.random() * 4, disparity)
    small = torch.tensor(disparity, dtype=torch.float32)[None, None]
    return F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)[0, 0].numpy()


def sample_of(height: int, width: int) -> Sample:
    return Sample(image_id=1, file_name="sub/a.jpg", image=np.zeros((height, width, 3), np.uint8), instances=[])


def test_map_under_the_long_side_is_stored_at_its_size_within_half_a_code(tmp_path):
    raw = predicted_like(48, 64, short_side=40)
    cache = DepthCache(tmp_path, "depth_anything", {"model": "m"}, long_side=64)
    path = cache.path(sample_of(48, 64))
    returned = cache.save(path, raw)
    loaded = cache.load(path, (48, 64))
    np.testing.assert_array_equal(returned, loaded)  # the first use sees what later uses read
    assert loaded.dtype == np.float32 and loaded.shape == (48, 64)
    assert np.abs(minmax(loaded) - minmax(raw)).max() <= 0.5 / 65535 + 1e-6
    assert path.stat().st_size <= 48 * 64 * 2 + NPZ_OVERHEAD  # 2 bytes a pixel, float32 took 4


def test_larger_map_is_stored_at_the_long_side_and_read_back_at_the_image_size(tmp_path):
    raw = predicted_like(150, 225, short_side=52)  # 518 px predictions on a 1500 x 2250 image, scaled by 10
    cache = DepthCache(tmp_path, "depth_anything", {"model": "m"}, long_side=102)
    path = cache.path(sample_of(150, 225))
    cache.save(path, raw)
    assert np.load(path)["codes"].shape == (68, 102)
    assert path.stat().st_size <= 68 * 102 * 2 + NPZ_OVERHEAD  # under a tenth of float32's 135 KB
    error = np.abs(minmax(cache.load(path, (150, 225))) - minmax(raw))
    assert error.mean() < 1e-2 and error.max() < 0.25  # resampling: only the sharpest edges move (4e-3, 0.14)


def test_flat_map_round_trips_exactly(tmp_path):
    cache = DepthCache(tmp_path, "depth_anything", {"model": "m"})
    path = cache.path(sample_of(5, 7))
    cache.save(path, np.full((5, 7), 2.5, np.float32))
    np.testing.assert_array_equal(cache.load(path, (5, 7)), np.full((5, 7), 2.5, np.float32))


def test_key_covers_the_storage_format_and_resolution(tmp_path):
    keys = {DepthCache(tmp_path, "depth_anything", {"model": "m"}, long_side=side).key for side in (1024, 512, None)}
    assert len(keys) == 3
    cache = DepthCache(tmp_path, "depth_anything", {"model": "m"})
    cache.save(cache.path(sample_of(4, 4)), np.ones((4, 4), np.float32))
    recorded = json.loads((cache.folder / "key.json").read_text())
    assert recorded["long_side"] == 1024 and "uint16" in recorded["storage"] and recorded["format"] == 2


def test_non_finite_map_and_unreadable_file_are_one_line_errors(tmp_path):
    cache = DepthCache(tmp_path, "depth_anything", {"model": "m"})
    path = cache.path(sample_of(4, 4))
    raw = np.ones((4, 4), np.float32)
    raw[1, 2] = np.nan
    with pytest.raises(FusionlabError, match=r"a\.[0-9a-f]{12}\.npz: the raw map holds 1 NaN/inf values"):
        cache.save(path, raw)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a zip")
    with pytest.raises(FusionlabError, match=r"unreadable cached depth map .* delete it to recompute"):
        cache.load(path, (4, 4))


def test_cache_long_side_option_of_depth_anything(tiny_depth_anything, tmp_path, make_dataset):
    split = make_dataset([(20, 30)])

    def source(**options):
        return build_depth_source("depth_anything", model=str(tiny_depth_anything), cache_dir=str(tmp_path),
                                  device="cpu", **options)

    default, bounded = source(), source(cache_long_side=16)
    assert default.config()["cache_long_side"] == 1024
    assert bounded.config()["cache_key"] != default.config()["cache_key"]
    assert bounded(split[0], 0).shape == (20, 30)
    assert np.load(bounded.cache.path(split[0]))["codes"].shape == (11, 16)
    with pytest.raises(FusionlabError, match=r"option cache_long_side=0 must be an integer >= 1"):
        source(cache_long_side=0)
