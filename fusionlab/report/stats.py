"""Numbers of the report: mean ± std over seeds, and Δ to the baseline with a paired bootstrap
CI and p-value.

The Δ of a variant is paired twice: on seeds (only seeds where both the variant and the
baseline completed) and on instances (the same evaluation instances, matched by
``(image_id, ann_id)``). Per-instance IoU differences are averaged over the matched seeds,
then instances are resampled with replacement; the CI is the percentile interval of the
resampled means and the p-value its two-sided test of Δ = 0 (:func:`paired_bootstrap`).
Seed-to-seed training noise is therefore averaged out, not resampled: the CI says how sure we
are on these instances with these trained models. With ``ci="seeds+instances"`` the resampling
has two levels instead (:func:`two_level_bootstrap`, after Bouthillier et al., "Accounting for
Variance in Machine Learning Benchmarks", MLSys 2021): the matched seeds with replacement, then
the instances, so the CI also says whether the gain would survive retraining. It needs at least
:data:`MIN_SEEDS` seeds to mean anything.

Box mIoU and, where the results have it, box Boundary IoU (``box_biou``, from the instances'
``biou``) get a Δ each.

Several variants are compared with one baseline, so the significance mark uses, by default,
Holm-adjusted p-values (:func:`holm_adjust`): the family of one metric is every variant with a Δ in
it, controls included, i.e. every comparison with the baseline that its Δ column prints. In a
sweep with a numeric axis each variant is compared with the baseline at its own axis value, and
the family spans every value.
"""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Sequence

import numpy as np
import pandas as pd

from fusionlab.report.loading import SweepResults, VariantRecord

INSTANCE_KEY = ["image_id", "ann_id"]
# Columns of instances.csv that are not attributes, even if they happen to parse as bool.
_NON_ATTRIBUTE_COLUMNS = {"image_id", "ann_id", "prompt", "iou", "biou", "area", "size"}
# Caps one resampling chunk at 2**23 indices (64 MiB) so 2000 resamples of 1e5 instances fit.
_MAX_DRAWS_PER_CHUNK = 2 ** 23

# The metrics with a Δ: trials.csv column -> the instances.csv column it averages.
DELTA_METRICS = {"box_miou": "iou", "box_biou": "biou"}
CI_KINDS = ("instances", "seeds+instances")
# Resampling fewer seeds than this gives an interval that says little about retraining.
MIN_SEEDS = 3

ALPHA = 0.05
"""Level of the significance mark: a Δ is marked where its p-value (Holm-adjusted by default)
is below it, or, without the adjustment, where its 95 % CI excludes 0."""

SUMMARY_COLUMNS = ["variant", "label", "group", "metric", "mean", "std", "n",
                   "delta", "ci_low", "ci_high", "p_value", "p_holm", "significant"]

Runs = Dict[int, pd.DataFrame]
"""seed -> per-instance rows (``image_id, ann_id, iou`` ...) of one trial, one prompt."""


class Bootstrap(NamedTuple):
    """A paired bootstrap of a mean difference: estimate, percentile CI, two-sided p-value."""

    mean: float
    ci_low: float
    ci_high: float
    p_value: float


