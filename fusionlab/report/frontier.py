"""Which variants are worth their cost: the Pareto frontier, and how much of the ``same`` gain a
light depth encoder keeps.

Gain is Δ box mIoU to the RGB-only baseline (the paired Δ of :func:`~fusionlab.report.stats.
summarize`, in mIoU points; the baseline's own gain is 0). Cost is the latency ratio to the
baseline or the GMACs of the encoders and fusion blocks. Both use point estimates: a variant
whose Δ is lower than a cheaper one's is dominated even where their CIs overlap, which is why
the figure draws the CIs. Controls (e.g. shuffled depth) test a hypothesis and are no design
to pick: they are never on a frontier nor a light variant's ``same`` counterpart.
"""
from __future__ import annotations

from typing import Optional

import pandas as pd

from fusionlab.report.loading import Sweep, SweepResults, VariantRecord

COSTS = ("latency_ratio", "gmacs")
POINT_COLUMNS = ["label", "group", "delta", "ci_low", "ci_high", *COSTS]
# Groups that are not a design to pick: the baseline itself, and controls that test a
# hypothesis (e.g. shuffled depth).
NOT_LIGHT_GROUPS = ("baseline", "control")


def variant_points(summary: pd.DataFrame, results: SweepResults) -> pd.DataFrame:
    """Gain and costs of every variant, the input of the frontier and of the gain-kept notes.

    Args:
        summary: the tidy table of :func:`fusionlab.report.stats.summarize`.

    Returns:
        One row per variant (index: variant name, table order), columns ``POINT_COLUMNS``:
        ``delta`` / ``ci_low`` / ``ci_high`` in mIoU points (NaN without a seed matched with
        the baseline; 0 for the baseline once it has a complete trial), and the seed means of
        ``latency_ratio`` and ``gmacs`` (NaN where not measured).
    """
    order = [v.name for v in results.sweep.ordered_variants()]
    means = summary.pivot(index="variant", columns="metric", values="mean").reindex(order)
    box = summary[summary["metric"] == "box_miou"].set_index("variant").reindex(order)
    points = box[["label", "group", "delta", "ci_low", "ci_high"]].astype(
        {"delta": float, "ci_low": float, "ci_high": float})
    for cost in COSTS:
        points[cost] = means[cost] if cost in means else float("nan")
    for baseline in results.sweep.baselines:
        if box.loc[baseline, "n"] > 0:
            points.loc[baseline, ["delta", "ci_low", "ci_high"]] = 0.0
    return points


def pareto_front(cost: pd.Series, gain: pd.Series) -> pd.Series:
    """Which points no other point dominates: none has ≥ gain at ≤ cost with one strictly.

    Equal points do not dominate each other, so both stay on the frontier.

    Args:
        cost: one cost per point (lower is better).
        gain: one gain per point, on the same index (higher is better).

    Returns:
        A nullable boolean Series on that index: True on the frontier, False when dominated,
        ``<NA>`` where the cost or gain is NaN (such a point takes no part: it neither
        dominates nor is dominated).
    """
    valid = cost.notna() & gain.notna()
    costs, gains = cost[valid].to_numpy(float), gain[valid].to_numpy(float)
    # [i, j] is True where point j dominates point i.
    no_worse = (gains[None, :] >= gains[:, None]) & (costs[None, :] <= costs[:, None])
    better = (gains[None, :] > gains[:, None]) | (costs[None, :] < costs[:, None])
    front = pd.Series(pd.NA, index=cost.index, dtype="boolean")
    front[valid] = ~(no_worse & better).any(axis=1)
    return front


def is_light(variant: VariantRecord) -> bool:
    """A design whose depth branch is lighter than a full-size copy of the RGB encoder.

    That is another depth encoder than ``same``, or ``same`` at its own smaller ``depth_size``;
    never the baseline or a control.
    """
    return (variant.group not in NOT_LIGHT_GROUPS and variant.depth_encoder is not None
            and (variant.depth_encoder != "same" or variant.depth_size is not None))


def same_counterpart(variant: VariantRecord, sweep: Sweep) -> Optional[VariantRecord]:
    """The design that differs from ``variant`` only in its depth encoder, or None.

    It has ``depth_encoder == "same"`` at full size (``depth_size`` null) and the same fusion,
    fusion point, depth source and axis value; the first in table order if several match.
    """
    key = (variant.fusion, variant.fusion_point, variant.depth_source, variant.axis_value)
    return next((v for v in sweep.ordered_variants()
                 if v.group not in NOT_LIGHT_GROUPS and v.depth_encoder == "same" and v.depth_size is None
                 and (v.fusion, v.fusion_point, v.depth_source, v.axis_value) == key),
                None)


def gain_kept(points: pd.DataFrame, results: SweepResults) -> pd.DataFrame:
    """How much of its ``same`` counterpart's gain each light variant keeps, and at what cost.

    Args:
        points: :func:`variant_points`.

    Returns:
        One row per light variant that has a counterpart (index: variant name, table order):
        its ``POINT_COLUMNS``, the counterpart's as ``same_<column>``, ``same_variant`` (the
        counterpart's name) and ``gain_kept_pct`` = 100 · Δ / Δ(same); NaN where a Δ is missing
        or where the counterpart's gain is not above 0 with 95 % confidence (its CI includes 0),
        since a share of a gain that may be nothing is not a number to read.
    """
    pairs = {}
    for variant in results.sweep.ordered_variants():
        counterpart = same_counterpart(variant, results.sweep) if is_light(variant) else None
        if counterpart is not None:
            pairs[variant.name] = counterpart.name
    light = points.loc[list(pairs)]
    same = points.loc[list(pairs.values())].set_axis(light.index).add_prefix("same_")
    kept = light.join(same).assign(same_variant=list(pairs.values()))
    meaningful = (kept["same_delta"] > 0) & (kept["same_ci_low"] > 0)
    return kept.assign(gain_kept_pct=(100.0 * kept["delta"] / kept["same_delta"]).where(meaningful))
