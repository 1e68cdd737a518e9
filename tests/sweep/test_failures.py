"""A diverging cell fails alone: recorded with its reason, the other cells complete, exit code 3."""
from __future__ import annotations

import pandas as pd

from fusionlab.cli import EXIT_SOME_FAILED


def test_nan_loss_fails_its_cell_and_the_sweep_goes_on(sweep, make_sweep, workdir):
    variants = [{"name": "add", "group": "fusion", "model": {"fusion": "add"}},
                {"name": "add_huge_lr", "group": "fusion", "model": {"fusion": "add"},
                 "train": {"lr": 1.0e+30, "max_steps": 2}}]
    config = make_sweep(variants=variants, seeds=[0])
    assert sweep(config) == EXIT_SOME_FAILED
    trials = pd.read_csv(workdir / "results" / "tiny" / "trials.csv").set_index("variant")
    assert trials.loc["add_huge_lr", "state"] == "FAIL"
    assert "nan" in trials.loc["add_huge_lr", "error"].lower()
    assert "TrainingDiverged" in trials.loc["add_huge_lr", "error"]
    assert trials.loc[["rgb_only", "add"], "state"].tolist() == ["COMPLETE", "COMPLETE"]
    log = (workdir / "results" / "tiny" / "trials" / str(trials.loc["add_huge_lr", "trial_id"]) / "log.txt").read_text()
    assert "diverged" in log
