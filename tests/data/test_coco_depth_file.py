"""Per-image ``depth_file`` entries of a COCO-format JSON (RGB-D sets converted to COCO)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fusionlab.data import build_dataset
from fusionlab.errors import FusionlabError

H, W = 12, 16


def make_set(root: Path, depth_files, depth_mm=(1500, 2500)) -> Path:
    """Two images (ids 1, 2) with one square each; ``depth_files[i]`` is image i's entry (None: no key).

    Writes a 16-bit millimetre PNG of ``depth_mm[i]`` at ``root / "raw" / f"d{i}.png"``; returns the JSON.
    """
    (root / "rgb").mkdir(parents=True)
    (root / "raw").mkdir()
    images, annotations = [], []
    for i, depth_file in enumerate(depth_files):
        Image.fromarray(np.full((H, W, 3), 60 * i, np.uint8)).save(root / "rgb" / f"im{i}.png")
        Image.fromarray(np.full((H, W), depth_mm[i], np.uint16)).save(root / "raw" / f"d{i}.png")
        entry = {"id": i + 1, "file_name": f"im{i}.png", "height": H, "width": W}
        if depth_file is not None:
            entry["depth_file"] = depth_file
        images.append(entry)
        annotations.append({"id": 10 + i, "image_id": i + 1, "category_id": 1, "iscrowd": 0, "area": 16.0,
                            "bbox": [2, 2, 4, 4], "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]]})
    path = root / "annotations" / "instances.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "thing"}]}))
    return path


def test_depth_file_relative_to_the_json_folder_is_read_in_metres(tmp_path):
    path = make_set(tmp_path, ["../raw/d0.png", "../raw/d1.png"])
    ds = build_dataset("coco", annotations=str(path), images=str(tmp_path / "rgb"))
    assert ds.has_depth and ds.describe().endswith("depth from depth_file entries)")
    np.testing.assert_allclose(ds[0].depth, 1.5)  # 16-bit PNG: millimetres by default
    np.testing.assert_allclose(ds[1].depth, 2.5)
    scaled = build_dataset("coco", annotations=str(path), images=str(tmp_path / "rgb"), depth_scale=1 / 5000)
    np.testing.assert_allclose(scaled[0].depth, 0.3)  # depth_scale: metres per stored unit


def test_depth_file_relative_to_depth_root_and_absolute(tmp_path):
    path = make_set(tmp_path, ["d0.png", str(tmp_path / "raw" / "d1.png")])
    ds = build_dataset("coco", annotations=str(path), images=str(tmp_path / "rgb"), depth_root=str(tmp_path / "raw"))
    np.testing.assert_allclose(ds[0].depth, 1.5)
    np.testing.assert_allclose(ds[1].depth, 2.5)


def test_images_without_depth_file_use_the_file_named_after_them_under_depth_root(tmp_path):
    path = make_set(tmp_path, ["d0.png", None])
    (tmp_path / "raw" / "d1.png").rename(tmp_path / "raw" / "im1.png")
    ds = build_dataset("coco", annotations=str(path), images=str(tmp_path / "rgb"), depth_root=str(tmp_path / "raw"))
    np.testing.assert_allclose(ds[1].depth, 2.5)


def test_missing_depth_file_names_the_image_and_the_file(tmp_path):
    path = make_set(tmp_path, ["../raw/d0.png", "../raw/gone.png"])
    ds = build_dataset("coco", annotations=str(path), images=str(tmp_path / "rgb"))
    with pytest.raises(FusionlabError, match=r"instances\.json: image 2: depth_file '.*raw/gone\.png' not found"):
        ds[1]


def test_depth_file_on_some_images_only_needs_depth_root(tmp_path):
    path = make_set(tmp_path, ["../raw/d0.png", None])
    with pytest.raises(FusionlabError, match=r"image 2 has no 'depth_file' while image 1 has one; expected one for "
                                             r"every image, or depth_root"):
        build_dataset("coco", annotations=str(path), images=str(tmp_path / "rgb"))


def test_depth_file_must_be_a_path_string(tmp_path):
    path = make_set(tmp_path, ["../raw/d0.png", 7])
    with pytest.raises(FusionlabError, match=r"images\[1\] \(id 2\): depth_file=7; expected a non-empty path string"):
        build_dataset("coco", annotations=str(path), images=str(tmp_path / "rgb"))


def test_without_depth_file_or_depth_root_there_is_no_depth(tmp_path):
    path = make_set(tmp_path, [None, None])
    ds = build_dataset("coco", annotations=str(path), images=str(tmp_path / "rgb"))
    assert not ds.has_depth and ds[0].depth is None
