"""A sweep with a numeric axis: Δ against the baseline at the same value, one table block per value,
and the curve figure (conftest.AXIS_VARIANTS: add is +8, +4, +0.5 points at 25, 50, 100 images)."""
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from fusionlab.errors import FusionlabError
from fusionlab.report import curve, make_report, plots
from fusionlab.report.loading import load_results
from fusionlab.report.stats import summarize

from .conftest import ADD_GAIN, AXIS_VALUES, AXIS_VARIANTS, write_sweep

PNG = b"\x89PNG\r\n\x1a\n"


def _root(report):
    return report.paths["table.tex"].parent.parent


def test_each_variant_is_compared_with_the_baseline_at_its_own_value(axis_report):
    table = pd.read_csv(axis_report.paths["report.csv"])
    box = table[table["metric"] == "box_miou"].set_index("variant")
    for value, gain in ADD_GAIN.items():
        row = box.loc[f"add@num_images={value}"]
        assert row["baseline"] == f"rgb_only@num_images={value}"
        assert row["data.train.num_images"] == value and row["design"] == "add"
        assert row["ci_low"] < 100 * gain < row["ci_high"]
        assert box.loc[f"gated@num_images={value}", "ci_low"] < 0 < box.loc[f"gated@num_images={value}", "ci_high"]
    # against a single baseline (the first value's), add at 100 images would look 6 points better
    assert box.loc["add@num_images=100", "delta"] < 1.5
    assert box.loc["rgb_only@num_images=100", "delta"] != box.loc["rgb_only@num_images=100", "delta"]  # NaN


def test_holm_family_spans_every_axis_value(axis_report):
    table = pd.read_csv(axis_report.paths["report.csv"])
    box = table[(table["metric"] == "box_miou") & table["p_value"].notna()]
    assert len(box) == 6  # add and gated at three values
    assert (box["p_holm"] >= box["p_value"]).all()


def test_markdown_table_has_one_block_per_value_with_its_value_at_the_start(axis_report):
    lines = [line for line in axis_report.markdown.splitlines() if line.startswith("| ")]
    header, rows = lines[0], lines[1:10]
    assert header.startswith("| num_images | Group | Variant |")
    cells = [[c.strip() for c in row.split("|")[1:4]] for row in rows]
    assert cells == [["25", "baseline", "RGB only"], ["", "fusion", "add"], ["", "", "gated"],
                     ["50", "baseline", "RGB only"], ["", "fusion", "add"], ["", "", "gated"],
                     ["100", "baseline", "RGB only"], ["", "fusion", "add"], ["", "", "gated"]]
    # bold is the best within a block: add at every value, though RGB only at 100 beats add at 25
    assert [row.split("|")[4].strip().startswith("**") for row in rows] == [False, True, False] * 3
    assert "One block per value of data.train.num_images" in axis_report.markdown


def test_latex_table_has_a_header_row_per_value(axis_report):
    latex = axis_report.paths["table.tex"].read_text()
    titles = [line for line in latex.splitlines() if line.startswith(r"\multicolumn")]
    assert titles == [rf"\multicolumn{{11}}{{@{{}}l}}{{\textit{{num\_images = {v}}}}} \\" for v in AXIS_VALUES]
    body = latex.split(titles[0])[1]
    assert body.count(r"\midrule") == 2 + 3  # before each later block, and between the groups of each (baseline | fusion)


def test_report_writes_the_curve_figure(axis_report):
    for suffix, magic in (("pdf", b"%PDF-"), ("png", PNG)):
        assert axis_report.paths[f"curve.{suffix}"].read_bytes()[:len(magic)] == magic


def test_curve_points_give_the_means_bands_and_deltas_of_the_summary(axis_report):
    results = load_results(_root(axis_report))
    summary = summarize(results, n_boot=500)
    points = curve.curve_points(summary, results).set_index(["design", "axis_value"])
    box = summary[summary["metric"] == "box_miou"].set_index("variant")
    for value in AXIS_VALUES:
        add, base = points.loc[("add", value)], points.loc[("rgb_only", value)]
        assert add["delta"] == pytest.approx(box.loc[f"add@num_images={value}", "delta"])
        assert base["delta"] == 0.0 and not base["significant"]
        assert add["band_low"] < add["mean"] < add["band_high"]
        # three seeds: the 95 % t-interval is mean ± 4.30 std / sqrt(3)
        std = box.loc[f"add@num_images={value}", "std"]
        assert add["band_high"] - add["mean"] == pytest.approx(4.302653 * std / np.sqrt(3), rel=1e-5)
    assert points.loc[("add", 25), "significant"] and not points.loc[("gated", 25), "significant"]


