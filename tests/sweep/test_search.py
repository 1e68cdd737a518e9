"""``search:`` runs TPE trials over a continuous knob, resumable up to ``n_trials``."""
from __future__ import annotations

import pandas as pd


def test_search_samples_the_knob_within_its_range_and_stops_at_n_trials(sweep, make_sweep, tiny_base, workdir):
    tiny_base["train"].update(epochs=2, max_steps=None)
    search = {"n_trials": 2, "eval_images": 1,
              "params": {"train.lr": {"low": 1.0e-5, "high": 1.0e-3, "log": True}}}
    config = make_sweep(base=tiny_base, seeds=[0], search=search)
    assert sweep(config) == 0
    assert sweep(config) == 0  # already at n_trials: nothing more runs
    trials = pd.read_csv(workdir / "results" / "tiny" / "search.csv")
    assert len(trials) == 2 and (trials["state"] == "COMPLETE").all()
    assert trials["train.lr"].between(1.0e-5, 1.0e-3).all() and trials["train.lr"].nunique() == 2
    assert trials["box_miou"].between(0, 100).all()
