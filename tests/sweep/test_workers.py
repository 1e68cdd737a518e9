"""Worker processes on one store run every cell exactly once, also when one of them is killed or paused."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import optuna
import pandas as pd
import pytest


def test_two_workers_run_every_cell_once(sweep, make_sweep, workdir):
    config = make_sweep()
    assert sweep(config, "--workers", "2", "--devices", "cpu") == 0
    study = optuna.load_study(study_name="tiny", storage="sqlite:///results/tiny/study.db")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    cells = [t.user_attrs["cell"] for t in complete]
    assert len(cells) == 4 and len(set(cells)) == 4
    for trial in complete:  # what optuna-dashboard shows of each trial
        assert {"variant", "seed", "metrics", "box_miou", "params_m", "latency_ratio", "fusionlab_version"} <= set(
            trial.user_attrs)
        assert trial.value == trial.user_attrs["box_miou"] == trial.user_attrs["metrics"]["box_miou"]
        assert trial.user_attrs["device"] == "cpu"  # each worker pinned to its --devices entry
    trials = pd.read_csv(workdir / "results" / "tiny" / "trials.csv")
    assert (trials["state"] == "COMPLETE").sum() == 4
    assert trials.groupby(["variant", "seed"]).size().tolist() == [1, 1, 1, 1]


def _launch(config: Path) -> subprocess.Popen:
    """``fusionlab sweep CONFIG --workers 2`` in its own process group, output captured."""
    return subprocess.Popen([sys.executable, "-m", "fusionlab.cli", "sweep", str(config), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


@contextmanager
def _reaped(launch: subprocess.Popen) -> Iterator[None]:
    """Kill the launch's whole process group if the block leaves it running (a failed assertion)."""
    try:
        yield
    finally:
        if launch.poll() is None:
            os.killpg(launch.pid, signal.SIGKILL)


def _running_trial(db: Path, launcher: int, deadline: float) -> dict:
    """The first RUNNING trial of a worker process (not the launcher), read from the store."""
    while time.time() < deadline:
        try:
            with sqlite3.connect(db) as connection:
                rows = connection.execute(
                    "SELECT t.number, a.value_json FROM trials t JOIN trial_user_attributes a "
                    "ON a.trial_id = t.trial_id WHERE t.state = 'RUNNING' AND a.key = 'pid'").fetchall()
        except sqlite3.OperationalError:  # tables not made yet
            rows = []
        workers = [(number, int(pid)) for number, pid in rows if int(pid) != launcher]
        if workers:
            return {"number": workers[0][0], "pid": workers[0][1]}
        time.sleep(0.05)
    raise AssertionError("no worker ever ran a trial")


def _exactly_once(workdir: Path, cells: int) -> pd.DataFrame:
    trials = pd.read_csv(workdir / "results" / "tiny" / "trials.csv").set_index("trial_id")
    complete = trials[trials["state"] == "COMPLETE"]
    assert complete.groupby(["variant", "seed"]).size().tolist() == [1] * cells
    return trials


def test_a_killed_worker_s_cell_is_rerun_by_its_sibling_in_the_same_launch(make_sweep, tiny_base, workdir):
    tiny_base["train"]["max_steps"] = 3
    # two cells, one per worker; the sibling finishes its own well within the grace, then says what it waits for
    launch = _launch(make_sweep(base=tiny_base, seeds=[0], heartbeat={"interval": 1, "grace": 8}))
    with _reaped(launch):
        victim = _running_trial(workdir / "results" / "tiny" / "study.db", launch.pid, time.time() + 120)
        os.kill(victim["pid"], signal.SIGKILL)
        output, _ = launch.communicate(timeout=300)
    assert launch.returncode == 0, output
    trials = _exactly_once(workdir, 2)
    assert trials.loc[victim["number"], "state"] == "FAIL" and "heartbeat" in trials.loc[victim["number"], "error"]
    assert "waiting for 1 cell(s) that other workers run" in output and "run again here" in output
    assert "Traceback" not in output


def test_a_paused_worker_that_wakes_after_its_cell_was_taken_over_stops_cleanly(make_sweep, tiny_base, workdir):
    tiny_base["train"]["max_steps"] = 3
    launch = _launch(make_sweep(base=tiny_base))
    db = workdir / "results" / "tiny" / "study.db"
    with _reaped(launch):
        victim = _running_trial(db, launch.pid, time.time() + 120)
        os.kill(victim["pid"], signal.SIGSTOP)
        deadline = time.time() + 120
        while time.time() < deadline:  # the sibling declares it dead after the grace (3 s)
            try:
                with sqlite3.connect(db, timeout=2) as connection:
                    state = connection.execute("SELECT state FROM trials WHERE number = ?",
                                               (victim["number"],)).fetchone()[0]
            except sqlite3.OperationalError:  # paused in the middle of a write (its heartbeat): let it finish that
                os.kill(victim["pid"], signal.SIGCONT)
                time.sleep(0.2)
                os.kill(victim["pid"], signal.SIGSTOP)
                continue
            if state == "FAIL":
                break
            time.sleep(0.1)
        os.kill(victim["pid"], signal.SIGCONT)
        output, _ = launch.communicate(timeout=300)
    assert launch.returncode == 0, output
    trials = _exactly_once(workdir, 4)
    assert trials.loc[victim["number"], "state"] == "FAIL"
    log = (workdir / "results" / "tiny" / "sweep.log").read_text()
    assert "Traceback" not in output + log and "UpdateFinishedTrialError" not in output + log
    assert f"trial {victim['number']}" in output and "discarded" in output