def paired_bootstrap(diffs: np.ndarray, n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> Bootstrap:
    """Mean of paired differences, its percentile bootstrap CI and two-sided p-value.

    Both come from the same ``B = n_boot`` resampled means ``m*``: the CI is their percentile
    interval, and the p-value of Δ = 0 is

        p = min(1, 2 · (1 + min(#{m* ≤ 0}, #{m* ≥ 0})) / (B + 1)),

    twice the smaller share of resampled means on the far side of 0, with the +1 of Monte
    Carlo p-values so that p is never 0 (Phipson & Smyth, 2010). It inverts the percentile
    interval: the 95 % CI excludes 0 exactly when p < 0.05, up to one resample.

    Args:
        diffs: ``(n_instances,)`` per-instance differences (variant − baseline).
        n_boot: number of resamples of the instances (with replacement).
        seed: seed of the resampling generator.
        level: coverage of the interval.
    """
    diffs = np.asarray(diffs, dtype=np.float64)
    if diffs.ndim != 1 or diffs.size == 0:
        raise ValueError(f"diffs must be a non-empty 1-D array, got shape {diffs.shape}")
    rng = np.random.default_rng(seed)
    n = diffs.size
    chunk = max(1, _MAX_DRAWS_PER_CHUNK // n)
    means = np.concatenate([
        diffs[rng.integers(0, n, size=(min(chunk, n_boot - start), n))].mean(axis=1)
        for start in range(0, n_boot, chunk)
    ])
    return _from_resamples(float(diffs.mean()), means, level)


def two_level_bootstrap(diffs: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Bootstrap:
    """:func:`paired_bootstrap` with two levels: seeds, then instances, both with replacement.

    A resample draws S of the S seeds and N of the N instances and averages the chosen cells of
    ``diffs``; with seed counts ``a`` (sum S) and instance counts ``c`` (sum N) that mean is
    ``aᵀ D c / (S N)``, so all resamples are two matrix products. The estimate is the mean of
    ``diffs``, which is :func:`paired_bootstrap`'s on the seed-averaged differences.

    Args:
        diffs: ``(n_seeds, n_instances)`` paired differences per matched seed and instance.
    """
    diffs = np.asarray(diffs, dtype=np.float64)
    if diffs.ndim != 2 or diffs.size == 0:
        raise ValueError(f"diffs must be a non-empty (seeds, instances) array, got shape {diffs.shape}")
    rng = np.random.default_rng(seed)
    n_seeds, n = diffs.shape
    seed_counts = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=n_boot)
    instance_counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)
    means = np.einsum("bs,sn,bn->b", seed_counts, diffs, instance_counts, optimize=True) / (n_seeds * n)
    return _from_resamples(float(diffs.mean()), means, level)


def _from_resamples(estimate: float, means: np.ndarray, level: float) -> Bootstrap:
    """The percentile CI and the two-sided p-value of Δ = 0 from ``(B,)`` resampled means."""
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    far_side = min(np.count_nonzero(means <= 0.0), np.count_nonzero(means >= 0.0))
    p_value = min(1.0, 2.0 * (1 + far_side) / (means.size + 1))
    return Bootstrap(estimate, float(low), float(high), p_value)


def bootstrap_mean_ci(diffs: np.ndarray, n_boot: int = 2000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, ci_low, ci_high)`` of :func:`paired_bootstrap`."""
    mean, low, high, _ = paired_bootstrap(diffs, n_boot=n_boot, seed=seed, level=level)
    return mean, low, high


def holm_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (Holm, 1979), in the order given.

    The i-th smallest of the m p-values becomes ``max over j ≤ i of min(1, (m − j + 1) ·
    p_(j))``; marking where the adjusted value is below α is Holm's step-down test, which
    keeps the chance of marking any true null below α. NaN entries (comparisons not made)
    stay NaN and are not counted in m.
    """
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    made = np.flatnonzero(~np.isnan(p))
    order = made[np.argsort(p[made], kind="stable")]
    factors = order.size - np.arange(order.size)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(factors * p[order]))
    return adjusted


def paired_diffs(variant: Runs, baseline: Runs, column: str = "iou") -> np.ndarray:
    """Per-instance differences of ``column`` averaged over the seeds both runs completed.

    Instances missing from any matched seed of either side are dropped.

    Returns:
        ``(n_instances,)`` differences; empty when no seed is matched.
    """
    table = paired_table(variant, baseline, column)
    return table.mean(axis=1).to_numpy() if table.shape[1] else np.empty(0)


def paired_table(variant: Runs, baseline: Runs, column: str = "iou") -> pd.DataFrame:
    """Differences of ``column``, one row per instance (indexed by ``(image_id, ann_id)``) present in
    every matched seed of both runs, one column per matched seed; no column when none is matched."""
    seeds = sorted(set(variant) & set(baseline))
    if not seeds:
        return pd.DataFrame()
    per_seed = [
        (variant[s].set_index(INSTANCE_KEY)[column] - baseline[s].set_index(INSTANCE_KEY)[column])
        .rename(s) for s in seeds
    ]
    return pd.concat(per_seed, axis=1).dropna()


