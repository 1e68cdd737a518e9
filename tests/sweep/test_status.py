"""A sweep watched while it runs: ``fusionlab status`` mid-run on two workers, and each cell's runs in
TensorBoard, W&B (offline) and MLflow, checked against ``trials.csv`` once it is done (one sweep for all)."""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

import fusionlab
from fusionlab.cli import main
from fusionlab.sweep import load_sweep
from fusionlab.sweep.status import sweep_status

ROOT = Path(fusionlab.__file__).resolve().parents[1]
STEPS = 40  # long enough for two reads of a running cell at one heartbeat a second
# the tiny sweep of conftest.py, one seed, longer cells, with all three loggers
SWEEP = {"name": "tiny", "seeds": [0], "heartbeat": {"interval": 1, "grace": 10}, "latency": {"runs": 2, "warmup": 1},
         "base": {"data": {"train": {"split": "train", "num_images": 4, "image_size": 64},
                           "val": {"split": "val", "num_images": 2, "image_size": 64}},
                  "train": {"batch_size": 2, "steps": STEPS, "masks_per_image": 4, "device": "cpu",
                            "loggers": ["tensorboard", "wandb", "mlflow"]},
                  "eval": {"prompts": ["box", "click1"], "device": "cpu"}},
         "variants": [{"name": "add", "group": "fusion", "model": {"fusion": "add"}}]}