def test_workers_get_a_gpu_each_and_share_one_only_when_asked(monkeypatch):
    import torch

    from fusionlab.errors import FusionlabError
    from fusionlab.sweep.workers import assign_devices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert assign_devices(None, None) == [None] and assign_devices(2, None) == [None, None]  # CPU: the config's
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert assign_devices(None, None) == ["cuda:0", "cuda:1"]
    assert assign_devices(None, ["cuda:1"], per_device=2) == ["cuda:1", "cuda:1"]
    assert assign_devices(4, None, per_device=2) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    with pytest.raises(FusionlabError, match=r"^--workers 3 on 2 GPU\(s\) with --workers-per-device 1: cells would "
                                             r"share a GPU; pass --workers-per-device 2 to allow it"):
        assign_devices(3, None)
    with pytest.raises(FusionlabError, match=r"^--devices: 'cuda:7': this machine has 2 CUDA devices"):
        assign_devices(None, ["cuda:0", "cuda:7"])
    # train.devices_per_cell: 2 on 5 GPUs: a worker per pair, whose cells take its GPU and the next
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 5)
    assert assign_devices(None, None, per_cell=2) == ["cuda:0", "cuda:2"]


def test_a_cell_on_two_processes_trains_through_torchrun_as_one_process_would(make_sweep, sweep, workdir,
                                                                              tiny_base):
    """``train.devices_per_cell: 2`` on the CPU: two gloo processes train each cell; the worker evaluates."""
    one = make_sweep("one.yaml", seeds=[0], base=tiny_base, results_dir="one")
    tiny_base["train"]["devices_per_cell"] = 2
    two = make_sweep("two.yaml", seeds=[0], base=tiny_base, results_dir="two")
    assert sweep(one) == 0 and sweep(two) == 0
    results = {name: pd.read_csv(workdir / name / "tiny" / "trials.csv").set_index("variant") for name in ("one", "two")}
    assert (results["two"]["state"] == "COMPLETE").all()
    assert results["two"]["box_miou"].tolist() == pytest.approx(results["one"]["box_miou"].tolist(), abs=0.05)
    trial = workdir / "two" / "tiny" / "trials" / str(int(results["two"].loc["add", "trial_id"]))
    assert json.loads((trial / "train_done.json").read_text())["steps"] == 1 and (trial / "instances.csv").is_file()
    assert not (trial / "checkpoint.safetensors").exists()  # keep_checkpoints is off
    assert "process group of 2 processes (gloo)" in (trial / "torchrun.log").read_text()


@pytest.mark.parametrize("worker", [None, 0, 1])
def test_a_lone_worker_runs_the_plan_in_order_and_one_of_several_starts_from_its_costly_end(
        make_sweep, monkeypatch, worker):
    from optuna.trial import TrialState

    from fusionlab.sweep import load_sweep
    from fusionlab.sweep import workers as workers_module

    sweep = load_sweep(str(make_sweep()), [])
    ran = []

    def fake_cell(store, sweep, cell, trial):  # records the order; the cell "completes" at once
        ran.append(cell.key)
        store.set_attrs(trial.number, {"metrics": {"box_miou": 1.0}})
        store.finish(trial.number, 1.0, TrialState.COMPLETE)
        return {"state": "COMPLETE", "trial": trial.number, "metrics": {"box_miou": 1.0}, "wall_s": 0.0}

    monkeypatch.setattr(workers_module, "run_cell", fake_cell)
    workers_module.work(sweep, "run", say=lambda line: None, worker=worker)
    plan = [cell.key for cell in sweep.cells()]
    assert plan[0].startswith("rgb_only/") and plan[-1].startswith("add/")  # the baseline first
    if worker is None:
        assert ran == plan
    else:  # worker k's first claim is the k-th from the end (others take the ones before), then from the end
        first = plan[::-1][worker]
        assert ran == [first] + [key for key in plan[::-1] if key != first]


def test_the_launcher_counts_a_first_ctrl_c_and_stops_at_the_second():
    import signal

    from fusionlab.sweep.workers import Interrupts

    before = signal.getsignal(signal.SIGINT)
    with Interrupts() as interrupts:
        signal.raise_signal(signal.SIGINT)  # counted, wherever it lands: nothing raised that code could swallow
        assert interrupts.count == 1
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before
