"""``fusionlab sweep --slurm`` against a real one-node SLURM: one job array of workers, one task preempted.

The preemption is what SLURM does to a task at its time limit, or when it preempts it: SIGTERM
and the job's signal (USR2) to every process of the task. The task hands its cell back at a
resume point and is requeued through submitit; the test lets the requeued task start at once
(SLURM would hold it about 2 minutes).
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Dict

import optuna
import pytest
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState
from safetensors.torch import load_file

pytestmark = pytest.mark.usefixtures("slurm_cluster")

STEPS = 40  # per cell: long enough to be preempted in the middle of its training


def array_tasks(job: str) -> Dict[str, str]:
    """``{"12_0": "RUNNING", "12_1": "PENDING"}``: the array's tasks that SLURM still holds, by squeue."""
    out = subprocess.run(["squeue", "-h", "-r", "-j", job, "-o", "%i %T"], capture_output=True, text=True,
                         timeout=30).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def release_requeued(job: str) -> None:
    """Let the array's pending tasks (a requeued one waits about 2 minutes) start now."""
    for task, state in array_tasks(job).items():
        if state == "PENDING":
            subprocess.run(["scontrol", "update", f"jobid={task}", "StartTime=now"], capture_output=True, timeout=30)


def submitted_job(output: str) -> str:
    line = next(line for line in output.splitlines() if line.startswith("submitted SLURM job "))
    return line.split()[3].rstrip(":")


def _trial_in_training(study: optuna.Study, trials: Path, deadline: float) -> FrozenTrial:
    """A RUNNING trial of an array task that has logged 3 of its steps and not finished training."""
    while time.time() < deadline:
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            log = trials / str(trial.number) / "train_log.csv"
            rows = len(log.read_text().splitlines()) - 1 if log.is_file() else 0
            if trial.user_attrs.get("slurm_job") and 3 <= rows < STEPS - 5:
                return trial
        time.sleep(0.2)
    raise AssertionError("no array task was seen training a cell")


def test_a_job_array_of_two_workers_runs_every_cell_once_and_a_preempted_task_hands_its_cell_back(
        make_sweep, tiny_base, workdir, sweep, capsys, monkeypatch):
    monkeypatch.setenv("FUSIONLAB_THREADS", "1")  # the tasks inherit it: one thread, like the reference run below
    tiny_base["train"].pop("max_steps")
    tiny_base["train"]["steps"] = STEPS
    config = make_sweep(base=tiny_base, keep_checkpoints=True,
                        slurm={"time": "0:30:00", "cpus_per_task": 1, "signal_delay": 30})
    storage = f"journal:{workdir / 'study.log'}"
    assert sweep(config, "--slurm", "--storage", storage, "--workers", "2") == 0
    job = submitted_job(capsys.readouterr().out)
    study = optuna.load_study(study_name="tiny", storage=JournalStorage(JournalFileBackend(str(workdir / "study.log"))))
    results = workdir / "results" / "tiny"
    deadline = time.time() + 300
    try:
        victim = _trial_in_training(study, results / "trials", deadline)
        task = victim.user_attrs["slurm_job"]
        for name in ("TERM", "USR2"):  # a preemption's signals (submitit's handler lets SIGTERM pass)
            subprocess.run(["scancel", f"--signal={name}", task], check=True, timeout=30)
        while array_tasks(job):
            assert time.time() < deadline, f"job {job} did not end: {array_tasks(job)}"
            release_requeued(job)
            time.sleep(1)
    finally:
        subprocess.run(["scancel", job], capture_output=True, timeout=30)

    trials = [t for t in study.get_trials() if not t.user_attrs.get("superseded")]
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(t.user_attrs["cell"].split("/")[0] + f"/{t.user_attrs['seed']}" for t in complete) == [
        "add/0", "add/1", "rgb_only/0", "rgb_only/1"]
    handed_back = study.trials[victim.number]
    assert handed_back.state == TrialState.FAIL and not handed_back.user_attrs.get("stale")
    (continued,) = [t for t in complete if t.user_attrs["cell"] == victim.user_attrs["cell"]]
    # continued in the same launch (not left to the next, as a failure would be), from its resume point
    assert continued.user_attrs["run_id"] == victim.user_attrs["run_id"]
    assert 0 < continued.user_attrs["resumed_from_step"] < STEPS
    log = (results / "slurm" / f"{task}_0_log.out").read_text()
    assert "got the stop signal" in log and f"Requeued job {task}" in log

    from fusionlab.sweep import load_sweep
    from fusionlab.train import train

    cell = next(c for c in load_sweep(config).cells() if c.key == victim.user_attrs["cell"])
    reference = cell.run_config()
    reference.train.save_checkpoint = True
    train(reference, workdir / "uninterrupted", progress=False)
    expected = load_file(workdir / "uninterrupted" / "checkpoint.safetensors")
    resumed = load_file(results / "trials" / str(continued.number) / "checkpoint.safetensors")
    assert expected.keys() == resumed.keys()
    assert all(torch.equal(expected[name], resumed[name]) for name in expected)


def test_sbatch_refusing_the_array_is_one_line_with_its_reason(make_sweep, workdir, sweep, capsys):
    config = make_sweep(slurm={"partition": "no-such-partition"})
    assert sweep(config, "--slurm", "--storage", f"journal:{workdir / 'study.log'}") == 2
    err = capsys.readouterr().err
    assert not [line for line in err.splitlines() if line.startswith("sbatch:")]  # not sbatch's lines besides
    assert err.strip().splitlines()[-1] == (
        "fusionlab sweep: error: sbatch refused the job array (4 task(s), partition no-such-partition, time 4:00:00, "
        "no GPU per task): sbatch: error: invalid partition specified: no-such-partition")
