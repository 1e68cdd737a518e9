"""The paired bootstrap: zero-width CI for a constant shift, calibrated coverage, seed matching,
p-values that agree with the CI, and Holm's adjustment."""
import numpy as np
import pandas as pd
import pytest

from fusionlab.report.stats import (bootstrap_mean_ci, holm_adjust, paired_bootstrap, paired_diffs,
                                    two_level_bootstrap)


def test_constant_shift_gives_that_shift_with_zero_width():
    mean, low, high = bootstrap_mean_ci(np.full(200, 5.0), n_boot=2000, seed=0)
    assert (mean, low, high) == pytest.approx((5.0, 5.0, 5.0), abs=1e-12)


def test_ci_width_matches_the_standard_error_of_the_mean():
    diffs = np.random.default_rng(7).normal(5.0, 3.0, 200)
    mean, low, high = bootstrap_mean_ci(diffs, n_boot=2000, seed=0)
    assert mean == pytest.approx(diffs.mean())
    assert low < mean < high
    assert high - low == pytest.approx(2 * 1.96 * diffs.std(ddof=1) / np.sqrt(200), rel=0.15)


def test_ci_covers_the_true_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(11)
    covered = [low < 1.0 < high for low, high in
               (bootstrap_mean_ci(rng.normal(1.0, 2.0, 100), n_boot=500, seed=i)[1:]
                for i in range(200))]
    assert 0.89 <= np.mean(covered) <= 0.99


def test_ci_is_reproducible_for_a_seed():
    diffs = np.random.default_rng(3).normal(0.0, 1.0, 50)
    assert bootstrap_mean_ci(diffs, seed=4) == bootstrap_mean_ci(diffs, seed=4)


def _run(ious, order=None) -> pd.DataFrame:
    frame = pd.DataFrame({"image_id": [1, 1, 2, 3], "ann_id": [10, 11, 12, 13], "iou": ious})
    return frame if order is None else frame.iloc[order]


def test_paired_diffs_match_instances_and_seeds():
    variant = {0: _run([0.6, 0.7, 0.8, 0.9]), 1: _run([0.5, 0.5, 0.5, 0.5], order=[3, 1, 0, 2]),
               2: _run([1.0, 1.0, 1.0, 1.0])}
    baseline = {0: _run([0.5, 0.5, 0.5, 0.5], order=[2, 0, 3, 1]), 1: _run([0.4, 0.4, 0.4, 0.4]),
                5: _run([0.0, 0.0, 0.0, 0.0])}
    # Seeds 0 and 1 are matched; seed 2 (variant only) and seed 5 (baseline only) are not.
    expected = np.mean([[0.1, 0.2, 0.3, 0.4], [0.1, 0.1, 0.1, 0.1]], axis=0)
    assert paired_diffs(variant, baseline) == pytest.approx(expected)


def test_paired_diffs_are_empty_without_a_matched_seed():
    assert paired_diffs({0: _run([0.5] * 4)}, {1: _run([0.5] * 4)}).size == 0


def test_empty_diffs_are_rejected():
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_mean_ci(np.empty(0))


def test_chunked_resampling_gives_the_same_interval(monkeypatch):
    diffs = np.random.default_rng(5).normal(2.0, 1.0, 100)
    whole = bootstrap_mean_ci(diffs, n_boot=4000, seed=1)
    monkeypatch.setattr("fusionlab.report.stats._MAX_DRAWS_PER_CHUNK", 1000)
    chunked = bootstrap_mean_ci(diffs, n_boot=4000, seed=1)
    assert chunked == pytest.approx(whole, abs=0.03)


def test_holm_reproduces_the_worked_example():
    """Holm–Bonferroni's textbook example (Wikipedia, "Holm–Bonferroni method"): of p = 0.01,
    0.04, 0.03, 0.005 at α = 0.05, H1 and H4 are rejected; R's ``p.adjust(p, "holm")`` gives
    0.03, 0.06, 0.06, 0.02."""
    adjusted = holm_adjust([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert (adjusted < 0.05).tolist() == [True, False, False, True]


def test_holm_caps_at_one_and_leaves_comparisons_not_made_out_of_the_family():
    assert holm_adjust([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    adjusted = holm_adjust([np.nan, 0.01, 0.04])
    assert np.isnan(adjusted[0]) and adjusted[1:] == pytest.approx([0.02, 0.04])
    assert np.isnan(holm_adjust([np.nan])).all() and holm_adjust([]).size == 0


def test_p_value_is_never_zero_and_one_without_a_difference():
    n_boot = 999
    assert paired_bootstrap(np.full(50, 5.0), n_boot=n_boot).p_value == pytest.approx(2 / 1000)
    assert paired_bootstrap(np.zeros(50), n_boot=n_boot).p_value == 1.0


def test_p_below_005_exactly_where_the_95_ci_excludes_0_up_to_one_resample():
    n_boot = 2000
    rng = np.random.default_rng(17)
    for i in range(100):
        mean, low, high, p = paired_bootstrap(rng.normal(rng.uniform(0.0, 0.5), 1.0, 60),
                                              n_boot=n_boot, seed=i)
        if abs(p - 0.05) > 2.0 / (n_boot + 1):
            assert (p < 0.05) == (low > 0 or high < 0), (mean, low, high, p)


def _sweeps_with_seed_variance(rng, count, n_seeds=10, n_instances=100, delta=1.0):
    """``count`` simulated (seeds, instances) Δ tables: a true Δ, a retraining effect per seed (std 1.5),
    an instance effect shared by the seeds (std 3) and noise (std 1)."""
    return (delta + rng.normal(0, 1.5, (count, n_seeds, 1)) + rng.normal(0, 3.0, (count, 1, n_instances))
            + rng.normal(0, 1.0, (count, n_seeds, n_instances)))


def test_two_level_ci_covers_the_true_delta_when_seeds_vary_and_the_instance_ci_does_not():
    sweeps = _sweeps_with_seed_variance(np.random.default_rng(0), 200)
    two_level = [two_level_bootstrap(d, n_boot=500, seed=i) for i, d in enumerate(sweeps)]
    instances = [paired_bootstrap(d.mean(axis=0), n_boot=500, seed=i) for i, d in enumerate(sweeps)]
    coverage = [np.mean([b.ci_low <= 1.0 <= b.ci_high for b in boots]) for boots in (two_level, instances)]
    assert coverage[0] >= 0.90 > coverage[1]
    assert all(t.ci_high - t.ci_low >= i.ci_high - i.ci_low for t, i in zip(two_level, instances))


def test_two_level_with_one_seed_is_the_instance_bootstrap_s_estimate():
    diffs = np.random.default_rng(1).normal(0.5, 1.0, (1, 300))
    two_level, instances = two_level_bootstrap(diffs, seed=3), paired_bootstrap(diffs[0], seed=3)
    assert two_level.mean == pytest.approx(instances.mean)
    assert two_level.ci_high - two_level.ci_low == pytest.approx(instances.ci_high - instances.ci_low, rel=0.15)
