"""The store: concurrent first launches, the results folder's binding, claims, heartbeats, storage URLs."""
from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from fusionlab.errors import FusionlabError
from fusionlab.sweep.store import BINDING_FILE, Store, bind_results, cell_trials, claim, fail_stale, heartbeat

OPEN_ON_GO = """
import sys, time
from pathlib import Path
from fusionlab.sweep.store import Store, bind_results
print("ready", flush=True)
while not Path(sys.argv[2]).exists():
    time.sleep(0.002)
store = Store("sqlite:///" + sys.argv[1] + "/study.db", "race")
bind_results(Path(sys.argv[1]), store)
"""


def test_concurrent_first_launches_on_a_fresh_sqlite_file_all_open_the_same_study(tmp_path):
    for round_index in range(3):
        folder, go = tmp_path / f"round{round_index}", tmp_path / f"go{round_index}"
        launches = [subprocess.Popen([sys.executable, "-c", OPEN_ON_GO, str(folder), str(go)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
        assert [p.stdout.readline() for p in launches] == ["ready\n"] * 4  # all imported: now open at once
        go.touch()
        outputs = [p.communicate(timeout=120) for p in launches]
        assert [p.returncode for p in launches] == [0] * 4, [err for _, err in outputs]
        store = Store(f"sqlite:///{folder}/study.db", "race")
        ids = {store.study.user_attrs["fusionlab_results_id"]}
        assert len(ids) == 1 and (folder / BINDING_FILE).read_text().count(ids.pop()) == 1


def test_a_results_folder_refuses_a_study_of_another_storage(tmp_path):
    folder = tmp_path / "results"
    bind_results(folder, Store(f"sqlite:///{folder}/study.db", "tiny"))
    bind_results(folder, Store(f"sqlite:///{folder}/study.db", "tiny"))  # the same study again: fine
    with pytest.raises(FusionlabError) as err:
        bind_results(folder, Store(f"journal:{tmp_path}/other.log", "tiny"))
    message = str(err.value)
    assert "\n" not in message and "belong to study 'tiny'" in message and "--storage" in message


def test_a_recreated_database_does_not_adopt_the_old_results(tmp_path):
    folder = tmp_path / "results"
    bind_results(folder, Store(f"sqlite:///{folder}/study.db", "tiny"))
    (folder / "study.db").unlink()
    with pytest.raises(FusionlabError, match="belong to study"):
        bind_results(folder, Store(f"sqlite:///{folder}/study.db", "tiny"))


def test_a_second_claim_of_a_held_cell_is_superseded_and_left_out(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/study.db", "claims")
    first = claim(store, "add/seed=0/abc", {"variant": "add", "seed": 0})
    second = claim(store, "add/seed=0/abc", {"variant": "add", "seed": 0})
    assert first is not None and second is None
    trials = store.trials()
    assert [t.state for t in trials] == [TrialState.RUNNING, TrialState.FAIL]
    assert trials[1].user_attrs["superseded"] is True
    assert [t.number for t in cell_trials(store, ["add/seed=0/abc"])] == [first.number]
    store.finish(first.number, 50.0, TrialState.COMPLETE)
    assert claim(store, "add/seed=0/abc", {"variant": "add", "seed": 0}) is None  # finished: not claimed again


def test_a_silent_trial_is_failed_as_stale_and_a_late_heartbeat_stops_quietly(tmp_path, caplog):
    store = Store(f"sqlite:///{tmp_path}/study.db", "beats")
    trial = claim(store, "add/seed=0/abc", {"variant": "add", "seed": 0})
    store.set_attrs(trial.number, {"heartbeat": time.time() - 10})
    assert [t.number for t in fail_stale(store, grace=5)] == [trial.number]
    assert store.trial(trial.number).user_attrs["stale"] is True
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fusionlab"), heartbeat(store, trial.number, interval=0.05):
        time.sleep(0.4)
    beats = [r for r in caplog.records if "heartbeat" in r.getMessage() or "closed by another" in r.getMessage()]
    assert len(beats) == 1 and beats[0].levelno == logging.WARNING and not beats[0].exc_info


@pytest.mark.parametrize("url, expected", [
    ("study.db", "not a storage URL; expected sqlite:///"),
    ("foo://x", "expected sqlite:///"),
    ("mysql+pymysql://user:secret@127.0.0.1/db", "driver 'pymysql' is not installed; pip install PyMySQL"),
])
def test_bad_storage_urls_are_one_line_errors_that_say_what_to_do(tmp_path, url, expected):
    with pytest.raises(FusionlabError) as err:
        Store(url, "tiny")
    message = str(err.value)
    assert expected in message and "\n" not in message and "secret" not in message


def test_sweep_with_a_bad_storage_exits_2_and_leaves_nothing(sweep, make_sweep, workdir, capsys):
    assert sweep(make_sweep(), "--storage", "foo://x") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not Path(workdir / "results").exists()
