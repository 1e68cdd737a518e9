"""Annotations that cannot be trusted (box outside the image, zero area or box with a non-empty
mask) are refused by default, or skipped and counted with ``bad_annotations: skip``."""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fusionlab.data import build_dataset
from fusionlab.errors import FusionlabError

H, W = 12, 16
SQUARE = [[2, 2, 6, 2, 6, 6, 2, 6]]  # 16 pixels at x, y in [2, 6)


def make_set(root: Path, *extra: dict) -> Path:
    """One image (id 5, ``im.png``) with a good square annotation (id 1) and ``extra`` annotations."""
    (root / "rgb").mkdir(parents=True)
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(root / "rgb" / "im.png")
    good = {"id": 1, "bbox": [2, 2, 4, 4], "area": 16.0, "segmentation": SQUARE}
    annotations = [dict({"image_id": 5, "category_id": 1, "iscrowd": 0}, **ann) for ann in (good, *extra)]
    path = root / "instances.json"
    path.write_text(json.dumps({"images": [{"id": 5, "file_name": "im.png", "height": H, "width": W}],
                                "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}))
    return path


@pytest.mark.parametrize("bad, reason", [
    ({"bbox": [40, 2, 4, 4], "area": 16.0}, r"bbox \[40, 2, 4, 4\] lies entirely outside the 16x12 \(WxH\) image"),
    ({"bbox": [-9, 2, 4, 4], "area": 16.0}, r"bbox \[-9, 2, 4, 4\] lies entirely outside"),
    ({"bbox": [2, 2, 4, 4], "area": 0}, r"area is 0 but its mask has 16 pixel\(s\)"),
    ({"bbox": [2, 2, 0, 4], "area": 16.0}, r"bbox \[2, 2, 0, 4\] has zero width or height but its mask has 16 "),
])
def test_bad_annotation_is_a_one_line_error_naming_annotation_image_and_file(tmp_path, bad, reason):
    path = make_set(tmp_path, dict(bad, id=7, segmentation=SQUARE))
    with pytest.raises(FusionlabError) as info:
        build_dataset("coco", annotations=str(path), images=str(tmp_path / "rgb"))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: annotation 7 of image 5 ('im.png'): ")
    assert "bad_annotations: skip" in message and re.search(reason, message)


def test_skip_leaves_bad_annotations_out_and_logs_their_count(tmp_path, caplog):
    path = make_set(tmp_path, {"id": 7, "bbox": [40, 2, 4, 4], "area": 16.0, "segmentation": SQUARE},
                    {"id": 8, "bbox": [2, 2, 4, 4], "area": 0, "segmentation": SQUARE})
    with caplog.at_level(logging.WARNING, logger="fusionlab.data"):
        ds = build_dataset("coco", annotations=str(path), images=str(tmp_path / "rgb"), bad_annotations="skip")
    assert [i.ann_id for i in ds[0].instances] == [1]
    assert "instances.json: skipped 2 bad annotation(s)" in caplog.text


def test_zero_area_with_an_empty_mask_is_not_bad(tmp_path):
    # nothing to evaluate either way: the official loop skips area < 1, and so does min_area
    path = make_set(tmp_path, {"id": 7, "bbox": [0, 0, 0, 0], "area": 0, "segmentation": [[1, 1, 3, 3]]})
    ds = build_dataset("coco", annotations=str(path), images=str(tmp_path / "rgb"))
    assert [i.ann_id for i in ds[0].instances] == [1]


def test_bad_option_values_are_refused(tmp_path):
    path = make_set(tmp_path)
    with pytest.raises(FusionlabError, match=r"bad_annotations: 'ignore' is not allowed \(option of dataset 'coco'\); "
                                             r"expected one of error, skip"):
        build_dataset("coco", annotations=str(path), images=str(tmp_path / "rgb"), bad_annotations="ignore")
    with pytest.raises(FusionlabError, match=r"filter: 'all' is not allowed \(option of dataset 'coco'\); expected one "
                                             r"of official, clean"):
        build_dataset("coco", annotations=str(path), images=str(tmp_path / "rgb"), filter="all")
    with pytest.raises(FusionlabError, match=r"dataset 'coco': max_instances=0; expected null or an integer >= 1"):
        build_dataset("coco", annotations=str(path), images=str(tmp_path / "rgb"), max_instances=0)
