"""Two sweep launches on a real PostgreSQL server, one killed with kill -9: every cell runs exactly once.

The server is the throwaway one of ``tests/conftest.py`` (``postgres_url``), on 127.0.0.1 only.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState


def _launch(config: Path, url: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fusionlab.cli", "sweep", str(config), "--storage", url],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def test_two_launches_on_postgres_one_killed_run_every_cell_exactly_once(make_sweep, tiny_base, workdir,
                                                                          postgres_url):
    tiny_base["train"]["max_steps"] = 3
    config = make_sweep(base=tiny_base)
    study = optuna.create_study(study_name="tiny", storage=postgres_url, load_if_exists=True, direction="maximize")
    first, second = _launch(config, postgres_url), _launch(config, postgres_url)
    try:
        deadline, seen = time.time() + 180, {}
        while time.time() < deadline:  # kill the first launch while it runs a cell
            # a claim still RUNNING half a second after it was seen won its cell (a lost claim fails at once)
            running = {t.number for t in study.get_trials(states=(TrialState.RUNNING,))
                       if t.user_attrs.get("pid") == first.pid}
            seen = {n: seen.get(n, time.time()) for n in running}
            if any(time.time() - since >= 0.5 for since in seen.values()):
                break
            time.sleep(0.1)
        else:
            os.killpg(first.pid, signal.SIGKILL)
            raise AssertionError(f"the first launch never ran a cell: {first.communicate()[0][-3000:]}")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        output, _ = second.communicate(timeout=300)
    finally:
        for launch in (first, second):
            if launch.poll() is None:
                os.killpg(launch.pid, signal.SIGKILL)
    assert second.returncode == 0, output
    trials = [t for t in study.get_trials() if not t.user_attrs.get("superseded")]
    complete = [t.user_attrs["cell"] for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4 and len(set(complete)) == 4
    killed = [t for t in trials if t.user_attrs.get("pid") == first.pid and t.state != TrialState.COMPLETE]
    assert len(killed) == 1 and killed[0].state == TrialState.FAIL and killed[0].user_attrs["stale"] is True
    table = pd.read_csv(workdir / "results" / "tiny" / "trials.csv")
    assert table[table["state"] == "COMPLETE"].groupby(["variant", "seed"]).size().tolist() == [1, 1, 1, 1]
