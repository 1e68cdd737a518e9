"""A finished sweep reruns nothing; a worker killed with kill -9 leaves a trial that is failed and retried."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from fusionlab.report.loading import load_results


def test_rerun_of_a_complete_sweep_runs_nothing_and_keeps_trials_csv(sweep, make_sweep, workdir):
    config = make_sweep()
    assert sweep(config) == 0
    trials_csv = workdir / "results" / "tiny" / "trials.csv"
    before = trials_csv.read_text()
    trials = pd.read_csv(trials_csv)
    assert sorted(zip(trials["variant"], trials["seed"])) == [("add", 0), ("add", 1), ("rgb_only", 0), ("rgb_only", 1)]
    assert (trials["state"] == "COMPLETE").all()
    assert trials["box_miou"].between(0, 100).all()
    assert (trials.loc[trials["variant"] == "add", "params_m"] > trials.loc[trials["variant"] == "rgb_only",
                                                                            "params_m"].max()).all()
    trial_dir = workdir / "results" / "tiny" / "trials" / str(trials["trial_id"].iloc[0])
    for name in ("config.yaml", "log.txt", "metrics.json", "instances.csv", "train_log.csv"):
        assert (trial_dir / name).is_file(), name
    assert sweep(config) == 0
    assert trials_csv.read_text() == before
    assert len(load_results(workdir / "results" / "tiny").complete()) == 4  # the report reads what we wrote


def _trial_states(db: Path) -> list:
    """``(number, state)`` of every trial, read straight from the store; empty until optuna made its tables."""
    try:
        with sqlite3.connect(db) as connection:
            return connection.execute("SELECT number, state FROM trials ORDER BY number").fetchall()
    except sqlite3.OperationalError:
        return []


def test_kill_9_during_a_trial_is_recovered_without_rerunning_finished_cells(sweep, make_sweep, tiny_base, workdir):
    tiny_base["train"]["max_steps"] = 3  # a trial stays RUNNING long enough to be caught
    config = make_sweep(base=tiny_base)
    db = workdir / "results" / "tiny" / "study.db"
    code = f"from fusionlab.cli import main; main(['sweep', {str(config)!r}])"
    worker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            states = _trial_states(db)
            if any(s == "COMPLETE" for _, s in states) and states[-1][1] == "RUNNING":
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"never saw a RUNNING trial after a COMPLETE one: {states}")
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
    killed = _trial_states(db)[-1][0]
    before = pd.read_csv(workdir / "results" / "tiny" / "trials.csv").set_index("trial_id")
    finished_before = before[before["state"] == "COMPLETE"]

    assert sweep(config) == 0
    after = pd.read_csv(workdir / "results" / "tiny" / "trials.csv").set_index("trial_id")
    assert after.loc[killed, "state"] == "FAIL"
    assert "heartbeat" in after.loc[killed, "error"]
    complete = after[after["state"] == "COMPLETE"]
    assert complete.groupby(["variant", "seed"]).size().tolist() == [1, 1, 1, 1]
    kept = complete.loc[finished_before.index].drop(columns="error")
    # a whole-number column (throughput_batch) reads as float while a RUNNING row leaves it empty
    pd.testing.assert_frame_equal(kept, finished_before.drop(columns="error"), check_dtype=False)
    assert not list((workdir / "results").rglob("*.tmp"))  # a write cut by the kill leaves nothing behind



def test_trials_have_their_costs_and_the_baseline_s_latency_ratio_is_one_by_definition(sweep, make_sweep,
                                                                                       workdir):
    assert sweep(make_sweep(seeds=[0])) == 0
    trials = pd.read_csv(workdir / "results" / "tiny" / "trials.csv").set_index("variant")
    assert trials.loc["rgb_only", "latency_ratio"] == 1.0
    assert trials.loc["add", "latency_ratio"] > 0 and trials.loc["add", "gmacs"] > trials.loc["rgb_only", "gmacs"]
    assert (trials["throughput_ips"] > 0).all() and (trials["throughput_device"] == "cpu").all()
