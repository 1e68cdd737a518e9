"""``fusionlab depth SWEEP.yaml`` precomputes every depth map a sweep's cells need, once."""
from __future__ import annotations

import yaml

from fusionlab.cli import main
from fusionlab.data import build_dataset
from fusionlab.depth import build_depth_source

DATA = {"train": {"split": "train", "num_images": 3, "image_size": 64},
        "val": {"split": "val", "num_images": 2, "image_size": 64}}


def test_depth_on_a_sweep_fills_the_cache_of_every_variant_that_needs_depth(tiny_depth_anything, tmp_path,
                                                                            monkeypatch, capsys):
    monkeypatch.setenv("FUSIONLAB_CACHE", str(tmp_path / "cache"))
    depth = {"model": str(tiny_depth_anything), "device": "cpu"}
    da = {"source": "depth_anything", "options": depth}
    sweep = {"name": "d", "seeds": [0], "base": {"data": DATA, "depth": {"source": "noise"}},
             "variants": [{"name": "add", "model": {"fusion": "add"}, "depth": da},
                          {"name": "noisy", "group": "control", "model": {"fusion": "add"}},
                          {"name": "dropped", "model": {"fusion": "add"}, "depth": da, "eval": {"drop_depth": True}}]}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    assert main(["depth", str(path), "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # add: train + val; noise: train + val (on the fly); dropped: train only, and it is add's train job
    assert [line.split(":")[0] for line in lines] == ["train", "val", "train", "val"]
    assert "3 images, 3 computed, 0 already cached" in lines[0] and "2 computed" in lines[1]
    source = build_depth_source("depth_anything", **depth)
    for split, count in (("train", 3), ("val", 2)):
        counts = source.prepare(build_dataset("synthetic", **DATA[split]), progress=False)
        assert (counts["computed"], counts["cached"]) == (0, count)
    assert main(["depth", str(path), "--quiet", "--split", "val"]) == 0
    assert "0 computed, 2 already cached" in capsys.readouterr().out.splitlines()[0]


def test_depth_on_a_run_config_with_an_rgb_only_model_says_there_is_nothing_to_do(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"data": DATA}))
    assert main(["depth", str(path)]) == 0
    assert "nothing to precompute: no run in it feeds depth to a model" in capsys.readouterr().out
