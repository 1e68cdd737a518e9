"""Figures of the report: mIoU per variant, and the gain in box mIoU against cost.

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
from matplotlib.cbook import pts_to_poststep
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import Bbox

from fusionlab.report import frontier
from fusionlab.report.loading import GROUPS, SweepResults
from fusionlab.report.tables import PROMPT_HEADERS

_BAR_PROMPTS = ("box", "click1")
FRONTIER_GID = "pareto-frontier"
"""The ``gid`` of each panel's frontier line (it names the line in an SVG, and for tests)."""
# cost column -> (its name in notes, its axis label), one panel each, in frontier.COSTS order.
_COST_NAMES = {"latency_ratio": ("latency", "latency relative to RGB only"),
               "gmacs": ("GMACs", "GMACs (encoders and fusion)")}
_MARKERS = {"baseline": "s", "reference": "P", "fusion": "o", "encoder": "D", "control": "X"}
_GROUP_LEGEND = {"control": "control (never on the frontier)"}
_FADED = 0.3
# Half a marker (7 pt) plus a gap: no label starts closer than this to any point's centre.
_MARKER_CLEARANCE = 5.0
# (dx, dy) in points, and the alignment that puts the text on that side of the point.
_LABEL_OFFSETS = ((6, 2, "left", "bottom"), (6, -2, "left", "top"), (-6, 2, "right", "bottom"),
                  (-6, -2, "right", "top"), (0, 7, "center", "bottom"), (0, -7, "center", "top"))


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


def frontier_figure(summary: pd.DataFrame, results: SweepResults) -> Figure:
    """Δ box mIoU against latency ratio (left) and GMACs (right), each with its Pareto frontier.

    Each panel computes its own frontier (:func:`fusionlab.report.frontier.pareto_front`) over
    the designs (every group but controls) that have a Δ and that cost, joins it by a step (the
    best Δ available at that cost or less) and labels it in black; dominated designs are faded
    and labelled in grey. Controls are drawn grey and never join the frontier: they test a
    hypothesis, they are no design to pick. In a sweep with a numeric axis, the designs at the
    axis's last value (e.g. the largest training set). Error bars are the 95 % CI of Δ; the baseline sits
    at Δ = 0. A note under the panels names the variants a panel leaves out and why.

    Args:
        summary: the tidy table of :func:`fusionlab.report.stats.summarize`.
    """
    points = frontier.variant_points(summary, results)
    sweep, where = results.sweep, ""
    if sweep.axis_key:
        # one design at several axis values is one cost with several gains: compare designs at the last value
        last = sweep.axis_values[-1]
        points = points.loc[[v.name for v in sweep.ordered_variants() if v.axis_value == last]]
        points["label"] = [sweep.variant(name).design_label for name in points.index]
        where = f" at {sweep.axis_key.rsplit('.', 1)[-1]} = {last}"
    figure, axes = _figure(width=10.0, ncols=2, height=4.2)
    panels = []
    for ax, cost in zip(axes, frontier.COSTS):
        design_cost = points[cost].where(points["group"] != "control")
        on_front = frontier.pareto_front(design_cost, points["delta"]).fillna(False).astype(bool)
        shown = points.assign(on_front=on_front).dropna(subset=[cost, "delta"])
        if shown.empty:
            _no_data(ax, "no variant with a Δ and this cost yet")
        else:
            _frontier_panel(ax, shown, cost)
        ax.set(xlabel=_COST_NAMES[cost][1], ylabel="Δ box mIoU vs RGB only (× 100)")
        panels.append((ax, shown, cost))
    figure.legend(handles=_legend_handles(points["group"]), loc="outside right upper",
                  frameon=False)
    figure.suptitle(f"{results.sweep.name}: gain vs cost{where} (error bars: 95 % CI of Δ)")
    notes = _left_out_notes(points)
    if notes:
        # A supxlabel is placed by the constrained layout, so the note never covers an axis.
        figure.supxlabel("\n".join(notes), x=0.01, ha="left", fontsize=7, color="0.3")
    # Labels are placed in display coordinates, which exist once the layout is done.
    figure.draw_without_rendering()
    for ax, shown, cost in panels:
        _label_points(ax, shown, cost)
    return figure


def _left_out_notes(points: pd.DataFrame) -> List[str]:
    """One line naming the variants without a Δ, one per panel naming those without its cost."""
    no_delta = points["delta"].isna()
    notes = ([f"No Δ yet (no seed matched with the baseline's): "
              f"{', '.join(points.loc[no_delta, 'label'])}"] if no_delta.any() else [])
    for cost in frontier.COSTS:
        name = _COST_NAMES[cost][0]
        unmeasured = points[cost].isna() & ~no_delta
        if unmeasured.any():
            notes.append(f"Not in the {name} panel ({name} not measured): "
                         f"{', '.join(points.loc[unmeasured, 'label'])}")
    return notes


