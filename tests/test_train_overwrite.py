"""``fusionlab train --out DONE --overwrite``: the finished run stays byte-identical until its replacement
has trained and been evaluated; only then is it swapped in."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from fusionlab.cli import main

pytestmark = pytest.mark.usefixtures("small_world")

SPLIT = {"num_images": 4, "image_size": 64, "root": "data"}  # the scenes are generated beside the config
RUN = {"data": {"train": {"split": "train", **SPLIT}, "val": {"split": "val", **SPLIT}},
       "train": {"steps": 2, "batch_size": 2, "masks_per_image": 4, "device": "cpu"},
       "eval": {"prompts": ["box"], "device": "cpu"}}


def files(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_failed_replacement_leaves_the_finished_run_as_it_was_and_a_good_one_replaces_it(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(RUN))
    run = tmp_path / "run"
    assert main(["train", str(path), "--out", str(run)]) == 0
    finished = files(run)
    assert Path("train_done.json") in finished and Path("metrics.json") in finished

    # broken data that every check before training passes: the training images themselves are unreadable
    images = sorted((tmp_path / "data").glob("*/train/images/*"))
    assert images
    for image in images:
        image.write_bytes(b"not an image")
    assert main(["train", str(path), "--out", str(run), "--overwrite"]) == 2
    assert "images" in capsys.readouterr().err
    assert files(run) == finished

    shutil.rmtree(tmp_path / "data")  # generated again, intact
    assert main(["train", str(path), "--out", str(run), "--overwrite", "--set", "train.seed=1"]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["seed"] == 1
    assert json.loads((run / "train_done.json").read_text())["steps"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "run", "run.yaml"]  # no staging folder left
