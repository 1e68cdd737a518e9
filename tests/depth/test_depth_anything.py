import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fusionlab.depth import build_depth_source, precompute
from fusionlab.errors import FusionlabError

SIZES = [(20, 30), (30, 20), (20, 30)]  # two aspect ratios: batches group equal processed shapes


def source(model, cache, **options):
    return build_depth_source("depth_anything", model=str(model), cache_dir=str(cache), device="cpu", **options)


def test_first_prepare_computes_then_everything_is_cached(tiny_depth_anything, tmp_path, make_dataset):
    split = make_dataset(SIZES)
    first = source(tiny_depth_anything, tmp_path, batch_size=2)
    report = precompute(first, split, progress=False)
    assert (report["images"], report["computed"], report["cached"]) == (3, 3, 0)
    outputs = [first(split[i], i) for i in range(3)]
    for out, (height, width) in zip(outputs, SIZES):
        assert out.shape == (height, width) and out.dtype == np.float32
        assert out.min() == 0 and out.max() == 1
    folder = tmp_path / f"depth_anything-{first.config()['cache_key']}"
    assert sorted(p.name.split(".")[0] for p in (folder / "sub").iterdir()) == ["img_0", "img_1", "img_2"]
    assert (folder / "key.json").is_file()

    second = source(tiny_depth_anything, tmp_path, batch_size=3)
    report = precompute(second, split, progress=False)
    assert (report["computed"], report["cached"]) == (0, 3)
    for i, out in enumerate(outputs):
        np.testing.assert_array_equal(second(split[i], i), out)
    assert second.model is None  # a fully cached split never loads the model


def test_cached_maps_are_the_models_prediction_at_image_size(tiny_depth_anything, tmp_path, make_dataset):
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    split = make_dataset(SIZES)
    depth_source = source(tiny_depth_anything, tmp_path, normalize="none", batch_size=3)
    depth_source.prepare(split, progress=False)
    processor = AutoImageProcessor.from_pretrained(tiny_depth_anything)
    model = AutoModelForDepthEstimation.from_pretrained(tiny_depth_anything).eval()
    for i, (height, width) in enumerate(SIZES):
        with torch.no_grad():
            predicted = model(**processor(images=split[i].image, return_tensors="pt")).predicted_depth
        expected = F.interpolate(predicted[None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
        np.testing.assert_allclose(depth_source(split[i], i), expected.numpy(), rtol=1e-3)


def test_changed_config_gets_another_key_but_normalisation_does_not(tiny_depth_anything, tmp_path, make_dataset):
    split = make_dataset(SIZES)
    base = source(tiny_depth_anything, tmp_path)
    assert base.prepare(split, progress=False)["computed"] == 3
    bigger = source(tiny_depth_anything, tmp_path, input_size=42)
    assert bigger.config()["cache_key"] != base.config()["cache_key"]
    assert bigger.prepare(split, progress=False)["computed"] == 3
    assert not np.array_equal(bigger(split[0], 0), base(split[0], 0))
    renormalised = source(tiny_depth_anything, tmp_path, normalize="median_mad", output="depth")
    assert renormalised.config()["cache_key"] == base.config()["cache_key"]
    assert renormalised.prepare(split, progress=False)["computed"] == 0


def test_rewritten_weights_change_the_key(tmp_path, save_depth_anything):
    folder = save_depth_anything(tmp_path / "model")
    before = source(folder, tmp_path / "cache").config()["cache_key"]
    save_depth_anything(folder, seed=1)
    weights = folder / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert source(folder, tmp_path / "cache").config()["cache_key"] != before


def test_call_without_prepare_computes_and_caches_one_map(tiny_depth_anything, tmp_path, make_dataset):
    split = make_dataset(SIZES)
    depth_source = source(tiny_depth_anything, tmp_path)
    out = depth_source(split[1], 1)
    assert out.shape == (30, 20) and depth_source.cache.path(split[1]).is_file()
    assert depth_source.prepare(split, progress=False) == {"images": 3, "computed": 2, "cached": 1}


def test_metric_models_are_read_as_depth(tmp_path, save_depth_anything):
    folder = save_depth_anything(tmp_path / "metric", metric=True)
    assert source(folder, tmp_path / "cache").config()["raw"] == "depth"


def test_unknown_hub_id_offline_asks_for_a_folder(tmp_path):
    with pytest.raises(FusionlabError, match=r"model 'nobody/no-such-depth-model' not found locally and the hub "
                                             r"is offline .*pass a local folder"):
        source("nobody/no-such-depth-model", tmp_path)


@pytest.mark.parametrize("options, message", [
    ({"device": "tpu"}, r"option device='tpu' is not one of 'auto', 'cpu', 'cuda'"),
    ({"batch_size": 0}, r"option batch_size=0 must be an integer >= 1"),
    ({"input_size": "big"}, r"^input_size: expected an integer or null \(option of depth source 'depth_anything'\), "
                            r"got a string 'big'$"),
    ({"raw": "inverse"}, r"raw: 'inverse' is not allowed \(option of depth source 'depth_anything'\); expected one of depth, disparity"),
])
def test_bad_options(tiny_depth_anything, tmp_path, options, message):
    options = {"device": "cpu", **options}
    with pytest.raises(FusionlabError, match=message):
        build_depth_source("depth_anything", model=str(tiny_depth_anything), cache_dir=str(tmp_path), **options)


def test_missing_model_folder(tmp_path):
    with pytest.raises(FusionlabError, match=r"model folder '\./no/such/folder' does not exist"):
        source("./no/such/folder", tmp_path)


def test_the_overlapping_fill_of_a_gpu_writes_the_same_maps_as_the_fill_in_turn(tiny_depth_anything, tmp_path,
                                                                                 make_dataset):
    split = make_dataset(SIZES + SIZES[:2])  # 5 images, batches of 2: a last batch of one
    maps = {}
    for overlap in (False, True):
        depth_source = source(tiny_depth_anything, tmp_path / str(overlap), normalize="none", batch_size=2)
        depth_source.overlap = overlap  # threads decode, predict and write side by side (the GPU's way)
        report = depth_source.fill(split, progress=False)
        assert (report["computed"], report["cached"]) == (5, 0)
        maps[overlap] = [depth_source(split[i], i) for i in range(5)]
    for in_turn, overlapped in zip(maps[False], maps[True]):
        np.testing.assert_array_equal(in_turn, overlapped)
