"""Loading a results folder: one-line errors on bad input, one row per (variant, seed) cell."""
import json

import pandas as pd
import pytest

from fusionlab.errors import FusionlabError
from fusionlab.report import make_report
from fusionlab.report.loading import load_results


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_empty_folder_names_the_path_and_the_expected_files(tmp_path):
    with pytest.raises(FusionlabError) as err:
        make_report(tmp_path)
    message = _one_line(err)
    assert str(tmp_path) in message and "sweep.json" in message and "trials.csv" in message


def test_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(FusionlabError, match="not a folder"):
        load_results(tmp_path / "nope")


def test_sweep_without_trials_csv_names_it(tmp_path, sweep_writer):
    root = sweep_writer(tmp_path / "s")
    (root / "trials.csv").unlink()
    with pytest.raises(FusionlabError, match=r"no trials\.csv"):
        load_results(root)


def test_missing_sweep_key_is_named(tmp_path, sweep_writer):
    root = sweep_writer(tmp_path / "s")
    sweep = json.loads((root / "sweep.json").read_text())
    del sweep["baseline"]
    (root / "sweep.json").write_text(json.dumps(sweep))
    with pytest.raises(FusionlabError, match="missing key 'baseline'"):
        load_results(root)


@pytest.mark.parametrize("column, value, expected", [
    ("state", "DONE", "state='DONE'; expected one of"),
    ("variant", "ghost", "variant='ghost'; expected a variant of sweep.json"),
    ("seed", "x", "seed='x'; expected an integer"),
    ("box_miou", "62,1", "box_miou='62,1'; expected a number"),
])
def test_bad_trials_csv_values_are_named(tmp_path, sweep_writer, column, value, expected):
    root = sweep_writer(tmp_path / "s")
    trials = pd.read_csv(root / "trials.csv")
    trials[column] = trials[column].astype(object)
    trials.loc[0, column] = value
    trials.to_csv(root / "trials.csv", index=False)
    with pytest.raises(FusionlabError) as err:
        load_results(root)
    assert expected in _one_line(err)


def test_complete_trial_without_instances_names_the_file(tmp_path, sweep_writer):
    root = sweep_writer(tmp_path / "s")
    (root / "trials" / "4" / "instances.csv").unlink()
    with pytest.raises(FusionlabError) as err:
        make_report(root, n_boot=10)
    assert str(root / "trials" / "4" / "instances.csv") in _one_line(err)


def test_a_retried_cell_counts_once_with_its_complete_row(tmp_path, sweep_writer):
    root = sweep_writer(tmp_path / "s")
    trials = pd.read_csv(root / "trials.csv")
    failed = trials.iloc[[0]].assign(trial_id=99, state="FAIL", box_miou=float("nan"), error="OOM")
    pd.concat([failed, trials]).to_csv(root / "trials.csv", index=False)
    results = load_results(root)
    assert len(results.cells) == 12
    assert results.complete()["trial_id"].tolist()[0] == "0"


def test_cells_list_planned_cells_without_a_row_as_missing(tmp_path, sweep_writer):
    root = sweep_writer(tmp_path / "s", missing=[("fusion_add", 1)])
    cells = load_results(root).cells.set_index(["variant", "seed"])
    assert cells.loc[("fusion_add", 1), "state"] == "MISSING"
    assert len(cells) == 12


def test_a_sweep_json_from_before_the_depth_encoder_keys_reads_as_same(tmp_path, sweep_writer):
    sweep = load_results(sweep_writer(tmp_path / "s")).sweep
    assert [(v.depth_encoder, v.depth_size) for v in sweep.ordered_variants()] == [
        (None, None), ("same", None), ("same", None), ("same", None)]


def test_depth_encoder_and_depth_size_are_read(tmp_path, sweep_writer, encoder_variants):
    sweep = load_results(sweep_writer(tmp_path / "s", variants=encoder_variants)).sweep
    assert sweep.variant("mobilenet").depth_encoder == "timm:mobilenetv3_small_050"
    assert (sweep.variant("same_256").depth_encoder, sweep.variant("same_256").depth_size) == (
        "same", 256)
    assert sweep.variant("rgb_only").depth_encoder is None


@pytest.mark.parametrize("value", [0, "256", 1.5, True])
def test_a_bad_depth_size_is_named(tmp_path, sweep_writer, encoder_variants, value):
    root = sweep_writer(tmp_path / "s", variants=encoder_variants)
    sweep = json.loads((root / "sweep.json").read_text())
    sweep["variants"][6]["depth_size"] = value
    (root / "sweep.json").write_text(json.dumps(sweep))
    with pytest.raises(FusionlabError) as err:
        load_results(root)
    assert f"variants[6]: depth_size={value!r}; expected a positive integer" in _one_line(err)
