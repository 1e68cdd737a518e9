"""make_report's files and figures."""
import io

import pandas as pd
import pytest
from matplotlib.patches import Rectangle

from fusionlab.errors import FusionlabError
from fusionlab.report import make_report, plots
from fusionlab.report.results import load_results

FILES = {"table.tex", "report.md", "report.csv", "miou.pdf", "miou.png", "tradeoff.pdf",
         "tradeoff.png"}


def test_default_out_dir_holds_exactly_the_report_files(full_report):
    out = full_report.paths["table.tex"].parent
    assert out.name == "report" and out.parent.name == "demo_sweep"
    assert set(full_report.paths) == FILES
    assert {p.name for p in out.iterdir()} == FILES
    assert full_report.paths["report.md"].read_text() == full_report.markdown


def test_figures_are_real_pdf_and_png(full_report):
    for stem in ("miou", "tradeoff"):
        assert full_report.paths[f"{stem}.pdf"].read_bytes()[:5] == b"%PDF-"
        assert full_report.paths[f"{stem}.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_out_dir_argument_is_used(tmp_path, sweep_writer):
    root = sweep_writer(tmp_path / "s", incomplete={("fusion_add", 0): ("FAIL", "x")})
    report = make_report(root, out_dir=tmp_path / "elsewhere", n_boot=50)
    assert {p.parent for p in report.paths.values()} == {tmp_path / "elsewhere"}
    assert not (root / "report").exists()


def test_miou_bars_are_seed_means_in_table_order(full_report):
    results = load_results(full_report.paths["table.tex"].parent.parent)
    figure = plots.miou_figure(results)
    bars = [p for p in figure.axes[0].patches if isinstance(p, Rectangle) and p.get_height() > 0]
    box_means = results.complete().groupby("variant", sort=False)["box_miou"].mean()
    # seaborn draws all box bars, then all 1-click bars.
    assert [b.get_height() for b in bars[:4]] == pytest.approx(box_means.tolist())
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == [
        "RGB only", "add_s3", "gated_s3", "zero depth"]


def test_tradeoff_points_sit_at_cost_and_accuracy(full_report):
    results = load_results(full_report.paths["table.tex"].parent.parent)
    summary = pd.read_csv(full_report.paths["report.csv"])
    figure = plots.tradeoff_figure(summary, results)
    labels = {t.get_text(): t.xy for t in figure.axes[0].texts}
    means = summary.set_index(["variant", "metric"])["mean"]
    assert labels["add_s3"] == pytest.approx((means[("fusion_add", "params_m")],
                                              means[("fusion_add", "box_miou")]))


def test_legend_of_the_miou_figure_hides_no_bar(full_report):
    results = load_results(full_report.paths["table.tex"].parent.parent)
    figure = plots.miou_figure(results)
    figure.savefig(io.BytesIO(), format="png", dpi=200)
    renderer = figure.canvas.get_renderer()
    ax = figure.axes[0]
    legend = ax.get_legend().get_window_extent(renderer)
    bars = [p.get_window_extent(renderer) for p in ax.patches
            if isinstance(p, Rectangle) and p.get_height() > 0]
    assert len(bars) == 8
    assert not any(legend.overlaps(bar) for bar in bars)
    assert figure.bbox.contains(legend.x0, legend.y0) and figure.bbox.contains(legend.x1,
                                                                                legend.y1)


def test_a_sweep_with_no_complete_trial_is_refused_and_writes_nothing(tmp_path, sweep_writer):
    states = ["FAIL"] * 6 + ["RUNNING"] * 4
    cells = [(v, s) for v in ("rgb_only", "fusion_add", "fusion_gated", "depth_zero")
             for s in range(3)]
    root = sweep_writer(tmp_path / "x", incomplete={c: (state, "NaN loss" if state == "FAIL"
                                                       else "")
                                                    for c, state in zip(cells, states)},
                        missing=cells[10:])
    with pytest.raises(FusionlabError) as err:
        make_report(root, out_dir=tmp_path / "out", n_boot=10)
    assert str(err.value) == (f"{root}: no COMPLETE trial yet (12 cells: 6 FAIL, 4 RUNNING, "
                              f"2 MISSING); run the sweep first, see {root / 'trials.csv'}")
    with pytest.raises(FusionlabError, match="no COMPLETE trial yet"):
        make_report(root, n_boot=10)
    assert not (tmp_path / "out").exists() and not (root / "report").exists()


def test_a_sweep_with_one_complete_trial_is_reported(tmp_path, sweep_writer):
    cells = [(v, s) for v in ("rgb_only", "fusion_add", "fusion_gated", "depth_zero")
             for s in range(3)]
    root = sweep_writer(tmp_path / "s", incomplete={c: ("RUNNING", "") for c in cells[1:]})
    report = make_report(root, n_boot=10)
    assert set(report.paths) == FILES
    assert "partial: 1 of 12 cells complete" in report.markdown
