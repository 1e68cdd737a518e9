"""A numeric grid key is the sweep's axis: every variant, the baseline included, at every value."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from fusionlab.errors import FusionlabError
from fusionlab.report import make_report
from fusionlab.sweep import load_sweep

AXIS = {"data.train.num_images": [2, 4]}
VARIANTS = [{"name": "add", "group": "fusion", "model": {"fusion": "add"}},
            {"name": "shuffled", "group": "control", "model": {"fusion": "add"}, "depth": {"source": "shuffled"}}]


def _error(path) -> str:
    with pytest.raises(FusionlabError) as err:
        load_sweep(path)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_every_variant_and_the_baseline_run_at_every_axis_value(make_sweep):
    sweep = load_sweep(make_sweep(grid=AXIS, variants=VARIANTS))
    assert sweep.axis is not None and sweep.axis.key == "data.train.num_images" and sweep.axis.values == (2, 4)
    assert [(v.name, v.group, v.design, v.axis_value, v.baseline) for v in sweep.variants] == [
        ("rgb_only@num_images=2", "baseline", "rgb_only", 2, "rgb_only@num_images=2"),
        ("add@num_images=2", "fusion", "add", 2, "rgb_only@num_images=2"),
        ("shuffled@num_images=2", "control", "shuffled", 2, "rgb_only@num_images=2"),
        ("rgb_only@num_images=4", "baseline", "rgb_only", 4, "rgb_only@num_images=4"),
        ("add@num_images=4", "fusion", "add", 4, "rgb_only@num_images=4"),
        ("shuffled@num_images=4", "control", "shuffled", 4, "rgb_only@num_images=4")]
    assert [v.config.data.train["num_images"] for v in sweep.variants] == [2, 2, 2, 4, 4, 4]
    assert sweep.variants[2].config.depth.source == "shuffled"
    assert [v.label for v in sweep.variants[:2]] == ["RGB only, num_images=2", "add, num_images=2"]
    assert sweep.baseline.name == "rgb_only@num_images=2"
    keys = [c.key for c in sweep.cells()]
    assert len(keys) == 12 and len(set(keys)) == 12


def test_categorical_grid_keys_make_the_designs_crossed_with_the_axis(make_sweep):
    sweep = load_sweep(make_sweep(variants=[], grid={"model.fusion": ["add", "concat"], "train.lr": [1.0e-4, 1.0e-3]}))
    assert sweep.axis.key == "train.lr"
    assert [v.name for v in sweep.variants] == [
        "rgb_only@lr=0.0001", "add@lr=0.0001", "concat@lr=0.0001",
        "rgb_only@lr=0.001", "add@lr=0.001", "concat@lr=0.001"]
    assert sweep.variants[5].config.train.lr == 1.0e-3 and sweep.variants[5].config.model.fusion == "concat"


def test_an_axis_alone_crosses_the_base_when_it_fuses(make_sweep, tiny_base):
    tiny_base["model"] = {"fusion": "gated"}
    sweep = load_sweep(make_sweep(base=tiny_base, variants=[], grid={"train.max_steps": [1, 2]}))
    assert [v.name for v in sweep.variants] == ["rgb_only@max_steps=1", "gated@max_steps=1",
                                                "rgb_only@max_steps=2", "gated@max_steps=2"]


@pytest.mark.parametrize("keys, expected", [
    ({"grid": {"train.lr": [1.0e-4], "train.max_steps": [1, 2]}},
     "grid: train.lr and train.max_steps are both numeric; a sweep has one numeric axis"),
    ({"grid": AXIS, "variants": [{"name": "add", "model": {"fusion": "add"},
                                  "data": {"train": {"num_images": 3}}}]},
     "variants[0]: sets data.train.num_images, which grid.data.train.num_images sweeps as the axis"),
    ({"grid": AXIS, "variants": []}, "grid.data.train.num_images sweeps only the RGB-only baseline: nothing to "
                                     "compare with it"),
    ({"grid": {"data.train.num_images": [2, 2]}}, "grid.data.train.num_images=[2, 2]: a value is repeated"),
    ({"variants": [{"name": "add@x", "model": {"fusion": "add"}}]}, "variants[0].name: 'add@x': '@' is kept"),
])
def test_bad_axes_are_refused_with_their_yaml_path(make_sweep, keys, expected):
    message = _error(make_sweep(**keys))
    assert expected in message, message


def test_a_reference_variant_has_no_place_on_an_axis(make_sweep, tmp_path):
    (tmp_path / "released.pt").write_bytes(b"x")
    variants = VARIANTS[:1] + [{"name": "l2", "group": "reference", "model": {"checkpoint": "released.pt"}}]
    message = _error(make_sweep(grid=AXIS, variants=variants))
    assert "variants[1]: a reference variant (a released model, not trained) has no place on the axis" in message


def test_an_axis_sweep_runs_and_reports_its_curve(make_sweep, sweep, workdir):
    config = make_sweep(grid=AXIS, variants=VARIANTS[:1], seeds=[0])
    assert sweep(config, "--workers", "1") == 0
    results = workdir / "results" / "tiny"
    plan = json.loads((results / "sweep.json").read_text())
    assert plan["axis"] == {"key": "data.train.num_images", "values": [2, 4]}
    assert plan["baseline"] == "rgb_only@num_images=2"
    assert [(v["design"], v["axis_value"], v["baseline"]) for v in plan["variants"]] == [
        ("rgb_only", 2, "rgb_only@num_images=2"), ("add", 2, "rgb_only@num_images=2"),
        ("rgb_only", 4, "rgb_only@num_images=4"), ("add", 4, "rgb_only@num_images=4")]
    report = make_report(results, n_boot=50)
    assert report.paths["curve.png"].stat().st_size > 0
    table = pd.read_csv(report.paths["report.csv"])
    add = table[(table["metric"] == "box_miou") & (table["design"] == "add")]
    assert add["baseline"].tolist() == ["rgb_only@num_images=2", "rgb_only@num_images=4"]
    assert add["delta"].notna().all()
