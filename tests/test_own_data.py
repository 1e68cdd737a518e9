"""A COCO-format RGB-D folder with a ``depth_file`` per image, as a user brings it (docs/your-own-data.md):
an eval-only config evaluates it, and ``train.steps: 50`` fine-tunes exactly 50 steps."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image
from pycocotools import mask as mask_utils

from fusionlab.cli import main

SIZE = 64


def _own_set(root: Path) -> Path:
    """4 images with 2 rectangles each; depth PNGs (mm) in depth/, named by each image's depth_file."""
    rng = np.random.default_rng(0)
    for folder in ("images", "depth", "annotations"):
        (root / folder).mkdir(parents=True)
    images, annotations = [], []
    for image_id in range(1, 5):
        Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(root / "images" / f"{image_id}.jpg")
        Image.fromarray(rng.integers(500, 5000, (SIZE, SIZE), dtype=np.uint16)).save(root / "depth" / f"d{image_id}.png")
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "height": SIZE, "width": SIZE,
                       "depth_file": f"../depth/d{image_id}.png"})
        for k in range(2):
            mask = np.zeros((SIZE, SIZE), np.uint8)
            x0, y0 = rng.integers(0, SIZE // 2, 2)
            mask[y0:y0 + 16, x0:x0 + 20] = 1
            rle = mask_utils.encode(np.asfortranarray(mask))
            annotations.append({"id": image_id * 10 + k, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                                "area": int(mask.sum()), "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                                "segmentation": {"size": [SIZE, SIZE], "counts": rle["counts"].decode("ascii")}})
    (root / "annotations" / "instances.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}))
    return root


def test_an_rgbd_coco_set_with_depth_files_evaluates_eval_only_and_fine_tunes_50_steps(tmp_path, capsys):
    root = _own_set(tmp_path / "my_rgbd")
    val = {"annotations": str(root / "annotations" / "instances.json"), "images": str(root / "images")}
    eval_only = {"model": {"preset": "efficientvit-sam-demo", "fusion": "add"},
                 "data": {"dataset": "coco", "val": val}, "depth": {"source": "dataset"},
                 "eval": {"prompts": ["box", "click1"], "device": "cpu"}}
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump(eval_only))
    assert main(["eval", str(tmp_path / "eval.yaml"), "--out", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n_images"] == 4 and metrics["n_instances"] == 8

    finetune = {**eval_only, "data": {"dataset": "coco", "train": val, "val": val},
                "train": {"steps": 50, "batch_size": 2, "masks_per_image": 2, "device": "cpu"}}
    (tmp_path / "finetune.yaml").write_text(yaml.safe_dump(finetune))
    assert main(["train", str(tmp_path / "finetune.yaml"), "--out", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "train_done.json").read_text())["steps"] == 50
    assert pd.read_csv(tmp_path / "run" / "train_log.csv")["step"].iloc[-1] == 50
    capsys.readouterr()
