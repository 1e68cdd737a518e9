"""make_report's files and figures."""
import io
from dataclasses import replace

import pandas as pd
import pytest
from matplotlib.patches import Rectangle

from fusionlab.errors import FusionlabError
from fusionlab.report import frontier, make_report, plots
from fusionlab.report.loading import load_results
from fusionlab.report.stats import summarize

FILES = {"table.tex", "report.md", "report.csv", "miou.pdf", "miou.png", "frontier.pdf",
         "frontier.png"}


def test_default_out_dir_holds_exactly_the_report_files(full_report):
    out = full_report.paths["table.tex"].parent
    assert out.name == "report" and out.parent.name == "demo_sweep"
    assert set(full_report.paths) == FILES
    assert {p.name for p in out.iterdir()} == FILES
    assert full_report.paths["report.md"].read_text() == full_report.markdown


def test_an_empty_error_column_is_no_metric_of_the_csv(full_report):
    metrics = set(pd.read_csv(full_report.paths["report.csv"])["metric"])
    assert "box_miou" in metrics and "error" not in metrics


def test_figures_are_real_pdf_and_png(full_report):
    for stem in ("miou", "frontier"):
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


def _frontier(root):
    """The frontier figure of the sweep in ``root``, drawn, and its frontier.variant_points."""
    results = load_results(root)
    summary = summarize(results, n_boot=20)
    figure = plots.frontier_figure(summary, results)
    figure.savefig(io.BytesIO(), format="png")
    return figure, frontier.variant_points(summary, results)


def _xy(x, y) -> tuple:
    """A point rounded, so that positions computed two ways compare equal."""
    return round(float(x), 6), round(float(y), 6)


def _line(ax) -> list:
    """The vertices of the panel's frontier line."""
    (line,) = [line for line in ax.lines if line.get_gid() == plots.FRONTIER_GID]
    return [_xy(*xy) for xy in line.get_xydata()]


def _markers(ax) -> dict:
    """(x, y) -> alpha of each drawn point."""
    return {_xy(*c.lines[0].get_xydata()[0]): c.lines[0].get_alpha() for c in ax.containers}


def test_frontier_joins_the_non_dominated_designs_of_each_cost(exact_encoder_report):
    figure, points = _frontier(exact_encoder_report.paths["table.tex"].parent.parent)
    latency, gmacs = figure.axes[:2]
    at = {cost: {name: _xy(points.loc[name, cost], points.loc[name, "delta"])
                 for name in points.index} for cost in ("latency_ratio", "gmacs")}
    # shared is a little faster than same but has the GMACs of same: on the latency frontier only.
    assert _line(latency) == [at["latency_ratio"][n] for n in
                              ("rgb_only", "mobilenet", "quarter", "shared", "same")]
    assert _line(gmacs) == [at["gmacs"][n] for n in ("rgb_only", "mobilenet", "quarter", "same")]
    faded = {name for name, xy in at["gmacs"].items() if _markers(gmacs)[xy] < 1.0}
    assert faded == {"shared", "resnet18", "same_256", "shuffled"}
    labels = {t.get_text(): t for t in gmacs.texts}
    assert labels["efficientvit-quarter"].xy == pytest.approx(at["gmacs"]["quarter"])
    assert labels["timm:resnet18"].get_color() != labels["efficientvit-quarter"].get_color()


def test_a_control_is_drawn_but_never_on_the_frontier(tmp_path, sweep_writer, encoder_variants):
    # Shuffled depth that beats every design at the same encoder's cost.
    variants = [replace(v, shift=0.06) if v.name == "shuffled" else v for v in encoder_variants]
    figure, points = _frontier(sweep_writer(tmp_path / "s", variants=variants, noise=0.0))
    shuffled = _xy(points.loc["shuffled", "gmacs"], points.loc["shuffled", "delta"])
    assert shuffled == (39.0, 6.0) and shuffled in _markers(figure.axes[1])
    assert _line(figure.axes[1])[-1] == (39.0, 4.0)


def test_a_variant_without_latency_is_left_out_of_that_panel_only(tmp_path, sweep_writer,
                                                                   encoder_variants):
    variants = [replace(v, latency=None) if v.name == "mobilenet" else v for v in encoder_variants]
    figure, _ = _frontier(sweep_writer(tmp_path / "s", variants=variants, noise=0.0))
    latency, gmacs = figure.axes[:2]
    assert "timm:mobilenetv3_small_050" not in {t.get_text() for t in latency.texts}
    assert "timm:mobilenetv3_small_050" in {t.get_text() for t in gmacs.texts}
    assert (20.5, 2.0) in _line(gmacs) and len(_line(latency)) == 4
    assert ("Not in the latency panel (latency not measured): timm:mobilenetv3_small_050"
            in figure.get_supxlabel())


def test_frontier_labels_and_legend_cover_nothing(encoder_report):
    figure, _ = _frontier(encoder_report.paths["table.tex"].parent.parent)
    renderer = figure.canvas.get_renderer()
    legend = figure.legends[0].get_window_extent(renderer)
    for ax in figure.axes[:2]:
        assert not legend.overlaps(ax.get_window_extent(renderer))
        boxes = [t.get_window_extent(renderer) for t in ax.texts]
        assert len(boxes) == 8
        assert all(ax.bbox.contains(b.x0, b.y0) and ax.bbox.contains(b.x1, b.y1) for b in boxes)
        assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
