"""Failures: a diverging cell fails alone (exit code 3); a broken results folder, a clashing storage and
the leftovers of killed writers are dealt with before anything is lost."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import optuna
import pandas as pd
import pytest

from fusionlab.errors import FusionlabError

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


def _study_states(workdir) -> list:
    study = optuna.load_study(study_name="tiny", storage="sqlite:///results/tiny/study.db")
    return [t.state.name for t in study.get_trials(deepcopy=False)]


def test_a_file_where_the_trials_folder_goes_is_a_one_line_error_and_nothing_runs(sweep, make_sweep, workdir,
                                                                                 capsys):
    (workdir / "results" / "tiny").mkdir(parents=True)
    (workdir / "results" / "tiny" / "trials").write_text("not a folder")
    assert sweep(make_sweep(), "--workers", "2") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "results/tiny/trials is a file" in err and "Traceback" not in err
    assert _study_states(workdir) == []  # no trial was claimed, so none is left RUNNING


def test_a_results_folder_broken_mid_sweep_fails_the_cell_and_stops_with_one_line(make_sweep, workdir):
    from fusionlab.sweep import load_sweep
    from fusionlab.sweep.cell import run_cell
    from fusionlab.sweep.store import Store, claim

    sweep = load_sweep(make_sweep())
    store = Store(sweep.storage, sweep.name)
    cell = sweep.cells()[0]
    trial = claim(store, cell.key, {"variant": cell.variant.name, "seed": cell.seed})
    sweep.results.mkdir(parents=True, exist_ok=True)
    (sweep.results / "trials").write_text("the folder was replaced by a file")
    with pytest.raises(FusionlabError, match=r"results folder results/tiny: cannot write results/tiny/trials/0"):
        run_cell(store, sweep, cell, trial)
    recorded = store.trial(trial.number)
    assert recorded.state.name == "FAIL" and "cannot write" in recorded.user_attrs["error"]


def test_leftovers_of_killed_writers_are_removed_and_live_ones_kept(sweep, make_sweep, workdir):
    config = make_sweep(seeds=[0])
    assert sweep(config) == 0
    folder = workdir / "results" / "tiny" / "trials" / "0"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    leftover = folder / f".metrics.json.{int(dead.stdout)}@{host}.0badc0de.tmp"
    live = workdir / "results" / "tiny" / f".trials.csv.{os.getpid()}@{host}.0badc0de.tmp"
    leftover.touch()
    live.touch()
    assert sweep(config) == 0
    assert not leftover.exists() and live.exists()
    assert [p.name for p in (workdir / "results").rglob("*.tmp")] == [live.name]


def test_a_launch_with_another_storage_on_finished_results_is_refused_and_changes_nothing(sweep, make_sweep, workdir,
                                                                                        capsys):
    config = make_sweep(seeds=[0])
    assert sweep(config) == 0
    results = workdir / "results" / "tiny"
    before = {p: p.read_bytes() for p in sorted(results.rglob("*")) if p.is_file() and p.suffix != ".log"}
    capsys.readouterr()
    assert sweep(config, "--storage", f"journal:{results}/other.log") == 2
    err = capsys.readouterr().err
    assert "belong to study 'tiny' in sqlite:///results/tiny/study.db" in err and err.count("\n") == 1
    after = {p: p.read_bytes() for p in sorted(results.rglob("*")) if p.is_file() and p.suffix != ".log"
             and p.name != "other.log"}
    assert after == before
