"""Sweep YAML errors are one line with their YAML path, found before anything trains; grids expand."""
from __future__ import annotations

import copy
import os

import pytest

from fusionlab.errors import FusionlabError
from fusionlab.sweep import load_sweep


def _error(path) -> str:
    with pytest.raises(FusionlabError) as err:
        load_sweep(path)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_misspelt_key_in_a_variant_names_its_path(make_sweep):
    variants = [{"name": "add", "model": {"fusion": "add"}}, {"name": "cat", "model": {"fusoin": "concat"}}]
    message = _error(make_sweep(variants=variants))
    assert "variants[1].model.fusoin: unknown key" in message
    assert "fusion" in message.split("allowed keys:")[1]


def test_unknown_fusion_name_suggests_close_matches(make_sweep):
    message = _error(make_sweep(variants=[{"name": "x", "model": {"fusion": "concatt"}}]))
    assert "variants[0]" in message and "'concatt'" in message and "did you mean 'concat'" in message


def test_unknown_sweep_level_key_lists_the_allowed_ones(make_sweep):
    message = _error(make_sweep(seed=[0]))
    assert "sweep.yaml: seed: unknown key; did you mean 'seeds'? allowed keys: name, storage" in message


def test_grid_expands_to_named_variants_with_groups_and_the_baseline(make_sweep):
    sweep = load_sweep(make_sweep(variants=[], grid={"model.fusion": ["add", "concat"],
                                                     "depth.source": ["dataset", "shuffled"]}))
    assert [(v.name, v.group) for v in sweep.variants] == [
        ("rgb_only", "baseline"), ("add_dataset", "fusion"), ("add_shuffled", "control"),
        ("concat_dataset", "fusion"), ("concat_shuffled", "control")]
    assert sweep.variants[0].config.model.fusion is None
    assert len(sweep.cells()) == 10 and len({c.key for c in sweep.cells()}) == 10
    assert sweep.variants[2].config.depth.source == "shuffled"


def test_overrides_change_the_cell_keys_and_dry_run_lists_pending_cells(sweep, make_sweep, capsys):
    config = make_sweep()
    keys = {c.key for c in load_sweep(config).cells()}
    changed = {c.key for c in load_sweep(config, ["base.train.lr=0.001"]).cells()}
    assert keys.isdisjoint(changed)  # a changed recipe never reuses old results
    assert {c.key for c in load_sweep(config, ["base.train.device=cuda"]).cells()} == keys
    assert sweep(config, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "0/4 cells complete" in out and out.count("pending") == 4
    assert not (config.parent / "results").exists()


def _keys(config, *overrides) -> dict:
    return {c.variant.name: c.key for c in load_sweep(config, list(overrides)).cells() if c.seed == 0}


@pytest.mark.parametrize("override", ["base.depth.source=noise", "base.eval.drop_depth=true",
                                      "base.model.fusion_point=neck_inputs", "base.model.init_depth_from_rgb=false",
                                      "base.train.lr_multipliers={fusion: 20}"])
def test_fields_only_the_depth_branch_reads_keep_the_baseline_s_key(make_sweep, override):
    config = make_sweep()
    before, after = _keys(config), _keys(config, override)
    assert after["rgb_only"] == before["rgb_only"]
    assert after["add"] != before["add"]


def test_the_checkpoint_counts_by_its_contents_not_its_path(make_sweep, tiny_base, workdir):
    checkpoint = workdir / "weights.safetensors"
    checkpoint.write_bytes(b"first weights")
    config = make_sweep(base={**tiny_base, "model": {"checkpoint": "weights.safetensors"}})
    first = _keys(config)
    os.utime(checkpoint, ns=(1, 1))  # touched, same contents
    assert _keys(config) == first
    checkpoint.write_bytes(b"other weights")
    assert set(_keys(config).values()).isdisjoint(first.values())


def test_a_finished_baseline_is_kept_when_only_depth_settings_change(sweep, make_sweep, capsys):
    config = make_sweep(seeds=[0])
    assert sweep(config) == 0
    capsys.readouterr()
    assert sweep(config, "--dry-run", "--set", "base.depth.source=noise", "--set", "base.eval.drop_depth=true") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[4] for line in lines[1:3]] == ["COMPLETE", "pending"]  # rgb_only kept, add to run


