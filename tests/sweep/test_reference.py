"""Reference rows: released models (a SAM ViT, an EfficientViT-SAM zero-shot) evaluated as they are, once,
by the same protocol as the trained variants, with their costs, and reported beside them."""
from __future__ import annotations

import contextlib
import io
import json

import pandas as pd
import pytest
import torch
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
    assert (references["train_steps"] == 0).all() if "train_steps" in references else True
    sam_vit = trials.loc["sam_vit"]
    assert sam_vit["params_m"] == pytest.approx(sum(p.numel() for p in build_model("sam-vit-tiny").parameters())
                                                / 1e6, abs=1e-3)
    assert sam_vit["gmacs"] > 0 and sam_vit["latency_ratio"] > 0 and sam_vit["latency_ratio"] != 1.0
    assert not (released / "results" / "tiny" / "trials" / str(int(sam_vit["trial_id"])) / "train_log.csv").exists()

    report = make_report(released / "results" / "tiny")
    assert "SAM ViT (tiny)" in report.markdown and "EfficientViT-SAM zero-shot" in report.markdown
    for label, name in (("SAM ViT (tiny)", "sam_vit"), ("EfficientViT-SAM zero-shot", "evit_zero_shot")):
        row = next(line for line in report.markdown.splitlines() if f"| {label} |" in line)
        assert f"{trials.loc[name, 'params_m']:.2f}" in row and f"{trials.loc[name, 'gmacs']:.2f}" in row
        assert "±" not in row
        _scores_with_cocoeval(released / "results" / "tiny" / "trials" / str(int(trials.loc[name, "trial_id"])))


def _scores_with_cocoeval(folder):
    """Every predictions file of a trial loads with ``COCO.loadRes`` and is scored by ``COCOeval``."""
    annotations = json.loads((folder / "images.json").read_text())["annotations"]
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(annotations)
        for prompt in ("box", "click1"):
            predictions = truth.loadRes(str(folder / f"predictions_{prompt}.json"))
            assert len(predictions.getAnnIds()) == len(truth.getAnnIds())
            scored = COCOeval(truth, predictions, iouType="segm")
            scored.evaluate()
            scored.accumulate()
            scored.summarize()
    assert 0.0 <= scored.stats[0] <= 1.0


def test_a_reference_without_a_checkpoint_is_refused(sweep, make_sweep, capsys):
    variants = [{"name": "sam_vit", "group": "reference", "model": {"preset": "sam-vit-tiny"}}]
    assert sweep(make_sweep(variants=variants)) == 2
    assert "group 'reference' evaluates a released model as it is: it needs model.checkpoint" in capsys.readouterr().err
