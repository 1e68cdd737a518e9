"""A finished sweep reruns nothing; a worker killed with kill -9 leaves a trial that is failed and retried, and
continued from its resume point; Ctrl-C hands the cells back, and the next launch continues them."""
from __future__ import annotations

import copy
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from optuna.trial import TrialState

import fusionlab
from fusionlab.models.checkpoint import read_state_dict
from fusionlab.report.loading import load_results

ROOT = Path(fusionlab.__file__).resolve().parents[1]


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
    assert trials["box_biou"].between(0, 100).all()
    # a metric fusionlab rescore added to a trial's metrics.json stays in trials.csv when the sweep rewrites it
    metrics = json.loads((trial_dir / "metrics.json").read_text())
    (trial_dir / "metrics.json").write_text(json.dumps({**metrics, "rescored_metric": 1.5}))
    assert sweep(config) == 0
    assert pd.read_csv(trials_csv).set_index("trial_id").loc[int(trial_dir.name), "rescored_metric"] == 1.5


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


# ------------------------------------------------------------------------------ cells continued from a resume point
def _resumable(tiny_base: dict) -> dict:
    """Cells of 8 steps with a resume point after every step, weights kept (to compare them)."""
    tiny_base["train"].update(max_steps=None, steps=8, resume_every=1e-6)
    return {"base": tiny_base, "seeds": [0], "keep_checkpoints": True}


@pytest.fixture
def uninterrupted(sweep, make_sweep, tiny_base, workdir, monkeypatch) -> Path:
    """The results folder of the same two cells, run without a stop."""
    monkeypatch.setenv("FUSIONLAB_THREADS", "1")
    assert sweep(make_sweep("reference.yaml", results_dir="reference", **_resumable(copy.deepcopy(tiny_base)))) == 0
    return workdir / "reference" / "tiny"