def test_an_empty_sweep_file_is_refused_not_run_as_a_baseline_only_sweep(workdir):
    path = workdir / "empty.yaml"
    path.write_text("# nothing yet\n")
    message = _error(path)
    assert message.startswith(f"{path}: no variants and no grid: nothing to compare with the RGB-only baseline")


def test_a_section_given_twice_is_refused_with_both_lines(workdir):
    path = workdir / "twice.yaml"
    path.write_text("name: x\nbase:\n  train: {lr: 1.0e-4}\nvariants: [{name: add, model: {fusion: add}}]\n"
                    "base:\n  train: {lr: 1.0e-3}\n")
    assert _error(path) == (f"{path}: invalid YAML at line 5, column 1: key 'base' appears twice (first at line 2); "
                            "merge the two into one")


def test_plugins_under_base_are_imported(make_sweep, tiny_base, workdir):
    (workdir / "base_plugin.py").write_text(
        "import torch\nfrom fusionlab import FusionBlock, register_fusion\n\n\n"
        "@register_fusion('base_plugin_add')\nclass Add(FusionBlock):\n"
        "    def forward(self, rgb_feats, depth_feats):\n        return rgb_feats\n")
    config = make_sweep(base={**tiny_base, "plugins": ["base_plugin"]},
                        variants=[{"name": "p", "model": {"fusion": "base_plugin_add"}}])
    assert [v.config.model.fusion for v in load_sweep(config).variants] == [None, "base_plugin_add"]


@pytest.mark.parametrize("model, expected", [
    ({"grid": "big"}, "base.model.grid: expected an integer or null, got a string 'big'"),
    ({"fusion": "add", "fusion_point": "stage9"}, "model: fusion_point 'stage9' is not a point of this model"),
    ({"overrides": {"grid": 8}}, "base.model.overrides: unknown key; allowed keys: preset, checkpoint"),
    ({"fusion": "add", "fusion_kwargs": {"alpah": "channel"}},
     "model.fusion_kwargs.alpah: unknown option of fusion block 'add'; did you mean 'alpha'?"),
])
def test_model_fields_are_checked_under_their_own_names(make_sweep, tiny_base, model, expected):
    assert expected in _error(make_sweep(base={**tiny_base, "model": model}))


@pytest.mark.parametrize("base, variant, expected", [
    ({"data": {"train": {"split": "train", "num_images": "x"}}}, {},
     "data.train.num_images: expected an integer or null (option of dataset 'synthetic'), got a string 'x'"),
    ({"data": {"val": {"split": "val", "camouflage": "high"}}}, {},
     "data.val.camouflage: expected a number (option of dataset 'synthetic'), got a string 'high'"),
    ({}, {"model": {"fusion": "cross_attention", "fusion_kwargs": {"num_heads": 2.5}}},
     "model.fusion_kwargs.num_heads: expected an integer (option of fusion block 'cross_attention'), got a number 2.5"),
    ({}, {"depth": {"source": "noise", "options": {"seed": True}}},
     "depth.options.seed: expected an integer (option of depth source 'noise'), got a boolean True"),
])
def test_option_values_of_registry_entries_are_type_checked_at_load(make_sweep, tiny_base, base, variant, expected):
    config = copy.deepcopy(tiny_base)
    for key, value in base.items():
        config[key] = {**config[key], **value}
    assert expected in _error(make_sweep(base=config, variants=[{"name": "v", "model": {"fusion": "add"}, **variant}]))
