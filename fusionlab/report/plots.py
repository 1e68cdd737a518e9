"""Figures of the report: mIoU per variant, and accuracy against cost.

Figures are drawn on ``matplotlib.figure.Figure`` with the Agg canvas, never through
``pyplot``, so making a report neither needs a display nor changes the caller's backend or
global style.
"""
from __future__ import annotations

from typing import List

import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fusionlab.report.results import GROUPS, SweepResults
from fusionlab.report.tables import PROMPT_HEADERS

_BAR_PROMPTS = ("box", "click1")


def miou_figure(results: SweepResults) -> Figure:
    """Bars of box and 1-click mIoU per variant (table order), error bars = std over seeds."""
    order = [v.label for v in results.sweep.ordered_variants()]
    columns = [f"{p}_miou" for p in _BAR_PROMPTS if f"{p}_miou" in results.cells.columns]
    done = results.complete().assign(
        label=lambda f: f["variant"].map(lambda n: results.sweep.variant(n).label))
    long = done.melt(id_vars=["label"], value_vars=columns, var_name="prompt", value_name="mIoU")
    long["prompt"] = long["prompt"].str.removesuffix("_miou").map(
        lambda p: PROMPT_HEADERS.get(p, p))
    figure, ax = _figure(width=max(4.0, 1.1 * len(order)))
    if long["mIoU"].notna().any():
        sns.barplot(data=long, x="label", y="mIoU", hue="prompt", order=order, errorbar="sd",
                    capsize=0.15, err_kws={"linewidth": 1.0}, ax=ax)
        # Anchored at the label's end, a rotated label ends under its own bar.
        for label in ax.get_xticklabels():
            label.set(rotation=30, ha="right", rotation_mode="anchor")
        # Outside the axes, right of them: inside, the legend hid a bar whatever its place.
        ax.legend(title="prompt", frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        _no_data(ax)
    ax.set(xlabel="", ylabel="mIoU (× 100)",
           title=f"{results.sweep.name}: mean ± std over seeds")
    return figure


def tradeoff_figure(summary: pd.DataFrame, results: SweepResults) -> Figure:
    """Box mIoU against params (left) and latency ratio (right); one labelled point per variant.

    Args:
        summary: the tidy table of :func:`fusionlab.report.stats.summarize`.
    """
    order = [v.name for v in results.sweep.ordered_variants()]
    wide = summary.pivot(index="variant", columns="metric", values="mean").reindex(order)
    spread = summary.pivot(index="variant", columns="metric", values="std").reindex(order)
    points = pd.DataFrame({
        "label": [results.sweep.variant(n).label for n in wide.index],
        "group": [results.sweep.variant(n).group for n in wide.index],
        "box_miou": wide["box_miou"], "box_std": spread["box_miou"].fillna(0.0),
    }, index=wide.index)
    figure, axes = _figure(width=9.0, ncols=2)
    for ax, cost, xlabel in zip(axes, ("params_m", "latency_ratio"),
                                ("parameters (M)", "latency relative to RGB only")):
        data = points.assign(cost=wide[cost] if cost in wide else float("nan")).dropna(
            subset=["cost", "box_miou"])
        if data.empty:
            _no_data(ax)
        else:
            _scatter(ax, data)
        ax.set(xlabel=xlabel, ylabel="box mIoU (× 100)")
    figure.suptitle(f"{results.sweep.name}: accuracy vs cost (error bars: std over seeds)")
    return figure


def _scatter(ax: Axes, data: pd.DataFrame) -> None:
    ax.errorbar(data["cost"], data["box_miou"], yerr=data["box_std"], fmt="none",
                ecolor="0.6", elinewidth=1.0, capsize=2)
    groups = [g for g in GROUPS if g in set(data["group"])]
    sns.scatterplot(data=data, x="cost", y="box_miou", hue="group", style="group",
                    hue_order=groups, style_order=groups, s=60, ax=ax)
    for row in data.itertuples():
        ax.annotate(row.label, (row.cost, row.box_miou), xytext=(4, 4),
                    textcoords="offset points", fontsize=8)
    ax.legend(title="", frameon=False)
    # Room for the labels of the right-most points.
    ax.margins(x=0.15, y=0.1)


def _figure(width: float, ncols: int = 1) -> tuple[Figure, Axes | List[Axes]]:
    figure = Figure(figsize=(width, 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    with sns.axes_style("whitegrid"):
        axes = figure.subplots(1, ncols)
    return figure, axes


def _no_data(ax: Axes) -> None:
    ax.text(0.5, 0.5, "no complete trial yet", ha="center", va="center", transform=ax.transAxes)