def status_of(config: Path, *args: str) -> tuple:
    """``fusionlab status CONFIG ARGS`` in this process: (exit code, printed table)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["status", str(config), *args])
    return code, out.getvalue()


def running_steps(config: Path) -> dict:
    """``(variant, seed) → step`` of the cells RUNNING with a reported step."""
    status = sweep_status(load_sweep(config))
    return {(c.variant, c.seed): c.progress["step"] for c in status.cells
            if c.state == "RUNNING" and "step" in c.progress}


@pytest.fixture(scope="module")
def watched(tmp_path_factory, synthetic_cache):
    """A two-variant, one-seed sweep with all three loggers on two workers; what status showed mid-run."""
    workdir = tmp_path_factory.mktemp("watched")
    config = workdir / "sweep.yaml"
    config.write_text(yaml.safe_dump(SWEEP, sort_keys=False))
    env = {**os.environ, "FUSIONLAB_THREADS": "2", "OMP_NUM_THREADS": "1", "FUSIONLAB_CACHE": str(synthetic_cache),
           "WANDB_MODE": "offline", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("MLFLOW_TRACKING_URI", None)
    launch = subprocess.Popen([sys.executable, "-m", "fusionlab", "sweep", str(config), "--workers", "2"], cwd=workdir,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        first, second, table = {}, {}, ""
        deadline = time.time() + 240
        while not first or not any(second.get(cell, -1) > step for cell, step in first.items()):
            assert launch.poll() is None and time.time() < deadline, "the sweep ended before status saw a step move"
            if not first:
                first = running_steps(config)
                if first:
                    code, table = status_of(config)
                    assert code == 0
            else:
                second = running_steps(config)
            time.sleep(0.2)
        output, _ = launch.communicate(timeout=300)
        assert launch.returncode == 0, output
        yield {"config": config, "results": workdir / "results" / "tiny", "first": first, "second": second,
               "table": table}
    finally:
        os.chdir(cwd)
        if launch.poll() is None:
            os.killpg(launch.pid, signal.SIGKILL)
            launch.wait()


def test_status_mid_run_shows_running_cells_whose_step_moves(watched):
    moved = {cell for cell in watched["first"] if watched["second"].get(cell, -1) > watched["first"][cell]}
    assert moved
    running = [line for line in watched["table"].splitlines() if " RUNNING " in line]
    assert any(f" cpu " in line and f"/{STEPS} " in line for line in running)  # device, step/steps
    assert watched["table"].splitlines()[-1].startswith("sweep tiny: ")


def test_status_of_a_finished_sweep_has_the_states_of_dry_run(watched, capsys):
    os.chdir(watched["config"].parent)
    code, table = status_of(watched["config"])
    assert code == 0
    assert main(["sweep", str(watched["config"]), "--dry-run"]) == 0
    dry_run = capsys.readouterr().out.splitlines()[1:-1]
    states = [line.split()[2] for line in table.splitlines()[1:-1]]
    assert states == [line.split()[4] for line in dry_run] == ["COMPLETE", "COMPLETE"]
    code, by_folder = status_of(watched["results"])
    assert code == 0 and sorted(by_folder.splitlines()[1:]) == sorted(table.splitlines()[1:])  # in claim order


def test_each_cell_is_one_run_in_each_logger_with_the_numbers_of_trials_csv(watched):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing import event_accumulator

    from fusionlab.loggers.mlflow import tracking_uri

    results = watched["results"]
    trials = pd.read_csv(results / "trials.csv").set_index("trial_id")
    assert len(trials) == 2 and (trials["state"] == "COMPLETE").all()
    identities = {number: json.loads((results / "trials" / str(number) / "loggers.json").read_text())
                  for number in trials.index}
    assert {i["group"] for i in identities.values()} == {"tiny"}
    assert sorted(i["name"] for i in identities.values()) == ["add/0", "rgb_only/0"]

    experiment = MlflowClient(tracking_uri(str(results))).get_experiment_by_name("tiny")
    runs = MlflowClient(tracking_uri(str(results))).search_runs([experiment.experiment_id])
    assert sorted(run.info.run_id for run in runs) == sorted(i["ids"]["mlflow"] for i in identities.values())
    wandb_ids = {path.stem[len("run-"):] for path in (results / "wandb").glob("offline-run-*/run-*.wandb")}
    assert wandb_ids == {i["ids"]["wandb"] for i in identities.values()}

    for number, row in trials.iterrows():
        run = next(r for r in runs if r.info.run_id == identities[number]["ids"]["mlflow"])
        assert run.data.tags["mlflow.runName"] == f"{row['variant']}/{row['seed']}"
        for column in ("box_miou", "params_m", "gmacs", "latency_ratio"):
            name = f"eval/{column}" if column == "box_miou" else f"cost/{column}"
            assert run.data.metrics[name] == pytest.approx(row[column]), (number, column)
        events = event_accumulator.EventAccumulator(str(results / "trials" / str(number) / "tensorboard"))
        events.Reload()
        assert events.Scalars("eval/box_miou")[-1].value == pytest.approx(row["box_miou"], rel=1e-6)
        assert events.Scalars("train/loss")[-1].step == STEPS


@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgresql"])
def test_status_reads_the_progress_heartbeats_write_on_every_storage(kind, tmp_path, request, capsys):
    from fusionlab.sweep import trial_attrs
    from fusionlab.sweep.progress import CellProgress
    from fusionlab.sweep.store import Store, bind_results, claim, heartbeat

    url = {"sqlite": f"sqlite:///{tmp_path}/study.db", "journal": f"journal:{tmp_path}/study.log"}.get(kind) or \
        request.getfixturevalue("postgres_url")
    store, results = Store(url, "tiny"), tmp_path / "results" / "tiny"
    bind_results(results, store)
    trial = claim(store, "add/seed=0/abcd1234", {trial_attrs.VARIANT: "add", trial_attrs.SEED: 0,
                                                 trial_attrs.DEVICE: "cuda:1"})
    progress = CellProgress(resumed_from=20)
    with heartbeat(store, trial.number, 1, progress.attrs):
        progress.update(30, 100, {"train/loss": 0.5, "train/img_s": 12.0})
        time.sleep(1.5)
        progress.update(40, 100, {"train/loss": 0.25, "train/img_s": 12.5})
        time.sleep(1.5)

    assert main(["status", str(results), "--storage", url]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    worker = f"{os.uname().nodename}:{os.getpid()}"  # the claiming process's
    assert row[:8] == ["add", "0", "RUNNING", str(trial.number), worker, "cuda:1", "40/100", "0.2500"]
    assert row[8] == "12.5" and row[11] == "20"  # img/s, resumed from