def _frontier_panel(ax: Axes, shown: pd.DataFrame, cost: str) -> None:
    """Markers with CI bars, faded off the frontier, and the frontier's step line."""
    best = shown[shown["on_front"]].sort_values(cost)
    ax.axhline(0.0, color="0.5", linewidth=0.8, linestyle=":")
    ax.plot(best[cost], best["delta"], drawstyle="steps-post", color="0.2", linewidth=1.2,
            zorder=1, gid=FRONTIER_GID)
    for row in shown.itertuples():
        delta = row.delta
        ax.errorbar(getattr(row, cost), delta, yerr=[[delta - row.ci_low], [row.ci_high - delta]],
                    fmt=_MARKERS[row.group], markersize=7, color=_colour(row.group), capsize=2,
                    elinewidth=1.0, alpha=1.0 if row.on_front else _FADED, zorder=2)
    # Room for the labels of the outermost points.
    ax.margins(x=0.2, y=0.15)


def _label_points(ax: Axes, shown: pd.DataFrame, cost: str) -> None:
    """Label each point, frontier first, at the one of ``_LABEL_OFFSETS`` where the text
    stays in the axes and covers the fewest markers, CI bars, frontier steps and earlier
    labels (the first such offset among equals).

    Needs the layout done: the checks compare extents in display coordinates.
    """
    renderer = ax.figure.canvas.get_renderer()
    taken = _obstacles(ax, shown, cost)
    for row in shown.sort_values("on_front", ascending=False, kind="stable").itertuples():
        style = ({"fontsize": 8, "color": "0.0"} if row.on_front
                 else {"fontsize": 7, "color": "0.4"})
        texts = [ax.annotate(row.label, (getattr(row, cost), row.delta), xytext=(dx, dy),
                             textcoords="offset points", ha=ha, va=va, **style)
                 for dx, dy, ha, va in _LABEL_OFFSETS]
        boxes = [text.get_window_extent(renderer) for text in texts]
        penalties = [(not (ax.bbox.contains(b.x0, b.y0) and ax.bbox.contains(b.x1, b.y1)),
                      sum(b.overlaps(other) for other in taken)) for b in boxes]
        best = penalties.index(min(penalties))
        for i, text in enumerate(texts):
            if i != best:
                text.remove()
        taken.append(boxes[best])


def _obstacles(ax: Axes, shown: pd.DataFrame, cost: str) -> List[Bbox]:
    """Display extents of the markers, the CI bars and the frontier's segments."""
    to_display = ax.transData.transform
    radius = _MARKER_CLEARANCE * ax.figure.dpi / 72.0
    boxes = [Bbox.from_extents(x - radius, y - radius, x + radius, y + radius)
             for x, y in to_display(shown[[cost, "delta"]].to_numpy(float))]
    boxes += [Bbox(to_display([(x, low), (x, high)]))
              for x, low, high in zip(shown[cost], shown["ci_low"], shown["ci_high"])]
    best = shown[shown["on_front"]].sort_values(cost)
    steps = to_display(pts_to_poststep(best[cost].to_numpy(float),
                                       best["delta"].to_numpy(float)).T)
    return boxes + [Bbox(steps[i:i + 2]) for i in range(len(steps) - 1)]


def _legend_handles(groups: pd.Series) -> List[Line2D]:
    """One marker per group present, then the frontier line and a faded marker."""
    present = set(groups)
    handles = [Line2D([], [], linestyle="", marker=_MARKERS[g], markersize=7, color=_colour(g),
                      label=_GROUP_LEGEND.get(g, g)) for g in GROUPS if g in present]
    return handles + [
        Line2D([], [], color="0.2", linewidth=1.2, label="Pareto frontier"),
        Line2D([], [], linestyle="", marker="o", markersize=7, color="0.2", alpha=_FADED,
               label="dominated"),
    ]


def _colour(group: str) -> tuple:
    """The group's colour of the seaborn palette; grey for controls, which are no design."""
    if group == "control":
        return (0.55, 0.55, 0.55)
    return sns.color_palette()[GROUPS.index(group)]


def _figure(width: float, ncols: int = 1, height: float = 3.6
            ) -> tuple[Figure, Axes | List[Axes]]:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    with sns.axes_style("whitegrid"):
        axes = figure.subplots(1, ncols)
    return figure, axes


def _no_data(ax: Axes, text: str = "no complete trial yet") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
