"""The curve figure of a sweep with a numeric axis: box mIoU, and its gain over RGB only, against
the axis (e.g. the number of training images), one line per design.

Left: box mIoU, the mean over seeds with a 95 % t-interval band over seeds (with few seeds a wide
one: the t quantile at 2 degrees of freedom is 4.3). Right: Δ box mIoU to RGB only at the same
axis value, the paired Δ of :func:`fusionlab.report.stats.summarize` with its 95 % paired
bootstrap CI as the band. In both, a filled marker where the table marks the Δ significant,
hollow where not. The right panel is the one that says where depth helps most.
"""
from __future__ import annotations

from typing import List

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy import stats as scipy_stats

from fusionlab.report.loading import SweepResults

CURVE_COLUMNS = ["design", "design_label", "group", "axis_value", "mean", "band_low", "band_high", "n",
                 "delta", "ci_low", "ci_high", "significant"]
# A log axis once the values span a factor of 4 or more: data sizes are doubled, not stepped.
_LOG_SPAN = 4.0


def curve_points(summary: pd.DataFrame, results: SweepResults) -> pd.DataFrame:
    """The figure's data: one row per variant with a complete trial, in table order.

    Args:
        summary: the tidy table of :func:`fusionlab.report.stats.summarize`.

    Returns:
        ``CURVE_COLUMNS``: the variant's design, group and axis value; ``mean`` box mIoU over
        seeds and its 95 % t-interval ``band_low`` / ``band_high`` (NaN with one seed); ``n``
        seeds; ``delta`` / ``ci_low`` / ``ci_high`` to the baseline at that value (0 for the
        baseline itself) and ``significant``, the table's mark.
    """
    sweep = results.sweep
    box = summary[summary["metric"] == "box_miou"].set_index("variant")
    rows = []
    for variant in sweep.ordered_variants():
        stats = box.loc[variant.name]
        if stats["n"] == 0:
            continue
        n, mean, std = int(stats["n"]), float(stats["mean"]), float(stats["std"])
        half = scipy_stats.t.ppf(0.975, n - 1) * std / np.sqrt(n) if n > 1 else np.nan
        is_baseline = variant.name in sweep.baselines
        delta = (0.0, 0.0, 0.0) if is_baseline else (stats["delta"], stats["ci_low"], stats["ci_high"])
        rows.append([variant.design, variant.design_label, variant.group, variant.axis_value, mean,
                     mean - half, mean + half, n, *delta,
                     False if is_baseline or pd.isna(stats["significant"]) else bool(stats["significant"])])
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def curve_figure(summary: pd.DataFrame, results: SweepResults) -> Figure:
    """Box mIoU (left) and Δ box mIoU to RGB only (right) against the sweep's axis.

    One line per design, in table order: the baseline black, controls dashed grey, the others
    in the seaborn palette; bands as described in the module docstring.

    Raises:
        ValueError: the sweep has no axis (``sweep.json`` ``axis`` null).
    """
    sweep = results.sweep
    if not sweep.axis_key:
        raise ValueError("curve_figure needs a sweep with a numeric axis")
    points = curve_points(summary, results)
    figure = Figure(figsize=(10.0, 4.0), layout="constrained")
    FigureCanvasAgg(figure)
    with sns.axes_style("whitegrid"):
        left, right = figure.subplots(1, 2)
    if points.empty:
        for ax in (left, right):
            ax.text(0.5, 0.5, "no complete trial yet", ha="center", va="center", transform=ax.transAxes)
    designs = list(dict.fromkeys(points["design"]))
    palette = iter(sns.color_palette())
    for design in designs:
        line = points[points["design"] == design].sort_values("axis_value")
        group = line["group"].iloc[0]
        style = _style(group, palette)
        label = line["design_label"].iloc[0]
        # in both panels a hollow marker is a point not significantly different from RGB only
        filled = line["significant"].to_numpy(bool) | (group == "baseline")
        _draw(left, line, "mean", "band_low", "band_high", style, label, filled)
        if group != "baseline":
            _draw(right, line, "delta", "ci_low", "ci_high", style, label, filled)
    right.axhline(0.0, color="0.2", linewidth=1.0, linestyle=":", label="RGB only")
    for ax in (left, right):
        _axis_ticks(ax, sweep.axis_values)
        ax.set_xlabel(sweep.axis_key)
    left.set(ylabel="box mIoU (× 100)", title="box mIoU, band: 95 % t-interval over seeds")
    right.set(ylabel="Δ box mIoU vs RGB only (× 100)", title="Δ to RGB only, band: 95 % paired bootstrap CI")
    handles, labels = left.get_legend_handles_labels()
    if handles:
        handles += [Line2D([], [], linestyle="", marker="o", color="0.3", label="Δ to RGB only significant (as in the table)"),
                    Line2D([], [], linestyle="", marker="o", markerfacecolor="white", color="0.3",
                           label="Δ not significant")]
        figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), frameon=False)
    figure.suptitle(f"{sweep.name}: box mIoU against {sweep.axis_key}")
    return figure


def _style(group: str, palette) -> dict:
    if group == "baseline":
        return {"color": "0.1", "linestyle": "-"}
    if group == "control":
        return {"color": "0.55", "linestyle": "--"}
    return {"color": next(palette), "linestyle": "-"}


def _draw(ax: Axes, line: pd.DataFrame, centre: str, low: str, high: str, style: dict, label: str,
          filled: np.ndarray) -> None:
    x = line["axis_value"].to_numpy(float)
    ax.plot(x, line[centre], color=style["color"], linestyle=style["linestyle"], linewidth=1.5, label=label)
    ax.fill_between(x, line[low].to_numpy(float), line[high].to_numpy(float), color=style["color"], alpha=0.15,
                    linewidth=0)
    ax.scatter(x[filled], line[centre].to_numpy(float)[filled], color=style["color"], s=28, zorder=3)
    ax.scatter(x[~filled], line[centre].to_numpy(float)[~filled], facecolors="white", edgecolors=style["color"],
               s=28, zorder=3)


def _axis_ticks(ax: Axes, values: List[float]) -> None:
    """Ticks at the axis values; a log scale where they span a factor of 4 or more."""
    values = sorted(values)
    if values[0] > 0 and values[-1] / values[0] >= _LOG_SPAN:
        ax.set_xscale("log")
    ax.set_xticks(values, [f"{v:g}" for v in values])
    ax.minorticks_off()

