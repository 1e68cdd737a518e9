"""Boundary IoU in the report, where depth helps (where.png, the depth-edge tercile table), the
two-level CI, and results from before Boundary IoU."""
import pandas as pd
import pytest

from fusionlab.errors import FusionlabError
from fusionlab.report import make_report
from fusionlab.report.loading import load_results
from fusionlab.report.where import where_table


@pytest.fixture(scope="module")
def boundary_report(boundary_results, tmp_path_factory):
    return make_report(boundary_results, out_dir=tmp_path_factory.mktemp("out"), n_boot=400)


def _summary(report):
    return pd.read_csv(report.paths["report.csv"]).set_index(["variant", "metric"])


def test_the_table_gives_box_biou_and_its_delta_with_ci_and_holm(boundary_report):
    summary = _summary(boundary_report)
    # biou is 0.7 x iou: add's +5 IoU points are +3.5 BIoU points
    add = summary.loc[("fusion_add", "box_biou")]
    assert add["delta"] == pytest.approx(3.5, abs=0.3) and add["ci_low"] < add["delta"] < add["ci_high"]
    assert add["p_holm"] >= add["p_value"] and bool(add["significant"])
    assert pd.isna(summary.loc[("rgb_only", "box_biou"), "delta"])
    markdown = boundary_report.markdown
    assert "| Box BIoU |" in markdown and "Δ box BIoU [95% CI]" in markdown
    assert "BIoU: Boundary IoU × 100" in markdown and "rescore" not in markdown
    latex = boundary_report.paths["table.tex"].read_text()
    assert r"$\Delta$ box BIoU" in latex and r"\label{tab:demo-sweep-where}" in latex


def test_where_figure_and_the_depth_edge_terciles_with_a_flat_control(boundary_report):
    assert boundary_report.paths["where.png"].stat().st_size > 0 and boundary_report.paths["where.pdf"].is_file()
    section = boundary_report.markdown.split("## Where depth helps: Δ by depth-edge tercile", 1)[1]
    assert "| add_s3 | Δ IoU |" in section and "| zero depth | Δ BIoU |" in section
    assert "Controls: Δ within its 95 % CI of 0 in every depth-edge bin" in section


def test_where_rows_are_binned_in_terciles_with_a_ci_each(boundary_results):
    table = where_table(load_results(boundary_results), ["fusion_add", "depth_zero"], n_boot=200)
    assert len(table) == 2 * 2 * 2 * 3  # variants x scores x attributes x terciles
    assert table.groupby(["variant", "score", "attribute"])["n"].sum().eq(200).all()
    add_iou = table[(table["variant"] == "fusion_add") & (table["score"] == "iou")]
    assert add_iou["delta"].between(4.0, 6.0).all() and (add_iou["ci_low"] < add_iou["ci_high"]).all()


def test_seeds_and_instances_ci_is_wider_and_says_so(boundary_results, tmp_path):
    report = make_report(boundary_results, out_dir=tmp_path, n_boot=400, ci="seeds+instances")
    two_level, default = _summary(report), _summary(make_report(boundary_results, out_dir=tmp_path / "i",
                                                                n_boot=400))
    for metric in ("box_miou", "box_biou"):
        wide, narrow = two_level.loc[("fusion_add", metric)], default.loc[("fusion_add", metric)]
        assert wide["delta"] == pytest.approx(narrow["delta"])
        assert wide["ci_high"] - wide["ci_low"] >= narrow["ci_high"] - narrow["ci_low"]
    assert "two-level paired bootstrap CI, over seeds then instances" in report.markdown


def test_fewer_than_three_seeds_to_resample_is_warned(sweep_writer, tmp_path):
    root = sweep_writer(tmp_path / "demo_sweep", with_boundary=True)
    sweep = root / "sweep.json"
    sweep.write_text(sweep.read_text().replace('"seeds": [0, 1, 2]', '"seeds": [0, 1]'))
    report = make_report(root, n_boot=100, ci="seeds+instances")
    assert "only 2 seed(s) to resample" in report.markdown


def test_older_results_report_as_before_with_one_line_on_what_is_missing(full_report):
    lines = [line for line in full_report.markdown.splitlines() if "rescore" in line]
    assert lines == [f"no Boundary IoU nor instance attributes in these results (evaluated before they existed): "
                     f"`fusionlab rescore {full_report.paths['report.md'].parent.parent}` adds them from the saved "
                     f"predictions, then report again"]
    assert "where.png" not in full_report.paths and "BIoU" not in full_report.paths["table.tex"].read_text()


def test_an_unknown_where_variant_or_ci_is_a_one_line_error(boundary_results, tmp_path):
    with pytest.raises(FusionlabError, match="where variant 'nope'"):
        make_report(boundary_results, out_dir=tmp_path, where_variants=["nope"])
    with pytest.raises(FusionlabError, match="ci='seeds'"):
        make_report(boundary_results, out_dir=tmp_path, ci="seeds")