def summarize(results: SweepResults, n_boot: int = 2000, seed: int = 0,
              holm: bool = True, ci: str = "instances") -> pd.DataFrame:
    """Tidy summary: one row per (variant, metric), in table order.

    ``metric`` is a ``trials.csv`` column, or ``box_miou@<attr>`` / ``box_miou@not_<attr>``
    for each boolean attribute column of the instances. ``mean``/``std`` (ddof=1)/``n`` are
    over completed seeds. The rows of :data:`DELTA_METRICS` (box mIoU, box BIoU) of non-baseline
    variants add ``delta``/``ci_low``/``ci_high`` (points, × 100), ``p_value``
    (:func:`paired_bootstrap`, or :func:`two_level_bootstrap` with ``ci="seeds+instances"``), ``p_holm``
    (:func:`holm_adjust` over the variants with a p-value for that metric) and ``significant``: the
    mark, ``p_holm < ALPHA`` with ``holm``, else the CI excludes 0.
    """
    by_variant = box_runs(results)
    attributes = _attributes(by_variant)
    complete = results.complete()
    rows: List[dict] = []
    for variant in results.sweep.ordered_variants():
        baseline = results.sweep.baseline_of(variant.name)
        done = complete[complete["variant"] == variant.name]
        runs = by_variant.get(variant.name, {})
        for metric in results.metric_columns():
            row = _seed_stats(variant, metric, done[metric].dropna())
            if metric in DELTA_METRICS:
                row.update(_delta(variant, runs, by_variant.get(baseline, {}), baseline,
                                  n_boot, seed, DELTA_METRICS[metric], ci))
            rows.append(row)
        for attribute in attributes:
            for wanted, name in ((True, attribute), (False, f"not_{attribute}")):
                subset = _subset(runs, attribute, wanted)
                miou = pd.Series({s: 100.0 * r["iou"].mean() for s, r in subset.items()},
                                 dtype=float)
                row = _seed_stats(variant, f"box_miou@{name}", miou.dropna())
                row.update(_delta(variant, subset, _subset(by_variant.get(baseline, {}), attribute,
                                                           wanted), baseline, n_boot, seed, "iou", ci))
                rows.append(row)
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    summary["n"] = summary["n"].astype(int)
    summary["p_value"] = summary["p_value"].astype(float)
    summary["p_holm"] = summary.groupby("metric", sort=False)["p_value"].transform(holm_adjust)
    if holm:
        summary["significant"] = summary["p_holm"].lt(ALPHA).where(summary["p_holm"].notna())
    summary["significant"] = summary["significant"].astype("boolean")
    return summary


def box_runs(results: SweepResults) -> Dict[str, Runs]:
    """variant -> seed -> box-prompt instances of every COMPLETE trial."""
    runs: Dict[str, Runs] = {}
    for cell in results.complete().itertuples():
        instances = results.instances(cell.trial_id)
        runs.setdefault(cell.variant, {})[int(cell.seed)] = instances[instances["prompt"] == "box"]
    return runs


def _attributes(box_runs: Dict[str, Runs]) -> List[str]:
    """Boolean instance columns present in every loaded trial."""
    frames = [f for runs in box_runs.values() for f in runs.values()]
    if not frames:
        return []
    shared = [c for c in frames[0].columns if c not in _NON_ATTRIBUTE_COLUMNS]
    return [c for c in shared if all(c in f.columns and f[c].dtype == bool for f in frames)]


def _subset(runs: Runs, attribute: str, wanted: bool) -> Runs:
    return {s: r[r[attribute] == wanted] for s, r in runs.items()}


def _seed_stats(variant: VariantRecord, metric: str, values: pd.Series) -> dict:
    return {"variant": variant.name, "label": variant.label, "group": variant.group,
            "metric": metric, "mean": values.mean(), "std": values.std(ddof=1), "n": len(values)}


def _delta(variant: VariantRecord, runs: Runs, baseline_runs: Runs, baseline: str,
           n_boot: int, seed: int, column: str = "iou", ci: str = "instances") -> dict:
    if variant.name == baseline or any(column not in r.columns for r in [*runs.values(), *baseline_runs.values()]):
        return {}
    # Each comparison gets its own generator so a CI does not depend on which other
    # variants are in the sweep.
    if ci == "seeds+instances":
        table = paired_table(runs, baseline_runs, column)
        if table.empty:
            return {}
        delta, low, high, p_value = two_level_bootstrap(100.0 * table.to_numpy().T, n_boot=n_boot, seed=seed)
    else:
        diffs = paired_diffs(runs, baseline_runs, column)
        if diffs.size == 0:
            return {}
        delta, low, high, p_value = paired_bootstrap(100.0 * diffs, n_boot=n_boot, seed=seed)
    return {"delta": delta, "ci_low": low, "ci_high": high, "p_value": p_value,
            "significant": low > 0 or high < 0}
