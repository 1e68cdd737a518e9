"""``search:`` runs TPE trials over a continuous knob, resumable up to ``n_trials``, pruned on a quick score."""
from __future__ import annotations

import optuna
import pandas as pd
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from fusionlab.depth.dataset import DatasetDepth
from fusionlab.sweep import load_sweep
from fusionlab.sweep.search import search_options
from fusionlab.sweep.store import Store

LR = {"train.lr": {"low": 1.0e-5, "high": 1.0e-3, "log": True}}


def test_search_samples_the_knob_within_its_range_and_stops_at_n_trials(sweep, make_sweep, tiny_base, workdir):
    tiny_base["train"].update(epochs=2, max_steps=None)
    config = make_sweep(base=tiny_base, seeds=[0], search={"n_trials": 2, "eval_images": 1, "params": LR})
    assert sweep(config) == 0
    assert sweep(config) == 0  # already at n_trials: nothing more runs
    trials = pd.read_csv(workdir / "results" / "tiny" / "search.csv")
    assert len(trials) == 2 and (trials["state"] == "COMPLETE").all()
    assert trials["train.lr"].between(1.0e-5, 1.0e-3).all() and trials["train.lr"].nunique() == 2
    assert trials["box_miou"].between(0, 100).all()


def test_a_trial_behind_the_median_is_pruned(sweep, make_sweep, tiny_base, workdir):
    tiny_base["train"].update(epochs=2, max_steps=None)
    config = make_sweep(base=tiny_base, seeds=[0],
                        search={"n_trials": 2, "eval_images": 1, "params": LR, "startup_trials": 1})
    # a finished trial that scored 100 at every epoch: any real trial is behind it at its first check
    Store("sqlite:///results/tiny/study.db", "tiny-search").study.add_trial(create_trial(
        params={"train.lr": 1e-4}, distributions={"train.lr": FloatDistribution(1e-5, 1e-3, log=True)},
        value=100.0, intermediate_values={0: 100.0, 1: 100.0}))
    assert sweep(config) == 0
    trials = pd.read_csv(workdir / "results" / "tiny" / "search.csv").set_index("trial_id")
    assert trials.loc[1, "state"] == "PRUNED"
    assert trials.loc[1, "error"].startswith("pruned: epoch 0: quick box mIoU")
    assert not (workdir / "results" / "tiny" / "search" / "1" / "metrics.json").exists()


def test_a_stop_request_fails_its_trial_stops_the_search_and_leaves_no_resume_point(sweep, make_sweep, tiny_base,
                                                                                     workdir, capsys):
    from fusionlab.train import request_stop, stop_requested

    tiny_base["train"].update(epochs=2, max_steps=None, resume_every=1e-6)
    config = make_sweep(base=tiny_base, seeds=[0], search={"n_trials": 2, "eval_images": 1, "params": LR})
    request_stop()  # as a Ctrl-C before the first step: search trials are never continued, so the search stops

    assert sweep(config) == 130

    assert "search stopped on request" in capsys.readouterr().err and not stop_requested()
    trials = pd.read_csv(workdir / "results" / "tiny" / "search.csv")
    assert trials["state"].tolist() == ["FAIL"] and trials["error"][0].startswith("interrupted at step 0")
    assert not (workdir / "results" / "tiny" / "search" / "0" / "resume").exists()
    assert sweep(config) == 0  # the next launch runs the n_trials: a failed trial does not count
    assert (pd.read_csv(workdir / "results" / "tiny" / "search.csv")["state"] == "COMPLETE").sum() == 2


def test_quick_scores_and_the_final_evaluation_prepare_the_val_depth_once(sweep, make_sweep, tiny_base, workdir,
                                                                        monkeypatch):
    prepared = []
    original = DatasetDepth.prepare

    def prepare(self, dataset, progress=True):
        prepared.append(dataset.describe())
        return original(self, dataset, progress)

    monkeypatch.setattr(DatasetDepth, "prepare", prepare)
    tiny_base["train"].update(epochs=2, max_steps=None)
    config = make_sweep(base=tiny_base, seeds=[0], search={"n_trials": 2, "eval_images": 1, "params": LR,
                                                           "pruner": "none"})
    assert sweep(config) == 0
    assert sum("(val," in d for d in prepared) == 1  # 2 trials x (2 quick scores + 1 evaluation) share it
    assert sum("(train," in d for d in prepared) == 2  # one training loader per trial


def test_parallel_workers_start_from_different_points(make_sweep):
    sweep = load_sweep(make_sweep(seeds=[0], search={"n_trials": 2, "params": LR}))

    def first_lr(worker: int) -> float:
        study = optuna.create_study(direction="maximize", **search_options(sweep, worker, finished=0))
        return study.ask().suggest_float("train.lr", 1e-5, 1e-3, log=True)

    assert first_lr(0) != first_lr(1)
    assert first_lr(1) == first_lr(1)  # reproducible for a given worker and history


def test_a_search_with_nothing_to_search_is_a_one_line_error(sweep, make_sweep, capsys):
    baseline_only = [{"name": "rgb_only", "group": "baseline", "model": {"fusion": None}}]
    config = make_sweep(variants=baseline_only, search={"n_trials": 2, "params": LR})
    assert sweep(config, "--dry-run") == 2
    err = capsys.readouterr().err
    assert "nothing to search: the sweep has only the RGB-only baseline" in err and err.count("\n") == 1