def _environment() -> dict:
    """A worker process of this checkout's fusionlab with one thread, as the uninterrupted sweep had."""
    return {**os.environ, "FUSIONLAB_THREADS": "1", "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _wait_for_points(trials: Path, step: int, count: int, launch: subprocess.Popen) -> None:
    """Until ``count`` trial folders hold a resume point of ``step``."""
    deadline = time.time() + 180
    while len(list(trials.glob(f"*/resume/step-{step:08d}.json"))) < count:
        assert launch.poll() is None, "the sweep ended before it could be stopped"
        assert time.time() < deadline, f"no {count} trial(s) with a resume point of step {step}"
        time.sleep(0.02)


def _assert_same_cells(results: Path, reference: Path) -> pd.DataFrame:
    """Each cell COMPLETE once, with the weights (bit for bit) and metrics of the uninterrupted sweep's."""
    trials = pd.read_csv(results / "trials.csv")
    complete = trials[trials["state"] == "COMPLETE"].set_index(["variant", "seed"])
    theirs = pd.read_csv(reference / "trials.csv").set_index(["variant", "seed"])
    assert sorted(complete.index) == sorted(theirs.index)
    for cell, row in complete.iterrows():
        ours_dir, their_dir = (folder / "trials" / str(frame.loc[cell, "trial_id"])
                               for folder, frame in ((results, complete), (reference, theirs)))
        ours, their = read_state_dict(ours_dir / "checkpoint.safetensors"), \
            read_state_dict(their_dir / "checkpoint.safetensors")
        assert all(ours[k].equal(their[k]) for k in their), cell
        assert (ours_dir / "metrics.json").read_text() == (their_dir / "metrics.json").read_text(), cell
        assert not (ours_dir / "resume").exists()  # a COMPLETE trial keeps no points
    return trials


def test_a_cell_whose_worker_was_killed_continues_from_its_resume_point_bit_for_bit(sweep, make_sweep, tiny_base,
                                                                                   workdir, uninterrupted):
    config = make_sweep(**_resumable(tiny_base))
    launch = subprocess.Popen([sys.executable, "-m", "fusionlab", "sweep", str(config)], env=_environment(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_points(workdir / "results" / "tiny" / "trials", 3, 1, launch)
    finally:
        os.killpg(launch.pid, signal.SIGKILL)
        launch.wait()
    killed = next(int(p.parts[-3]) for p in (workdir / "results" / "tiny" / "trials").glob("*/resume/step-*.json"))

    assert sweep(config) == 0  # once the killed trial's heartbeat is older than the grace

    trials = _assert_same_cells(workdir / "results" / "tiny", uninterrupted).set_index("trial_id")
    assert trials.loc[killed, "state"] == "FAIL" and "heartbeat" in trials.loc[killed, "error"]
    continued = trials[(trials["state"] == "COMPLETE") & (trials["variant"] == trials.loc[killed, "variant"])]
    assert continued["resumed_from_step"].iloc[0] >= 3
    assert f"trial {continued.index[0]} continues trial {killed} (stale)" in \
        (workdir / "results" / "tiny" / "sweep.log").read_text()


def test_ctrl_c_hands_the_cells_back_at_once_and_the_next_launch_continues_them(sweep, make_sweep, tiny_base, workdir,
                                                                                uninterrupted, capsys):
    config = make_sweep(**_resumable(tiny_base))
    launch = subprocess.Popen([sys.executable, "-m", "fusionlab", "sweep", str(config), "--workers", "2"],
                              env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    try:
        _wait_for_points(workdir / "results" / "tiny" / "trials", 2, 1, launch)
        os.killpg(launch.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: every process of the group gets it
        output, _ = launch.communicate(timeout=180)
    finally:
        if launch.poll() is None:
            os.killpg(launch.pid, signal.SIGKILL)
    assert launch.returncode == 130, output
    assert "hands the cell back (Ctrl-C again to stop at once)" in output and "Traceback" not in output
    trials = pd.read_csv(workdir / "results" / "tiny" / "trials.csv").set_index("trial_id")
    # a cell in training is handed back; one evaluating when the Ctrl-C came is finished first
    handed_back = trials[trials["error"].fillna("").str.startswith("interrupted at step")]
    assert len(handed_back) >= 1 and (handed_back["state"] == "FAIL").all()
    assert (trials["state"] != "RUNNING").all()
    capsys.readouterr()

    assert sweep(config) == 0

    # handed back, not stale: claimed at once, without waiting for a heartbeat grace
    assert "waiting for" not in capsys.readouterr().out
    trials = _assert_same_cells(workdir / "results" / "tiny", uninterrupted)
    # each continues from the step it was handed back at (0: stopped while it set up, before its first step)
    stopped_at = handed_back.set_index("variant")["error"].str.extract(r"at step (\d+)")[0].astype(int)
    continued = trials[trials["state"] == "COMPLETE"].set_index("variant")["resumed_from_step"]
    assert continued[stopped_at.index].tolist() == stopped_at.tolist() and stopped_at.max() >= 2
    assert len(load_results(workdir / "results" / "tiny").complete()) == 2  # the report reads the new column


def test_a_cell_handed_back_is_claimed_again_in_the_same_launch_and_a_failed_one_is_not(make_sweep, workdir):
    from fusionlab.sweep import trial_attrs
    from fusionlab.sweep.config import load_sweep
    from fusionlab.sweep.store import Store, claim
    from fusionlab.sweep.workers import plan

    sweep_config = load_sweep(make_sweep(seeds=[0]))
    store = Store(sweep_config.storage, sweep_config.name)
    handed, failed = sweep_config.cells()
    for cell, attrs in ((handed, {trial_attrs.INTERRUPTED: True, trial_attrs.ERROR: "interrupted at step 3"}),
                        (failed, {trial_attrs.ERROR: "TrainingDiverged: training diverged at step 3"})):
        trial = claim(store, cell.key, {trial_attrs.RUN_ID: "launch", trial_attrs.VARIANT: cell.variant.name,
                                        trial_attrs.SEED: cell.seed})
        store.set_attrs(trial.number, attrs)
        store.finish(trial.number, None, TrialState.FAIL)

    todo, held = plan(store, sweep_config, "launch")

    assert [c.key for c in todo] == [handed.key] and not held


def test_ctrl_c_reaches_a_cell_on_two_processes_through_its_worker_and_the_cell_continues(sweep, make_sweep,
                                                                                         tiny_base, workdir):
    tiny_base["train"].update(max_steps=None, steps=8, resume_every=1e-6, devices_per_cell=2)
    config = make_sweep(base=tiny_base, seeds=[0])
    launch = subprocess.Popen([sys.executable, "-m", "fusionlab", "sweep", str(config)], env=_environment(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        _wait_for_points(workdir / "results" / "tiny" / "trials", 2, 1, launch)
        os.killpg(launch.pid, signal.SIGINT)  # the worker's group: torchrun runs in a session of its own
        output, _ = launch.communicate(timeout=180)
    finally:
        if launch.poll() is None:
            os.killpg(launch.pid, signal.SIGKILL)
    assert launch.returncode == 130, output
    trials = pd.read_csv(workdir / "results" / "tiny" / "trials.csv")
    assert trials["state"].tolist() == ["FAIL"] and trials["error"][0].startswith("interrupted at step")
    step, variant = int(trials["error"][0].split()[3].rstrip(":")), trials["variant"][0]
    folder = workdir / "results" / "tiny" / "trials" / str(trials["trial_id"][0])
    assert step >= 2 and (folder / "resume" / f"step-{step:08d}.json").is_file()
    assert "stopped on request at step" in (folder / "torchrun.log").read_text()

    assert sweep(config) == 0

    trials = pd.read_csv(workdir / "results" / "tiny" / "trials.csv")
    complete = trials[trials["state"] == "COMPLETE"].set_index("variant")
    assert len(complete) == 2 and complete.loc[variant, "resumed_from_step"] == step
