"""Reference rows: released models (a SAM ViT, an EfficientViT-SAM zero-shot) evaluated as they are, once,
by the same protocol as the trained variants, with their costs, and reported beside them."""
from __future__ import annotations

import contextlib
import io
import json

import optuna
import pandas as pd
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from fusionlab import build_model
from fusionlab.report import make_report


@pytest.fixture
def released(workdir):
    """Two 'released' checkpoints: a tiny SAM ViT (Meta's layout) and the demo EfficientViT-SAM."""
    torch.manual_seed(0)
    torch.save(build_model("sam-vit-tiny").state_dict(), workdir / "sam_vit_tiny.pth")
    torch.save(build_model("efficientvit-sam-demo").state_dict(), workdir / "efficientvit_demo.pt")
    return workdir


def test_reference_rows_are_evaluated_once_without_training_and_reported(sweep, make_sweep, released):
    variants = [{"name": "add", "group": "fusion", "model": {"fusion": "add"}},
                {"name": "sam_vit", "group": "reference", "label": "SAM ViT (tiny)",
                 "model": {"preset": "sam-vit-tiny", "checkpoint": "sam_vit_tiny.pth"}},
                {"name": "evit_zero_shot", "group": "reference", "label": "EfficientViT-SAM zero-shot",
                 "model": {"checkpoint": "efficientvit_demo.pt"}}]
    assert sweep(make_sweep(variants=variants)) == 0
    trials = pd.read_csv(released / "results" / "tiny" / "trials.csv").set_index("variant")
    references = trials.loc[["sam_vit", "evit_zero_shot"]]
    assert list(references["seed"]) == [0, 0] and (references["state"] == "COMPLETE").all()
    _assert_only_references_skip_training(released / "results" / "tiny", {"sam_vit", "evit_zero_shot"})
    sam_vit = trials.loc["sam_vit"]
    assert sam_vit["params_m"] == pytest.approx(sum(p.numel() for p in build_model("sam-vit-tiny").parameters())
                                                / 1e6, abs=1e-3)
    assert sam_vit["gmacs"] > 0 and sam_vit["latency_ratio"] > 0 and sam_vit["latency_ratio"] != 1.0

    report = make_report(released / "results" / "tiny")
    assert "SAM ViT (tiny)" in report.markdown and "EfficientViT-SAM zero-shot" in report.markdown
    for label, name in (("SAM ViT (tiny)", "sam_vit"), ("EfficientViT-SAM zero-shot", "evit_zero_shot")):
        row = next(line for line in report.markdown.splitlines() if f"| {label} |" in line)
        assert f"{trials.loc[name, 'params_m']:.2f}" in row and f"{trials.loc[name, 'gmacs']:.2f}" in row
        assert "±" not in row
        _scores_with_cocoeval(released / "results" / "tiny" / "trials" / str(int(trials.loc[name, "trial_id"])))


def _assert_only_references_skip_training(results, references):
    """What the study records of each cell's training (``train_steps``, ``final_loss``) and the files
    training writes (``train_log.csv``, ``train_done.json``): absent for ``references``, present for the rest."""
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{results / 'study.db'}")
    for trial in study.get_trials(states=[optuna.trial.TrialState.COMPLETE]):
        variant, folder = trial.user_attrs["variant"], results / "trials" / str(trial.number)
        wrote = [name for name in ("train_log.csv", "train_done.json") if (folder / name).exists()]
        if variant in references:
            assert (trial.user_attrs["train_steps"], trial.user_attrs["final_loss"], wrote) == (0, None, []), variant
        else:
            assert trial.user_attrs["train_steps"] >= 1 and len(wrote) == 2, variant


def _scores_with_cocoeval(folder):
    """Every predictions file of a trial loads with ``COCO.loadRes``, holds the masks the trial scored
    (``instances.csv``), and gets from ``COCOeval`` the AP those masks must have."""
    annotations = json.loads((folder / "images.json").read_text())["annotations"]
    recorded = pd.read_csv(folder / "instances.csv").set_index(["ann_id", "prompt"])["iou"]
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(annotations)
        for prompt in ("box", "click1"):
            predictions = truth.loadRes(str(folder / f"predictions_{prompt}.json"))
            assert len(predictions.getAnnIds()) == len(truth.getAnnIds())
            best = 0.0  # the highest IoU of a mask with any object of its image and category
            for prediction in predictions.anns.values():
                candidates = truth.loadAnns(truth.getAnnIds(imgIds=prediction["image_id"],
                                                            catIds=prediction["category_id"]))
                ious = mask_utils.iou([prediction["segmentation"]], [truth.annToRLE(a) for a in candidates],
                                      [0] * len(candidates))[0]
                own = ious[[a["id"] for a in candidates].index(prediction["ann_id"])]
                assert own == pytest.approx(recorded[(prediction["ann_id"], prompt)])
                best = max(best, ious.max())
            scored = COCOeval(truth, predictions, iouType="segm")
            scored.evaluate()
            scored.accumulate()
            scored.summarize()
            # random released weights: no mask reaches the lowest IoU threshold (0.5), so every
            # precision COCO averages, and the AP, is 0
            assert best < 0.5
            assert scored.stats[0] == 0.0


def test_a_reference_without_a_checkpoint_is_refused(sweep, make_sweep, capsys):
    variants = [{"name": "sam_vit", "group": "reference", "model": {"preset": "sam-vit-tiny"}}]
    assert sweep(make_sweep(variants=variants)) == 2
    assert "group 'reference' evaluates a released model as it is: it needs model.checkpoint" in capsys.readouterr().err
