"""SA-1B folder layout: per-image JSONs with compressed RLE, image lists, depth."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from fusionlab.data import build_dataset
from fusionlab.errors import FusionlabError

H, W = 24, 32


def _annotation(ann_id: int, mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"id": ann_id, "segmentation": {"size": [H, W], "counts": rle["counts"].decode("ascii")},
            "bbox": [float(v) for v in mask_utils.toBbox(rle)], "area": int(mask.sum()),
            "predicted_iou": 0.9, "stability_score": 0.95, "point_coords": [[1.0, 1.0]], "crop_box": [0, 0, W, H]}


@pytest.fixture
def sa1b_folder(tmp_path: Path) -> Path:
    """``sa_7`` (two masks) and ``sa_12`` (one mask), plus an unrelated file."""
    root = tmp_path / "sa1b"
    root.mkdir()
    rng = np.random.default_rng(0)
    for image_id, boxes in ((12, [(2, 2, 10, 10)]), (7, [(0, 0, 5, 8), (10, 12, 30, 20)])):
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(root / f"sa_{image_id}.jpg")
        annotations = []
        for k, (x0, y0, x1, y1) in enumerate(boxes):
            mask = np.zeros((H, W), bool)
            mask[y0:y1, x0:x1] = True
            annotations.append(_annotation(image_id * 100 + k, mask))
        content = {"image": {"image_id": image_id, "width": W, "height": H, "file_name": f"sa_{image_id}.jpg"},
                   "annotations": annotations}
        (root / f"sa_{image_id}.json").write_text(json.dumps(content))
    (root / "README.txt").write_text("not an annotation")
    return root


def test_reads_pairs_in_id_order_with_rle_masks(sa1b_folder):
    ds = build_dataset("sa1b", root=sa1b_folder)
    assert len(ds) == 2 and ds.image_ids == [7, 12] and ds.name == "sa1b"
    assert ds.describe() == "SA-1B (sa1b, 2 images)"
    sample = ds[0]
    assert sample.file_name == "sa_7.jpg" and sample.image.shape == (H, W, 3)
    first, second = sample.instances
    assert first.mask.sum() == 40 and first.mask[:8, :5].all() and first.area == 40
    assert second.bbox_xyxy.tolist() == [10, 12, 30, 20]
    assert first.attributes["predicted_iou"] == 0.9


def test_image_list_and_max_images_select_images(sa1b_folder, tmp_path):
    listing = tmp_path / "subset.txt"
    listing.write_text("# paper subset\nsa_12.jpg\n")
    assert build_dataset("sa1b", root=sa1b_folder, image_list=listing).image_ids == [12]
    assert build_dataset("sa1b", root=sa1b_folder, max_images=1).image_ids == [7]
    listing.write_text("sa_12\nsa_99\n")
    with pytest.raises(FusionlabError, match=r"subset\.txt: 1 listed image\(s\) have no JSON .* first 'sa_99'"):
        build_dataset("sa1b", root=sa1b_folder, image_list=listing)


def test_max_instances_and_depth(sa1b_folder, tmp_path):
    depth = tmp_path / "depth"
    depth.mkdir()
    Image.fromarray(np.full((H, W), 2500, np.uint16)).save(depth / "sa_7.png")
    ds = build_dataset("sa1b", root=sa1b_folder, depth_root=depth, max_instances=1)
    sample = ds[0]
    assert len(sample.instances) == 1 and ds.has_depth
    np.testing.assert_allclose(sample.depth, 2.5)
    with pytest.raises(FusionlabError, match=r"no depth file for image 'sa_12\.jpg'"):
        ds[1]


def test_bad_folders_and_files(sa1b_folder, tmp_path):
    with pytest.raises(FusionlabError, match=r"nowhere: SA-1B folder not found"):
        build_dataset("sa1b", root=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FusionlabError, match=r"empty: no sa_<N>\.json annotation files"):
        build_dataset("sa1b", root=tmp_path / "empty")
    ds = build_dataset("sa1b", root=sa1b_folder)
    (sa1b_folder / "sa_12.json").write_text('{"image": {}, "annotations": []}')
    with pytest.raises(FusionlabError, match=r"sa_12\.json: missing key 'height'"):
        ds[1]
    (sa1b_folder / "sa_7.jpg").unlink()
    with pytest.raises(FusionlabError, match=r"sa_7\.jpg: image file not found"):
        ds[0]


def test_bad_annotation_refused_when_read_or_skipped_and_logged_once_per_image(sa1b_folder, caplog):
    path = sa1b_folder / "sa_7.json"
    content = json.loads(path.read_text())
    content["annotations"][1]["bbox"] = [100, 100, 5, 5]  # outside the 32x24 image
    path.write_text(json.dumps(content))
    with pytest.raises(FusionlabError, match=r"sa_7\.json: annotation 701 of image 7 \('sa_7\.jpg'\): bbox "
                                             r"\[100, 100, 5, 5\] lies entirely outside"):
        build_dataset("sa1b", root=sa1b_folder)[0]
    ds = build_dataset("sa1b", root=sa1b_folder, bad_annotations="skip")
    with caplog.at_level(logging.WARNING, logger="fusionlab.data"):
        assert [i.ann_id for i in ds[0].instances] == [700]
        assert [i.ann_id for i in ds[0].instances] == [700]  # a second epoch does not log again
    assert caplog.text.count("skipped 1 bad annotation(s) of image 7") == 1
