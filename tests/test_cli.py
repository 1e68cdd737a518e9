"""The command line on data a user brings: COCO and SA-1B folders, and one-line errors."""
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from pycocotools import mask as mask_utils

from fusionlab.cli import main

SIZE = 64
TINY_TRAIN = {"epochs": 1, "batch_size": 2, "max_steps": 2, "masks_per_image": 4, "device": "cpu"}


def _rectangles(rng, count):
    masks = []
    for _ in range(count):
        x0, y0 = rng.integers(0, SIZE // 2, 2)
        w, h = rng.integers(8, SIZE // 2, 2)
        mask = np.zeros((SIZE, SIZE), bool)
        mask[y0:y0 + h, x0:x0 + w] = True
        masks.append(mask)
    return masks


def _annotation(ann_id, image_id, mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "area": int(mask.sum()),
            "bbox": [float(v) for v in mask_utils.toBbox(rle)],
            "segmentation": {"size": [SIZE, SIZE], "counts": rle["counts"].decode("ascii")}}


@pytest.fixture
def coco_folder(tmp_path):
    """3 images with 2 rectangles each, COCO RLE, and a folder of 16-bit depth PNGs."""
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    (tmp_path / "depth").mkdir()
    images, annotations = [], []
    for image_id in (1, 2, 3):
        name = f"img{image_id}.jpg"
        Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(tmp_path / "images" / name)
        Image.fromarray(rng.integers(500, 5000, (SIZE, SIZE), dtype=np.uint16)).save(
            tmp_path / "depth" / f"img{image_id}.png")
        images.append({"id": image_id, "file_name": name, "height": SIZE, "width": SIZE})
        annotations += [_annotation(image_id * 10 + k, image_id, m) for k, m in enumerate(_rectangles(rng, 2))]
    (tmp_path / "instances.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}))
    return tmp_path


@pytest.fixture
def sa1b_folder(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "sa1b"
    root.mkdir()
    for image_id in (1, 2):
        Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(root / f"sa_{image_id}.jpg")
        content = {"image": {"image_id": image_id, "width": SIZE, "height": SIZE, "file_name": f"sa_{image_id}.jpg"},
                   "annotations": [_annotation(image_id * 10 + k, image_id, m)
                                   for k, m in enumerate(_rectangles(rng, 3))]}
        (root / f"sa_{image_id}.json").write_text(json.dumps(content))
    return root


def _write(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def _coco_config(folder: Path, fusion="add") -> dict:
    data = {"annotations": str(folder / "instances.json"), "images": str(folder / "images"),
            "depth_root": str(folder / "depth")}
    return {"model": {"preset": "efficientvit-sam-demo", "fusion": fusion},
            "data": {"dataset": "coco", "train": data, "val": data},
            "depth": {"source": "dataset"}, "train": dict(TINY_TRAIN), "eval": {"prompts": ["box", "click2"]}}


def test_train_then_eval_on_a_coco_folder_with_depth(coco_folder, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO, logger="fusionlab")
    config = _write(tmp_path / "coco.yaml", _coco_config(coco_folder))
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 0
    run = tmp_path / "run"
    assert {"config.yaml", "train_log.csv", "checkpoint.safetensors", "train_done.json", "metrics.json",
            "instances.csv"} <= {p.name for p in run.iterdir()}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_instances"] == 6 and 0 <= metrics["box_miou"] <= 100 and "click2_miou" in metrics
    assert main(["eval", str(config), "--checkpoint", str(run / "checkpoint.safetensors"),
                 "--out", str(tmp_path / "eval")]) == 0
    again = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert again["box_miou"] == pytest.approx(metrics["box_miou"], abs=1e-6)
    assert "box_miou" in capsys.readouterr().out
    evaluated = yaml.safe_load((tmp_path / "eval" / "config.yaml").read_text())  # what was evaluated, kept with it
    assert evaluated["depth"]["source"] == "dataset" and evaluated["model"]["fusion"] == "add"
    assert any(r.getMessage().startswith("evaluating with depth from dataset depth") for r in caplog.records)


def test_train_on_an_sa1b_folder_evaluates_on_coco(sa1b_folder, coco_folder, tmp_path):
    config = _coco_config(coco_folder, fusion=None)
    config["data"]["train"] = {"root": str(sa1b_folder)}
    config["data"]["dataset"] = "sa1b"
    config["data"]["eval_dataset"] = "coco"
    config["data"]["val"] = {"annotations": str(coco_folder / "instances.json"), "images": str(coco_folder / "images")}
    assert main(["train", str(_write(tmp_path / "sa1b.yaml", config)), "--out", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "train_done.json").read_text())["steps"] == 1


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    return err[-1]


def test_missing_image_fails_in_one_line_and_leaves_no_complete_run(coco_folder, tmp_path, capsys):
    (coco_folder / "images" / "img2.jpg").unlink()
    config = _write(tmp_path / "coco.yaml", _coco_config(coco_folder))
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    assert "img2.jpg: image file not found" in _error_line(capsys)
    assert not (tmp_path / "run" / "train_done.json").exists()


def test_corrupt_image_and_bad_depth_are_one_line_errors(coco_folder, tmp_path, capsys):
    (coco_folder / "images" / "img1.jpg").write_bytes(b"not a jpeg")
    config = _write(tmp_path / "coco.yaml", _coco_config(coco_folder))
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    assert "img1.jpg: cannot decode image" in _error_line(capsys)

    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(coco_folder / "images" / "img1.jpg")
    Image.fromarray(np.ones((SIZE, SIZE // 2), np.uint16)).save(coco_folder / "depth" / "img1.png")
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    assert "img1.png: depth is 64x32 (HxW) but its image is 64x64" in _error_line(capsys)

    (coco_folder / "depth" / "img1.png").unlink()
    np.save(coco_folder / "depth" / "img1.npy", np.full((SIZE, SIZE), np.nan, np.float32))
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    assert "NaN" in _error_line(capsys)


def test_empty_annotation_file_and_unknown_names_are_one_line_errors(coco_folder, tmp_path, capsys):
    config = _coco_config(coco_folder)
    (coco_folder / "empty.json").write_text("")
    config["data"]["train"]["annotations"] = str(coco_folder / "empty.json")
    assert main(["train", str(_write(tmp_path / "a.yaml", config)), "--out", str(tmp_path / "run")]) == 2
    assert "empty.json" in _error_line(capsys)

    config = _coco_config(coco_folder)
    config["depth"]["source"] = "depth_anythin"
    assert main(["train", str(_write(tmp_path / "b.yaml", config))]) == 2
    assert "depth.source: unknown depth source 'depth_anythin': did you mean 'depth_anything'" in _error_line(capsys)

    config = _coco_config(coco_folder)
    config["data"]["dataset"] = "cocoo"
    assert main(["train", str(_write(tmp_path / "c.yaml", config))]) == 2
    assert "unknown dataset 'cocoo'" in _error_line(capsys)

    config = _coco_config(coco_folder)
    config["train"]["learning_rate"] = 0.1
    assert main(["train", str(_write(tmp_path / "d.yaml", config))]) == 2
    line = _error_line(capsys)
    assert "d.yaml: train.learning_rate: unknown key; allowed keys: epochs, batch_size" in line


def test_list_names_every_registry(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for expected in ("models: efficientvit-sam-demo", "fusions: add", "depth sources: constant", "datasets: coco"):
        assert expected in out


def test_predict_writes_a_mask_and_rejects_a_box_outside(tmp_path, capsys):
    image = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(image)
    assert main(["predict", "--model", "efficientvit-sam-demo", "--image", str(image), "--box", "5,5,40,30",
                 "--out", str(tmp_path / "mask.png")]) == 0
    mask = np.asarray(Image.open(tmp_path / "mask.png"))
    assert mask.shape == (48, 64) and set(np.unique(mask)) <= {0, 255}
    assert main(["predict", "--model", "efficientvit-sam-demo", "--image", str(image), "--box", "5,5,90,30",
                 "--out", str(tmp_path / "mask.png")]) == 2
    assert "box corner (90, 30) is outside the 64×48 image" in _error_line(capsys)
    assert main(["predict", "--model", "efficientvit-sam-demo", "--fusion", "add", "--image", str(image),
                 "--point", "10,10", "--out", str(tmp_path / "mask.png")]) == 2
    assert "needs --depth" in _error_line(capsys)


def test_depth_command_prepares_the_configured_source(coco_folder, tmp_path, capsys):
    config = _coco_config(coco_folder)
    config["depth"] = {"source": "file", "options": {"folder": str(coco_folder / "depth")}}
    assert main(["depth", str(_write(tmp_path / "d.yaml", config)), "--split", "val", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("val: COCO-format instances (instances.json, 3 images")
    assert "): 3 images, 0 computed, 0 already cached" in out and "by depth files from depth" in out


@pytest.mark.parametrize("command", [["eval", "CONFIG", "--out", "FILE/sub"], ["report", "RESULTS", "--out", "FILE/x"]])
def test_an_output_folder_under_a_regular_file_is_a_one_line_error(tmp_path, capsys, command):
    (tmp_path / "file.txt").write_text("a file, not a folder")
    config = _write(tmp_path / "run.yaml", {"eval": {"max_images": 1}})
    replace = {"CONFIG": str(config), "FILE/sub": str(tmp_path / "file.txt" / "sub"), "RESULTS": str(tmp_path),
               "FILE/x": str(tmp_path / "file.txt" / "x")}
    assert main([replace.get(word, word) for word in command]) == 2
    assert "file.txt is a file, not a folder" in _error_line(capsys)


def test_auto_threads_take_the_cores_other_processes_leave_idle(monkeypatch):
    from fusionlab.config import cpu_threads

    monkeypatch.delenv("FUSIONLAB_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    monkeypatch.setattr("os.getloadavg", lambda: (3.2, 1.0, 1.0))
    assert cpu_threads() == (5, "auto: 8 cores, 1-minute load 3.2")
    monkeypatch.setattr("os.getloadavg", lambda: (11.0, 1.0, 1.0))
    assert cpu_threads()[0] == 1
    monkeypatch.setenv("FUSIONLAB_THREADS", "3")
    assert cpu_threads() == (3, "FUSIONLAB_THREADS") and cpu_threads("2") == (2, "--threads")


def test_threads_option_sets_torch_threads_and_refuses_nonsense(tmp_path, capsys, caplog):
    import torch

    caplog.set_level(logging.INFO, logger="fusionlab")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # the option must change the count, not find it already set
        assert main(["--threads", "2", "demo-image", "--out", str(tmp_path / "s.png")]) == 0
        assert torch.get_num_threads() == 2
        assert "using 2 CPU thread(s) for torch (--threads)" in caplog.text
    finally:
        torch.set_num_threads(before)
    assert main(["--threads", "0", "demo-image", "--out", str(tmp_path / "t.png")]) == 2
    assert "--threads='0': expected a positive number of threads or 'auto'" in _error_line(capsys)
    assert not (tmp_path / "t.png").exists()
