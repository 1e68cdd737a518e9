"""The embedded RGB-D dataset: generation, cache, annotations, and why depth matters on it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest

import fusionlab.data.synthetic as synthetic
from fusionlab.data import build_dataset
from fusionlab.data.coco import CocoDataset
from fusionlab.data.synthetic import SyntheticDataset, synthetic_size_thresholds
from fusionlab.data.types import Sample
from fusionlab.errors import FusionlabError

TINY = dict(num_images=6, image_size=64)


@pytest.fixture(scope="module")
def default_train(tmp_path_factory) -> SyntheticDataset:
    return build_dataset("synthetic", root=tmp_path_factory.mktemp("cache"))


def _tree_bytes(folder: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path):
    first = SyntheticDataset(root=tmp_path / "a", **TINY)
    second = SyntheticDataset(root=tmp_path / "b", **TINY)
    files = _tree_bytes(first.folder)
    assert len([f for f in files if f.startswith("images/")]) == 6
    assert files == _tree_bytes(second.folder)


def test_splits_and_options_get_their_own_data(tmp_path):
    train = SyntheticDataset(root=tmp_path, **TINY)
    val = SyntheticDataset(root=tmp_path, split="val", **TINY)
    other = SyntheticDataset(root=tmp_path, camouflage=0.0, **TINY)
    assert train.folder.parent == val.folder.parent and train.folder.name == "train"
    assert other.folder.parent != train.folder.parent
    assert not np.array_equal(train[0].image, val[0].image)
    assert not any(inst.attributes["camouflaged"] for s in other for inst in s.instances)


def test_samples_are_decoded_rgbd_with_consistent_masks(tmp_path):
    ds = SyntheticDataset(root=tmp_path, **TINY)
    assert len(ds) == 6 and ds.has_depth and ds.name == "synthetic"
    assert ds.describe() == "synthetic RGB-D scenes (train, 6 images, 64 px, camouflage 0.5)"
    for sample in ds:
        assert sample.image.shape == (64, 64, 3) and sample.image.dtype == np.uint8
        assert sample.depth.shape == (64, 64) and sample.depth.dtype == np.float32
        assert 1.0 < sample.depth.min() and sample.depth.max() <= 8.0  # metres: room is 6-8 m deep
        assert sample.instances
        coverage = np.zeros((64, 64), dtype=int)
        for inst in sample.instances:
            assert inst.mask.dtype == bool and inst.mask.any()
            assert inst.area == inst.mask.sum()
            rows, cols = np.nonzero(inst.mask)
            assert inst.bbox_xyxy.tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
            assert isinstance(inst.attributes["camouflaged"], bool)
            coverage += inst.mask
        assert coverage.max() == 1  # the z-buffer gives each pixel to one object at most


def test_files_are_coco_with_compressed_rle_and_millimetre_depth(tmp_path):
    ds = SyntheticDataset(root=tmp_path, **TINY)
    content = json.loads((ds.folder / "instances.json").read_text())
    ann = content["annotations"][0]
    assert isinstance(ann["segmentation"]["counts"], str) and ann["iscrowd"] == 0
    assert content["info"]["size_thresholds"] == list(synthetic_size_thresholds(64))
    from PIL import Image
    depth_mm = np.asarray(Image.open(ds.folder / "depth" / "000000.png"))
    assert depth_mm.dtype == np.uint16
    np.testing.assert_allclose(ds[0].depth, depth_mm / 1000.0, rtol=1e-6)


def test_stale_folder_is_refused_not_read(tmp_path):
    ds = SyntheticDataset(root=tmp_path, **TINY)
    meta = json.loads((ds.folder / "meta.json").read_text())
    meta["config"]["camouflage"] = 0.9
    (ds.folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(FusionlabError, match=r"meta\.json: holds config .* delete"):
        SyntheticDataset(root=tmp_path, **TINY)


def test_interrupted_generation_leaves_no_split_behind(tmp_path, monkeypatch):
    real_render = synthetic.render_scene
    calls = []

    def failing_render(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_render(*args, **kwargs)

    monkeypatch.setattr(synthetic, "render_scene", failing_render)
    with pytest.raises(KeyboardInterrupt):
        SyntheticDataset(root=tmp_path, **TINY)
    assert not list(tmp_path.rglob("train")) and not list(tmp_path.rglob("*.tmp-*"))
    monkeypatch.setattr(synthetic, "render_scene", real_render)
    assert len(SyntheticDataset(root=tmp_path, **TINY)) == 6


def test_bad_options_are_one_line_errors(tmp_path):
    with pytest.raises(FusionlabError, match=r"camouflage=1.5; expected a share in \[0, 1\]"):
        SyntheticDataset(root=tmp_path, camouflage=1.5)
    with pytest.raises(FusionlabError, match=r"split='test'"):
        SyntheticDataset(root=tmp_path, split="test")
    with pytest.raises(FusionlabError, match=r"objects_per_image=\(5, 2\)"):
        SyntheticDataset(root=tmp_path, objects_per_image=(5, 2))


def test_default_cache_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FUSIONLAB_CACHE", str(tmp_path))
    assert synthetic.default_cache_root() == tmp_path / "synthetic"


def test_size_thresholds_scale_coco_by_image_area():
    assert synthetic_size_thresholds(640) == pytest.approx((32 ** 2 * 640 / 480, 96 ** 2 * 640 / 480))
    assert synthetic_size_thresholds(128) == pytest.approx((54.613, 491.52), abs=1e-3)


def test_default_train_set_fills_every_size_bucket(default_train):
    small_max, large_min = default_train.size_thresholds
    areas = np.array([inst.area for s in default_train for inst in s.instances])
    buckets = [(areas < small_max).mean(), ((areas >= small_max) & (areas < large_min)).mean(),
               (areas >= large_min).mean()]
    assert len(default_train) == 200 and len(areas) > 600
    assert min(buckets) > 0.1, buckets  # each of small / medium / large holds a real share


def test_official_and_clean_filters_agree_on_the_embedded_data(default_train):
    """No crowd annotation, empty mask or bad annotation: the demo numbers do not depend on ``filter``."""
    val = SyntheticDataset(split="val", root=default_train.folder.parents[1])
    for split in (default_train, val):
        assert split.instance_filter == "official"
        clean = CocoDataset(split.folder / "instances.json", split.images, filter="clean", skip_empty=False)
        assert [[i.ann_id for i in s.instances] for s in split] == [[i.ann_id for i in s.instances] for s in clean]


def _boundary_steps(sample: Sample) -> Dict[bool, Tuple[List[np.ndarray], List[np.ndarray]]]:
    """Per camouflage flag, |RGB step| (channel mean) and |depth step| between each instance
    pixel and its 4-neighbours that belong to no instance (the background)."""
    union = np.any([inst.mask for inst in sample.instances], axis=0)
    image, depth = sample.image.astype(np.float32), sample.depth
    steps: Dict[bool, Tuple[List[np.ndarray], List[np.ndarray]]] = {True: ([], []), False: ([], [])}
    height, width = union.shape
    for inst in sample.instances:
        for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            here = (slice(max(0, -dy), height - max(0, dy)), slice(max(0, -dx), width - max(0, dx)))
            there = (slice(max(0, dy), height - max(0, -dy)), slice(max(0, dx), width - max(0, -dx)))
            pairs = inst.mask[here] & ~union[there]
            rgb_step = np.abs(image[here][pairs] - image[there][pairs]).mean(axis=1)
            depth_step = np.abs(depth[here][pairs] - depth[there][pairs])
            flag = bool(inst.attributes["camouflaged"])
            steps[flag][0].append(rgb_step)
            steps[flag][1].append(depth_step)
    return steps


def test_camouflaged_outlines_vanish_in_rgb_but_not_in_depth(default_train):
    rgb = {True: [], False: []}
    depth = {True: [], False: []}
    for sample in default_train:
        for flag, (rgb_steps, depth_steps) in _boundary_steps(sample).items():
            rgb[flag] += rgb_steps
            depth[flag] += depth_steps
    rgb_mean = {flag: np.concatenate(v).mean() for flag, v in rgb.items()}
    depth_mean = {flag: np.concatenate(v).mean() for flag, v in depth.items()}
    assert rgb_mean[True] < 0.35 * rgb_mean[False], rgb_mean
    assert depth_mean[True] > 1.0 and depth_mean[True] > 0.7 * depth_mean[False], depth_mean


def test_image_sample_is_the_image_alone_without_touching_the_masks(monkeypatch):
    from fusionlab.data.base import InstanceDataset, image_sample

    dataset = build_dataset("synthetic", split="val", num_images=2, image_size=64)
    whole = dataset[1]

    def no_masks(*args, **kwargs):
        raise AssertionError("image_sample decoded an instance")

    monkeypatch.setattr(InstanceDataset, "_instance", no_masks)
    alone = image_sample(dataset, 1)
    assert (alone.image_id, alone.file_name) == (whole.image_id, whole.file_name)
    np.testing.assert_array_equal(alone.image, whole.image)
    assert alone.instances == [] and alone.depth is None
