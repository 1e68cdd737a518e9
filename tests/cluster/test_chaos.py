"""Chaos: sweep workers on a real PostgreSQL server, killed with kill -9 at random moments while they train.

Twelve tiny cells, three workers (each a ``fusionlab sweep`` launch, as on three machines), a
resume point after every step. Every few seconds, at random, a worker in the middle of a cell's
training is killed and a new one started in its place (as a scheduler restarts a lost task).
The sweep must end with every cell COMPLETE exactly once, no RUNNING trial left, each killed
trial failed as stale, and each killed cell continued from its resume point, not trained again
from step 0. Bounded: at most :data:`KILLS` kills, :data:`DEADLINE_S` seconds in all. The random
seed is in the assertion messages (``FUSIONLAB_CHAOS_SEED`` replays one).
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import optuna
from optuna.trial import TrialState

WORKERS = 3
KILLS = 4
STEPS = 12
DEADLINE_S = 240


def _launch(config: Path, url: str, log: Path) -> subprocess.Popen:
    with open(log, "a") as output:
        return subprocess.Popen([sys.executable, "-m", "fusionlab.cli", "sweep", str(config), "--storage", url],
                                stdout=output, stderr=subprocess.STDOUT, start_new_session=True)


def _steps_logged(trials: Path, number: int) -> int:
    log = trials / str(number) / "train_log.csv"
    return max(0, len(log.read_text().splitlines()) - 1) if log.is_file() else 0


def test_workers_killed_at_random_moments_leave_every_cell_complete_once_and_resumed(make_sweep, tiny_base, workdir,
                                                                                    postgres_url):
    seed = int(os.environ.get("FUSIONLAB_CHAOS_SEED", time.time_ns() % 100_000))
    chance = random.Random(seed)
    tiny_base["train"].pop("max_steps")
    tiny_base["train"].update(steps=STEPS, resume_every=1e-4)  # minutes: a resume point after every step
    config = make_sweep(base=tiny_base, seeds=[0, 1, 2, 3], variants=[
        {"name": "add", "group": "fusion", "model": {"fusion": "add"}},
        {"name": "gated", "group": "fusion", "model": {"fusion": "gated"}}])
    trials_dir = workdir / "results" / "tiny" / "trials"
    study = optuna.create_study(study_name="tiny", storage=postgres_url, load_if_exists=True, direction="maximize")
    log = workdir / "workers.log"
    workers: List[subprocess.Popen] = [_launch(config, postgres_url, log) for _ in range(WORKERS)]
    killed: Dict[int, int] = {}  # trial number -> steps it had logged when its worker was killed
    start = time.time()
    try:
        next_kill = start + chance.uniform(2, 6)
        while any(w.poll() is None for w in workers):
            assert time.time() - start < DEADLINE_S, f"seed {seed}: the sweep did not end in {DEADLINE_S} s"
            if len(killed) < KILLS and time.time() >= next_kill:
                live = {w.pid: w for w in workers if w.poll() is None}
                # a worker in the middle of a cell's training: past its first resume points, not yet at the end
                victims = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                           if t.user_attrs.get("pid") in live and 3 <= _steps_logged(trials_dir, t.number) < STEPS]
                if victims:
                    victim = chance.choice(victims)
                    os.killpg(victim.user_attrs["pid"], signal.SIGKILL)
                    killed[victim.number] = _steps_logged(trials_dir, victim.number)
                    workers.append(_launch(config, postgres_url, log))
                    next_kill = time.time() + chance.uniform(2, 6)
            time.sleep(0.1)
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)

    output = log.read_text()[-4000:]
    assert len(killed) >= 2, f"seed {seed}: only {len(killed)} kill(s) landed in a cell's training\n{output}"
    survivors = [w.returncode for w in workers if w.returncode != -signal.SIGKILL]
    assert survivors and all(code == 0 for code in survivors), f"seed {seed}: exit codes {survivors}\n{output}"
    trials = [t for t in study.get_trials() if not t.user_attrs.get("superseded")]
    assert not [t.number for t in trials if t.state == TrialState.RUNNING], f"seed {seed}"
    complete = {}
    for trial in trials:
        if trial.state == TrialState.COMPLETE:
            assert trial.user_attrs["cell"] not in complete, f"seed {seed}: a cell completed twice"
            complete[trial.user_attrs["cell"]] = trial
    assert len(complete) == 12, f"seed {seed}: {len(complete)} of 12 cells complete\n{output}"
    for number, steps in killed.items():
        trial = study.trials[number]
        assert trial.state == TrialState.FAIL and trial.user_attrs["stale"], f"seed {seed}: trial {number}"
        resumed = complete[trial.user_attrs["cell"]].user_attrs["resumed_from_step"]
        assert 0 < resumed <= STEPS, (f"seed {seed}: trial {number}, killed after {steps} steps, was trained again "
                                      f"from step {resumed}")