def test_curve_figure_draws_a_line_per_design_and_its_gain_on_the_right(axis_report):
    results = load_results(_root(axis_report))
    summary = summarize(results, n_boot=500)
    figure = curve.curve_figure(summary, results)
    left, right = figure.axes[:2]
    lines = {line.get_label(): line for line in left.get_lines()}
    assert set(lines) == {"RGB only", "add", "gated"}
    assert list(lines["add"].get_xdata()) == list(AXIS_VALUES)
    gains = {line.get_label(): list(line.get_ydata()) for line in right.get_lines()}
    assert "RGB only" not in gains or gains["RGB only"] == [0.0, 0.0]  # only the zero line
    box = summary[summary["metric"] == "box_miou"].set_index("variant")
    assert gains["add"] == pytest.approx([box.loc[f"add@num_images={v}", "delta"] for v in AXIS_VALUES])
    assert left.get_xscale() == "log" and [t.get_text() for t in left.get_xticklabels()] == ["25", "50", "100"]


def test_a_sweep_without_an_axis_has_no_curve(full_report):
    assert "curve.png" not in full_report.paths


def test_an_axis_value_outside_the_axis_is_refused(tmp_path):
    root = write_sweep(tmp_path / "s", variants=AXIS_VARIANTS,
                       axis={"key": "data.train.num_images", "values": [25, 50]})
    with pytest.raises(FusionlabError) as err:
        load_results(root)
    assert str(err.value).startswith(f"{root / 'sweep.json'}: variants[6]: axis_value=100; expected one of")


def test_a_malformed_axis_is_refused(tmp_path):
    root = write_sweep(tmp_path / "s", variants=AXIS_VARIANTS, axis={"key": "data.train.num_images", "values": []})
    with pytest.raises(FusionlabError, match=r"axis: expected .* a non-empty list of numbers"):
        load_results(root)


def test_a_partial_axis_sweep_reports_what_is_done(tmp_path):
    missing = [(v.name, s) for v in AXIS_VARIANTS if v.keys["axis_value"] == 100 for s in (0, 1, 2)]
    root = write_sweep(tmp_path / "s", variants=AXIS_VARIANTS, missing=missing,
                       axis={"key": "data.train.num_images", "values": list(AXIS_VALUES)})
    report = make_report(root, n_boot=50)
    assert "no complete trial of the baseline 'rgb_only@num_images=100'" in report.markdown
    points = curve.curve_points(summarize(load_results(root), n_boot=50), load_results(root))
    assert sorted(set(points["axis_value"])) == [25, 50]
    assert json.loads((root / "sweep.json").read_text())["axis"]["values"] == list(AXIS_VALUES)


def test_the_frontier_of_an_axis_sweep_compares_the_designs_at_the_last_value(axis_report):
    results = load_results(_root(axis_report))
    figure = plots.frontier_figure(summarize(results, n_boot=50), results)
    labels = {text.get_text() for text in figure.axes[1].texts}
    assert labels == {"RGB only", "add", "gated"}
    assert "at num_images = 100" in figure._suptitle.get_text()


def test_columns_no_trial_measured_are_left_out_with_their_caption(tmp_path):
    nan = float("nan")
    variants = [replace(v, latency=None) for v in AXIS_VARIANTS]
    root = write_sweep(tmp_path / "s", variants=variants, baseline_latency=(nan, nan, nan),
                       axis={"key": "data.train.num_images", "values": list(AXIS_VALUES)})
    report = make_report(root, n_boot=50)
    header = next(line for line in report.markdown.splitlines() if line.startswith("| num_images"))
    assert "Latency" not in header and "GMACs" in header
    assert "latency relative to" not in report.markdown and "for latency" not in report.markdown
