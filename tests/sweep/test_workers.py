"""Two worker processes on one sqlite store run every cell exactly once."""
from __future__ import annotations

import optuna
import pandas as pd


def test_two_workers_run_every_cell_once(sweep, make_sweep, workdir):
    config = make_sweep()
    assert sweep(config, "--workers", "2") == 0
    study = optuna.load_study(study_name="tiny", storage="sqlite:///results/tiny/study.db")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    cells = [t.user_attrs["cell"] for t in complete]
    assert len(cells) == 4 and len(set(cells)) == 4
    trials = pd.read_csv(workdir / "results" / "tiny" / "trials.csv")
    assert (trials["state"] == "COMPLETE").sum() == 4
    assert trials.groupby(["variant", "seed"]).size().tolist() == [1, 1, 1, 1]
