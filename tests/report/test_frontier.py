"""The Pareto frontier on hand-made points; the share of the ``same`` gain a light encoder keeps."""
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from fusionlab.report.frontier import gain_kept, is_light, pareto_front, same_counterpart, variant_points
from fusionlab.report.loading import VariantRecord, load_results
from fusionlab.report.stats import summarize


def _front(cost, gain) -> list:
    index = [f"p{i}" for i in range(len(cost))]
    front = pareto_front(pd.Series(cost, index=index, dtype=float),
                         pd.Series(gain, index=index, dtype=float))
    assert list(front.index) == index
    return [None if pd.isna(v) else bool(v) for v in front]


def test_a_point_cheaper_and_better_dominates():
    # p1 is worse and dearer than p0; p2 buys more gain at more cost.
    assert _front([1.0, 1.5, 2.0], [0.0, -0.5, 3.0]) == [True, False, True]


def test_equal_cost_keeps_the_higher_gain_and_equal_gain_the_lower_cost():
    assert _front([1.0, 1.0], [2.0, 3.0]) == [False, True]
    assert _front([1.0, 1.2], [2.0, 2.0]) == [True, False]


def test_identical_points_do_not_dominate_each_other():
    assert _front([1.0, 1.0, 2.0], [2.0, 2.0, 1.0]) == [True, True, False]


def test_a_single_point_is_the_frontier():
    assert _front([1.95], [4.0]) == [True]


def test_a_point_without_cost_or_gain_takes_no_part():
    # p1 would dominate p0 and p2 if its cost counted; p3 has no gain yet.
    assert _front([1.5, np.nan, 2.0, 1.0], [1.0, 9.0, 2.0, np.nan]) == [True, None, True, None]


def test_no_valid_point_gives_no_frontier():
    assert _front([np.nan, np.nan], [1.0, 2.0]) == [None, None]


def _variant(name, group="encoder", encoder="same", size=None, point="stage3"):
    return VariantRecord(name, group, name, fusion="add", fusion_point=point,
                         depth_source="depth_anything", depth_encoder=encoder, depth_size=size)


def test_light_means_lighter_than_a_full_size_copy_of_the_rgb_encoder():
    assert is_light(_variant("q", encoder="efficientvit-quarter"))
    assert is_light(_variant("s", encoder="shared"))
    assert is_light(_variant("s256", size=256))
    assert not is_light(_variant("same"))
    assert not is_light(_variant("shuffled", group="control", encoder="timm:resnet18"))
    assert not is_light(VariantRecord("rgb_only", "baseline", "RGB only"))


def test_the_same_counterpart_differs_only_in_the_depth_encoder(exact_encoder_report):
    sweep = load_results(exact_encoder_report.paths["table.tex"].parent.parent).sweep
    assert same_counterpart(sweep.variant("quarter"), sweep).name == "same"
    assert same_counterpart(sweep.variant("same_256"), sweep).name == "same"
    # The control copies the same encoder with the same fusion, but is no design to compare.
    without_same = replace(sweep, variants=tuple(v for v in sweep.variants if v.name != "same"))
    assert without_same.variant("shuffled").depth_encoder == "same"
    assert same_counterpart(sweep.variant("quarter"), without_same) is None
    at_stage2 = replace(sweep.variant("quarter"), fusion_point="stage2")
    assert same_counterpart(at_stage2, sweep) is None
    other_depth = replace(sweep.variant("quarter"), depth_source="zoedepth")
    assert same_counterpart(other_depth, sweep) is None


@pytest.fixture(scope="module")
def exact_points(exact_encoder_report):
    """Points of the noiseless encoder sweep: every Δ is its true shift × 100."""
    results = load_results(exact_encoder_report.paths["table.tex"].parent.parent)
    return variant_points(summarize(results, n_boot=50), results), results


def test_points_put_the_baseline_at_zero_gain_and_its_own_cost(exact_points):
    points, _ = exact_points
    assert points.loc["rgb_only", ["delta", "ci_low", "ci_high", "latency_ratio", "gmacs"]
                      ].tolist() == pytest.approx([0.0, 0.0, 0.0, 1.0, 19.6])
    assert points.loc["quarter", ["delta", "latency_ratio", "gmacs"]].tolist() == pytest.approx(
        [3.0, 1.2, 24.5])


def test_gain_kept_is_the_share_of_the_same_gain(exact_points):
    points, results = exact_points
    kept = gain_kept(points, results)
    assert list(kept.index) == ["shared", "quarter", "mobilenet", "resnet18", "same_256"]
    assert set(kept["same_variant"]) == {"same"}
    assert kept["gain_kept_pct"].tolist() == pytest.approx([87.5, 75.0, 50.0, 25.0, 62.5])
    assert kept.loc["quarter", ["same_delta", "same_latency_ratio", "same_gmacs"]].tolist() == (
        pytest.approx([4.0, 1.95, 39.0]))
