"""COCO-format loading: the three mask encodings, instance filters, depth files and depth_file
entries, bad annotations, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from pycocotools import mask as mask_utils

from fusionlab.data import build_dataset, list_datasets
from fusionlab.data.coco import CocoDataset
from fusionlab.errors import FusionlabError

H, W = 20, 30


def _rle_of(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [H, W], "counts": rle["counts"].decode("ascii")}


def _uncompressed_rle_of(mask: np.ndarray) -> dict:
    flat = mask.flatten(order="F").astype(int)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return {"size": [H, W], "counts": np.diff(np.concatenate([[0], changes])).tolist()}


@pytest.fixture
def coco_set(tmp_path: Path) -> dict:
    """3 images: polygon + crowd on 1, uncompressed + compressed RLE on 2, nothing on 3; depth for 1-2."""
    images, depth = tmp_path / "images", tmp_path / "depth"
    images.mkdir()
    depth.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.png", "c.png"):
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(images / name)
    Image.fromarray(np.full((H, W), 1500, np.uint16)).save(depth / "a.png")
    np.save(depth / "b.npy", np.full((H, W), 2.25, np.float32))
    blob = np.zeros((H, W), bool)
    blob[5:10, 20:28] = True
    ring = np.zeros((H, W), bool)
    ring[2:18, 2:12] = True
    ring[6:14, 5:9] = False
    content = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": H, "width": W},
                   {"id": 2, "file_name": "b.png", "height": H, "width": W},
                   {"id": 3, "file_name": "c.png", "height": H, "width": W}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "segmentation": [[2, 2, 12, 2, 12, 12, 2, 12]],
             "area": 100.0, "bbox": [2, 2, 10, 10], "iscrowd": 0, "camouflaged": True},
            {"id": 11, "image_id": 1, "category_id": 1, "segmentation": _uncompressed_rle_of(blob),
             "area": 40.0, "bbox": [20, 5, 8, 5], "iscrowd": 1},
            {"id": 20, "image_id": 2, "category_id": 2, "segmentation": _uncompressed_rle_of(ring),
             "area": float(ring.sum()), "bbox": [2, 2, 10, 16], "iscrowd": 0},
            {"id": 21, "image_id": 2, "category_id": 2, "segmentation": _rle_of(blob),
             "area": 40.0, "bbox": [20, 5, 8, 5], "iscrowd": 0},
            {"id": 22, "image_id": 2, "category_id": 2, "segmentation": [[0, 0, 1, 0, 1, 0.5]],
             "area": 0.25, "bbox": [0, 0, 1, 0.5], "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "x"}, {"id": 2, "name": "y"}],
    }
    annotations = tmp_path / "instances.json"
    annotations.write_text(json.dumps(content))
    return {"annotations": annotations, "images": images, "depth": depth, "content": content,
            "blob": blob, "ring": ring}


def test_registered_and_built_by_name(coco_set):
    assert {"coco", "sa1b", "synthetic"} <= set(list_datasets())
    ds = build_dataset("coco", annotations=coco_set["annotations"], images=coco_set["images"])
    assert isinstance(ds, CocoDataset) and ds.name == "coco" and not ds.has_depth
    assert ds.describe() == "COCO-format instances (instances.json, 2 images)"


def test_decodes_polygons_and_both_rle_forms_clean_filter_skips_crowd_and_tiny(coco_set):
    ds = CocoDataset(coco_set["annotations"], coco_set["images"], filter="clean")
    assert len(ds) == 2 and ds.image_ids == [1, 2]  # image 3 has no instance
    first, second = ds[0], ds[1]
    assert first.image.shape == (H, W, 3) and first.image.dtype == np.uint8 and first.depth is None
    assert [i.ann_id for i in first.instances] == [10]  # the crowd annotation is skipped
    polygon = first.instances[0]
    assert polygon.mask[2:12, 2:12].all() and polygon.mask.sum() == pytest.approx(100, abs=25)
    assert polygon.attributes == {"category_id": 1, "camouflaged": True}
    assert polygon.bbox_xyxy.tolist() == [2, 2, 12, 12]
    assert [i.ann_id for i in second.instances] == [20, 21]  # area 0.25 < min_area 1 is skipped
    np.testing.assert_array_equal(second.instances[0].mask, coco_set["ring"])
    np.testing.assert_array_equal(second.instances[1].mask, coco_set["blob"])
    assert second.instances[1].area == 40.0


def test_official_filter_keeps_crowd_and_empty_masks_as_the_official_evaluation(coco_set, tmp_path):
    content = coco_set["content"]
    # polygons of fewer than 3 points rasterise to nothing: an empty mask with a positive area
    content["annotations"].append({"id": 23, "image_id": 2, "category_id": 2, "segmentation": [[3, 3, 9, 9]],
                                   "area": 12.0, "bbox": [3, 3, 6, 6], "iscrowd": 0})
    path = tmp_path / "with_empty.json"
    path.write_text(json.dumps(content))
    official = CocoDataset(path, coco_set["images"])
    assert official.instance_filter == "official"
    assert [i.ann_id for i in official[0].instances] == [10, 11]  # crowd 11 is evaluated
    np.testing.assert_array_equal(official[0].instances[1].mask, coco_set["blob"])
    second = official[1].instances
    assert [i.ann_id for i in second] == [20, 21, 23]  # area 0.25 < 1 is still skipped, as officially
    assert not second[2].mask.any() and second[2].bbox_xyxy.tolist() == [3, 3, 9, 9]
    clean = CocoDataset(path, coco_set["images"], filter="clean")
    assert [i.ann_id for i in clean[0].instances] == [10] and [i.ann_id for i in clean[1].instances] == [20, 21]


def test_crowd_only_image_counts_as_empty_only_for_the_clean_filter(coco_set, tmp_path):
    content = coco_set["content"]
    content["annotations"] = [a for a in content["annotations"] if a["id"] == 11]
    path = tmp_path / "crowd_only.json"
    path.write_text(json.dumps(content))
    assert CocoDataset(path, coco_set["images"]).image_ids == [1]
    assert CocoDataset(path, coco_set["images"], filter="clean", skip_empty=False)[0].instances == []


def test_empty_images_kept_on_request(coco_set):
    ds = CocoDataset(coco_set["annotations"], coco_set["images"], skip_empty=False)
    assert len(ds) == 3 and ds[2].instances == [] and ds.image_path(2) == coco_set["images"] / "c.png"


def test_depth_files_read_as_metres_by_format(coco_set):
    ds = CocoDataset(coco_set["annotations"], coco_set["images"], depth_root=coco_set["depth"])
    assert ds.has_depth
    np.testing.assert_allclose(ds[0].depth, 1.5)  # 16-bit PNG: millimetres
    np.testing.assert_allclose(ds[1].depth, 2.25)  # float .npy: metres
    (coco_set["depth"] / "b.npy").unlink()
    tifffile.imwrite(coco_set["depth"] / "b.tiff", np.full((H, W), 3.5, np.float32))
    np.testing.assert_allclose(ds[1].depth, 3.5)
    scaled = CocoDataset(coco_set["annotations"], coco_set["images"], depth_root=coco_set["depth"],
                         depth_scale=1 / 5000)  # e.g. TUM RGB-D's 5000 units per metre
    np.testing.assert_allclose(scaled[0].depth, 0.3)


def test_max_instances_draw_is_deterministic_per_seed_and_index(coco_set, tmp_path):
    content = coco_set["content"]
    square = content["annotations"][0]
    content["annotations"] = [dict(square, id=100 + k) for k in range(10)]
    path = tmp_path / "many.json"
    path.write_text(json.dumps(content))
    draws = [[i.ann_id for i in CocoDataset(path, coco_set["images"], max_instances=4, seed=s)[0].instances]
             for s in (0, 0, 1)]
    assert len(draws[0]) == 4 and len(set(draws[0])) == 4
    assert draws[0] == draws[1] and draws[0] != draws[2]
    assert len(CocoDataset(path, coco_set["images"])[0].instances) == 10


def test_lvis_images_found_from_coco_url(coco_set, tmp_path):
    content = coco_set["content"]
    for image in content["images"]:
        name = image.pop("file_name")
        image["coco_url"] = f"http://images.cocodataset.org/val2017/{name}"
    path = tmp_path / "lvis.json"
    path.write_text(json.dumps(content))
    assert CocoDataset(path, coco_set["images"]).image_path(0) == coco_set["images"] / "a.jpg"


@pytest.mark.parametrize("text, message", [
    ("", r"instances\.json: not valid JSON"),
    ("[1, 2]", r"instances\.json: top level is a list"),
    ('{"annotations": []}', r"instances\.json: missing or non-list key 'images'"),
    ('{"images": []}', r"instances\.json: missing or non-list key 'annotations'"),
    ('{"images": [], "annotations": []}', r"instances\.json: 'images' is empty"),
    ('{"images": [{"id": 1, "height": 2, "width": 2}], "annotations": []}', r"images\[0\] lacks 'file_name'"),
])
def test_malformed_annotation_file_is_a_one_line_error(tmp_path, text, message):
    path = tmp_path / "instances.json"
    path.write_text(text)
    with pytest.raises(FusionlabError, match=message) as info:
        CocoDataset(path, tmp_path)
    assert "\n" not in str(info.value)


def test_missing_annotation_file(tmp_path):
    with pytest.raises(FusionlabError, match=r"nope\.json: annotation file not found"):
        build_dataset("coco", annotations=tmp_path / "nope.json", images=tmp_path)


def test_missing_and_corrupt_images(coco_set):
    ds = CocoDataset(coco_set["annotations"], coco_set["images"])
    (coco_set["images"] / "a.jpg").unlink()
    with pytest.raises(FusionlabError, match=r"a\.jpg: image file not found"):
        ds[0]
    (coco_set["images"] / "b.png").write_bytes(b"not a png")
    with pytest.raises(FusionlabError, match=r"b\.png: cannot decode image"):
        ds[1]


def test_bad_depth_files(coco_set):
    ds = CocoDataset(coco_set["annotations"], coco_set["images"], depth_root=coco_set["depth"])
    (coco_set["depth"] / "a.png").unlink()
    with pytest.raises(FusionlabError, match=r"no depth file for image 'a\.jpg'"):
        ds[0]
    np.save(coco_set["depth"] / "b.npy", np.ones((H + 1, W), np.float32))
    with pytest.raises(FusionlabError, match=r"b\.npy: depth is 21x30 \(HxW\) but its image is 20x30"):
        ds[1]
    with_nan = np.ones((H, W), np.float32)
    with_nan[3, 4] = np.nan
    np.save(coco_set["depth"] / "b.npy", with_nan)
    with pytest.raises(FusionlabError, match=r"b\.npy: depth holds 1 NaN values"):
        ds[1]


def test_malformed_segmentation_names_the_annotation(coco_set, tmp_path):
    content = coco_set["content"]
    content["annotations"][0]["segmentation"] = {"counts": 5}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(FusionlabError, match=r"bad\.json: annotation 10 of image 'a\.jpg': bad 'segmentation'"):
        CocoDataset(path, coco_set["images"])[0]


def test_unknown_dataset_and_option_are_one_line_errors(coco_set):
    with pytest.raises(FusionlabError, match=r"unknown dataset 'cocoo': did you mean 'coco'"):
        build_dataset("cocoo")
    with pytest.raises(FusionlabError, match=r"^imgs: unknown option of dataset 'coco'; did you mean 'images'\? "
                                             r"allowed: annotations, images, "):
        build_dataset("coco", annotations=coco_set["annotations"], imgs=coco_set["images"])
    with pytest.raises(FusionlabError, match=r"^dataset 'coco' needs option 'images'; its options: annotations, "):
        build_dataset("coco", annotations=coco_set["annotations"])


def test_index_out_of_range(coco_set):
    ds = CocoDataset(coco_set["annotations"], coco_set["images"])
    with pytest.raises(IndexError):
        ds[2]
    assert ds[-1].image_id == 2
