"""The three trackers read back with their own libraries after one tiny ``fusionlab train`` (no mocks).

W&B is read with wandb's own reader of offline run files, ``wandb leet inspect RUN.wandb --json``
(wandb-core's transaction-log reader, one JSON record per line); TensorBoard with
``tensorboard.backend.event_processing.event_accumulator``; MLflow with ``mlflow.tracking.MlflowClient``.
"""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fusionlab.cli import main
from fusionlab.loggers.mlflow import tracking_uri

pytestmark = pytest.mark.usefixtures("small_world")

STEPS = 3


def tiny_run(loggers):
    return {"model": {"fusion": "add"},
            "data": {"train": {"split": "train", "num_images": 4, "image_size": 64},
                     "val": {"split": "val", "num_images": 2, "image_size": 64}},
            "train": {"epochs": 1, "batch_size": 2, "steps": STEPS, "masks_per_image": 4, "device": "cpu",
                      "save_checkpoint": False, "loggers": loggers},
            "eval": {"prompts": ["box"], "device": "cpu"}}


def train_log(folder):
    with open(folder / "train_log.csv") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One run with all three trackers, one with none (same config otherwise)."""
    root = tmp_path_factory.mktemp("trackers")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        for name, loggers in (("logged", ["tensorboard", "wandb", "mlflow"]), ("plain", [])):
            (root / f"{name}.yaml").write_text(yaml.safe_dump(tiny_run(loggers)))
            assert main(["train", str(root / f"{name}.yaml"), "--out", str(root / name)]) == 0
    return root


# what every logged step carries besides lr/<part>: the loss parts, grad norm, epoch, img/s and add's alpha
SCALARS = {f"train/{name}" for name in ("loss", "bce", "dice", "iou_mse", "grad_norm", "epoch", "img_s")}


def test_trackers_change_nothing_of_training(runs):
    def steps(folder):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in train_log(folder)]

    assert steps(runs / "logged") == steps(runs / "plain")
    assert json.loads((runs / "logged" / "metrics.json").read_text()) == \
        json.loads((runs / "plain" / "metrics.json").read_text())


def test_tensorboard_holds_every_scalar_at_every_step(runs):
    from tensorboard.backend.event_processing import event_accumulator

    events = event_accumulator.EventAccumulator(str(runs / "logged" / "tensorboard"),
                                                size_guidance={event_accumulator.SCALARS: 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    steps = {tag: [e.step for e in events.Scalars(tag)] for tag in tags}
    training = {tag for tag in tags if not tag.startswith(("eval/", "cost/"))}
    assert SCALARS <= training and any(t.startswith("lr/") for t in training) and any(
        t.startswith("gate/") and t.endswith("/alpha") for t in training)
    assert all(steps[tag] == list(range(1, STEPS + 1)) for tag in training)
    losses = [float(row["loss"]) for row in train_log(runs / "logged")]
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx(losses, rel=1e-6)
    metrics = json.loads((runs / "logged" / "metrics.json").read_text())
    assert events.Scalars("eval/box_miou")[-1].value == pytest.approx(metrics["box_miou"], rel=1e-6)


def test_wandb_offline_run_history_holds_every_scalar(runs):
    files = sorted((runs / "logged" / "wandb").glob("offline-run-*/run-*.wandb"))
    identity = json.loads((runs / "logged" / "loggers.json").read_text())
    assert files and {f.stem[len("run-"):] for f in files} == {identity["ids"]["wandb"]}  # one run, continued
    records = [json.loads(line) for f in files for line in subprocess.run(
        [str(Path(sys.executable).parent / "wandb"), "leet", "inspect", str(f), "--json"],
        capture_output=True, text=True, check=True).stdout.splitlines()]
    history = [r["history"] for r in records if r["type"] == "history"]
    assert [h["step"]["num"] for h in history] == list(range(1, STEPS + 1))
    assert all(SCALARS <= set(h["item"]) for h in history)
    losses = [float(row["loss"]) for row in train_log(runs / "logged")]
    assert [h["item"]["train/loss"] for h in history] == pytest.approx(losses)
    config = next(r["run"] for r in records if r["type"] == "run")["config"]["update"]
    assert config["train.seed"] == 0 and config["train.lr"] == 0.0001
    summary = {}
    for record in records:
        if record["type"] == "summary":
            summary.update(record["summary"].get("update", {}))
    metrics = json.loads((runs / "logged" / "metrics.json").read_text())
    assert summary["eval/box_miou"] == pytest.approx(metrics["box_miou"])


def test_mlflow_run_has_params_histories_and_final_metrics(runs):
    from mlflow.tracking import MlflowClient

    folder = runs / "logged"
    client = MlflowClient(tracking_uri(str(folder)))
    run = client.get_run(json.loads((folder / "loggers.json").read_text())["ids"]["mlflow"])
    assert run.info.status == "FINISHED" and run.info.run_name == "logged"
    assert run.data.params["train.seed"] == "0" and run.data.params["train.lr"] == "0.0001"
    losses = [float(row["loss"]) for row in train_log(folder)]
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in history] == list(range(1, STEPS + 1))
    assert [m.value for m in history] == pytest.approx(losses)
    metrics = json.loads((folder / "metrics.json").read_text())
    numeric = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert {k[len("eval/"):]: v for k, v in run.data.metrics.items() if k.startswith("eval/")} == \
        pytest.approx(numeric)


def test_a_resumed_run_continues_its_runs_in_each_tracker(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing import event_accumulator

    from fusionlab.config import RunConfig, from_dict
    from fusionlab.train import StopRequested, request_stop, train

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    data = tiny_run(["tensorboard", "wandb", "mlflow"])
    data["train"]["steps"] = 4
    config = from_dict(RunConfig, data, "run.yaml")

    def stop_at_two(step, steps, scalars):
        if step == 2:
            request_stop()

    with pytest.raises(StopRequested):
        train(config, tmp_path, progress=False, on_log=stop_at_two)
    ids = json.loads((tmp_path / "loggers.json").read_text())["ids"]
    assert train(config, tmp_path, progress=False).resumed_from_step == 2

    assert json.loads((tmp_path / "loggers.json").read_text())["ids"] == ids
    assert {f.stem for f in (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")} == {f"run-{ids['wandb']}"}
    client = MlflowClient(tracking_uri(str(tmp_path)))
    assert len(client.search_runs([client.get_experiment_by_name("fusionlab").experiment_id])) == 1
    assert [m.step for m in client.get_metric_history(ids["mlflow"], "train/loss")] == [1, 2, 3, 4]
    events = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4]
