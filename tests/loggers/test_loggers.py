"""What a run relies on from the loggers whatever the trackers do: a missing library is refused when the
config loads, a tracker that fails is dropped with one warning, and a continued run keeps its runs."""
import logging

import pytest

from fusionlab.config import RunConfig, from_dict, validate
from fusionlab.errors import FusionlabError
from fusionlab.loggers import Loggers, RunIdentity, flatten, kinds


def test_a_logger_not_installed_is_one_line_naming_the_extra_at_load_time(monkeypatch):
    monkeypatch.setitem(kinds.MODULES, "wandb", "no_such_module_here")
    config = from_dict(RunConfig, {"train": {"loggers": ["wandb"]}}, "run.yaml")

    with pytest.raises(FusionlabError) as error:
        validate(config, "run.yaml")
    message = str(error.value)
    assert "train.loggers" in message and "pip install 'fusionlab[wandb]'" in message and "\n" not in message


def test_an_unknown_logger_is_refused_with_the_known_ones():
    with pytest.raises(FusionlabError, match="tensorboard"):
        from_dict(RunConfig, {"train": {"loggers": ["tensorbord"]}}, "run.yaml")


class Broken:
    """A tracker whose every call fails, as one on a full disk or behind a dead server would."""

    def __init__(self):
        self.calls = 0

    def log(self, step, scalars):
        self.calls += 1
        raise OSError(28, "No space left on device")


class Kept:
    def __init__(self):
        self.steps = []

    def log(self, step, scalars):
        self.steps.append(step)

    def close(self):
        pass


def test_a_failing_tracker_warns_once_and_the_others_go_on(caplog):
    broken, kept = Broken(), Kept()
    loggers = Loggers({"mlflow": broken, "tensorboard": kept})

    with caplog.at_level(logging.WARNING, logger="fusionlab.loggers"):
        for step in (1, 2, 3):
            loggers.log(step, {"train/loss": 1.0})
        loggers.close()

    assert broken.calls == 1 and kept.steps == [1, 2, 3]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "mlflow" in warnings[0] and "No space left" in warnings[0]


def test_identity_keeps_ids_and_its_root_relative_to_the_run(tmp_path):
    run_dir = tmp_path / "results" / "tiny" / "trials" / "3"
    run_dir.mkdir(parents=True)
    RunIdentity("add/0", "tiny", str(tmp_path / "results" / "tiny"), {"wandb": "abc"}).write(run_dir)
    moved = tmp_path / "moved"
    (tmp_path / "results").rename(moved)

    identity = RunIdentity.of(moved / "tiny" / "trials" / "3")
    assert (identity.name, identity.group, identity.ids) == ("add/0", "tiny", {"wandb": "abc"})
    assert identity.root == str((moved / "tiny").resolve())


def test_hyper_parameters_are_flat():
    assert flatten({"train": {"lr": 1e-4, "betas": [0.9, 0.999]}, "model": {"fusion": None}}) == {
        "train.lr": 1e-4, "train.betas": "[0.9, 0.999]", "model.fusion": "null"}
