"""The qualitative figure: which instances it shows, drawn from saved predictions only."""
import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from fusionlab.cli import main
from fusionlab.errors import FusionlabError
from fusionlab.report import make_report, qualitative
from fusionlab.report.loading import load_results
from fusionlab.report.stats import summarize
from fusionlab.results import Predictions, depth_preview, write_predictions

SIDE = 32
PNG = b"\x89PNG\r\n\x1a\n"
# Trials of the fake sweep (conftest.write_sweep): rgb_only seeds 0-2 are 0-2, fusion_add 3-5, fusion_gated 6-8.
RGB_ONLY, ADD, GATED = "0", "3", "6"


def _rectangle(ann_id: int) -> tuple:
    """``(row0, row1, col0, col1)`` of an object: four per image, side by side."""
    k = ann_id % 4
    return 2 + 7 * k, 8 + 7 * k, 2 + 7 * k, 14 + 4 * k


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def _mask(ann_id: int, share: float = 1.0) -> np.ndarray:
    """The object's rectangle, cut to ``share`` of its width (a prediction of about that IoU)."""
    r0, r1, c0, c1 = _rectangle(ann_id)
    mask = np.zeros((SIDE, SIDE), dtype=bool)
    mask[r0:r1, c0:c0 + max(1, round((c1 - c0) * share))] = True
    return mask


def add_predictions(root: Path, trials: Sequence[str] = (RGB_ONLY, ADD, GATED)) -> Path:
    """Give ``trials`` of a fake sweep what an evaluation keeps (through the real writer), on a
    tiny COCO set written under ``root/data`` with the sweep's image and annotation ids."""
    data = root / "data"
    (data / "images").mkdir(parents=True)
    ids = pd.read_csv(root / "trials" / RGB_ONLY / "instances.csv").query("prompt == 'box'")
    images = []
    for image_id, objects in ids.groupby("image_id"):
        rgb = np.full((SIDE, SIDE, 3), 90, dtype=np.uint8)
        for ann_id in objects["ann_id"]:
            rgb[_mask(ann_id)] = (60 * (ann_id % 4) + 40, 200 - 40 * (ann_id % 4), 120)
        Image.fromarray(rgb).save(data / "images" / f"{image_id}.png")
        images.append({"id": int(image_id), "file_name": f"{image_id}.png", "height": SIDE, "width": SIDE})
    annotations = []
    for row in ids.itertuples():
        r0, r1, c0, c1 = _rectangle(row.ann_id)
        annotations.append({"id": int(row.ann_id), "image_id": int(row.image_id), "category_id": 1,
                            "segmentation": _rle(_mask(row.ann_id)), "area": float((r1 - r0) * (c1 - c0)),
                            "bbox": [c0, r0, c1 - c0, r1 - r0], "iscrowd": 0})
    (data / "instances.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                      "categories": [{"id": 1, "name": "thing"}]}))
    for trial in trials:
        instances = pd.read_csv(root / "trials" / trial / "instances.csv")
        entries = {prompt: [_entry(prompt, r) for r in rows.itertuples()]
                   for prompt, rows in instances.groupby("prompt")}
        ramp = depth_preview(np.linspace(0.0, 1.0, SIDE)[None].repeat(SIDE, 0))
        write_predictions(root / "trials" / trial, Predictions(
            entries=entries, annotations=str(data / "instances.json"), dataset="tiny",
            depth=None if trial == RGB_ONLY else "ramp",
            images=[{"image_id": i["id"], "file_name": i["file_name"], "height": SIDE, "width": SIDE,
                     "path": str(data / "images" / i["file_name"])} for i in images],
            depth_previews={} if trial == RGB_ONLY else {i["id"]: ramp for i in images}))
    return root


def _entry(prompt: str, row) -> dict:
    """A predictions entry whose mask has about the row's IoU."""
    return {"image_id": int(row.image_id), "category_id": 1, "segmentation": _rle(_mask(row.ann_id, row.iou)),
            "score": float(row.iou), "prompt": prompt, "ann_id": int(row.ann_id), **_prompt(prompt, row.ann_id)}


def _prompt(prompt: str, ann_id: int) -> dict:
    r0, r1, c0, c1 = _rectangle(ann_id)
    if prompt == "box":
        return {"box": [c0, r0, c1, r1]}
    return {"points": [[c0 + 1, r0 + 1, 1], [c1 + 1, r1, 0]][:int(prompt[-1])]}


def _diffs(root: Path, variant: str, baseline: str = RGB_ONLY, prompt: str = "box") -> pd.DataFrame:
    def rows(trial):
        frame = pd.read_csv(root / "trials" / trial / "instances.csv")
        return frame[frame["prompt"] == prompt]

    return qualitative.instance_diffs(rows(variant), rows(baseline))


# ---------------------------------------------------------------- which rows
def test_rows_are_the_largest_gains_then_losses_then_seeded_random_ones():
    diffs = pd.DataFrame({"image_id": [1, 1, 2, 2, 3, 3, 4], "ann_id": [10, 11, 20, 21, 30, 31, 40],
                          "iou_baseline": 0.5, "iou_variant": 0.5,
                          "diff": [0.30, -0.10, 0.05, -0.40, 0.30, 0.0, -0.20]})
    chosen = qualitative.select_instances(diffs, (2, 2, 2), seed=0)
    assert chosen["kind"].tolist() == ["gain", "gain", "loss", "loss", "random", "random"]
    assert chosen["ann_id"].tolist()[:4] == [10, 30, 21, 40]  # a tie goes to the smaller (image_id, ann_id)
    assert set(chosen["ann_id"].tolist()[4:]) < {11, 20, 31}
    assert chosen.equals(qualitative.select_instances(diffs, (2, 2, 2), seed=0))
    # fewer gains than asked: only those there are
    assert qualitative.select_instances(diffs, (9, 0, 0))["ann_id"].tolist() == [10, 30, 20]


def test_the_default_variant_is_the_fusion_variant_with_the_best_delta(tmp_path, sweep_writer):
    results = load_results(sweep_writer(tmp_path / "s"))
    assert qualitative.default_variant(summarize(results, n_boot=20)) == "fusion_add"


# ---------------------------------------------------------------- the figure
@pytest.fixture
def with_predictions(tmp_path, sweep_writer) -> Path:
    """The fake sweep with predictions for seed 0 of rgb_only, fusion_add and fusion_gated."""
    return add_predictions(sweep_writer(tmp_path / "demo_sweep"))


def test_report_draws_the_figure_of_the_top_gains_and_losses(with_predictions, tmp_path):
    report = make_report(with_predictions, out_dir=tmp_path, n_boot=20)
    assert report.paths["qualitative.png"].read_bytes()[:8] == PNG
    assert report.paths["qualitative.pdf"].read_bytes()[:5] == b"%PDF-"
    results = load_results(with_predictions)
    figure = qualitative.qualitative_figure(results, summarize(results, n_boot=20))
    diffs = _diffs(with_predictions, ADD)
    expected = pd.concat([diffs.nlargest(3, "diff"), diffs.nsmallest(3, "diff")])
    labels = [ax.get_ylabel() for ax in figure.axes[0::5]]
    assert len(labels) == 3 + 3 + 2
    for label, row in zip(labels, expected.itertuples()):
        assert f"image {row.image_id}, object {row.ann_id}" in label
    assert [ax.get_xlabel() for ax in figure.axes[2:4]] == [f"IoU {expected['iou_baseline'].iloc[0]:.2f}",
                                                            f"IoU {expected['iou_variant'].iloc[0]:.2f}"]
    assert "training seed 0" in figure.get_suptitle()


def test_variant_prompt_and_rows_can_be_chosen_from_the_command_line(with_predictions, tmp_path, capsys):
    assert main(["report", str(with_predictions), "--out", str(tmp_path), "--n-boot", "20", "--quiet",
                 "--qualitative-variant", "fusion_gated", "--qualitative-prompt", "click3",
                 "--qualitative-rows", "1,1,0"]) == 0
    assert (tmp_path / "qualitative.png").read_bytes()[:8] == PNG
    assert main(["report", str(with_predictions), "--qualitative-rows", "1,x"]) == 2
    error = capsys.readouterr().err
    assert "--qualitative-rows '1,x': expected GAINS,LOSSES,RANDOM" in error and error.count("\n") == 1


@pytest.mark.parametrize("options, message", [
    ({"qualitative_variant": "rgb_only"}, "qualitative variant 'rgb_only': not a non-baseline variant"),
    ({"qualitative_prompt": "click2"}, "qualitative prompt 'click2': not evaluated by the sweep"),
    ({"qualitative_rows": (0, 0, 0)}, r"qualitative rows \(0, 0, 0\): expected"),
    ({"qualitative_rows": (1, -1, 0)}, r"qualitative rows \(1, -1, 0\): expected"),
])
def test_bad_options_are_one_line_errors_before_anything_is_written(with_predictions, tmp_path, options, message):
    with pytest.raises(FusionlabError, match=message) as err:
        make_report(with_predictions, out_dir=tmp_path / "out", n_boot=20, **options)
    assert "\n" not in str(err.value) and not (tmp_path / "out").exists()


def test_results_without_predictions_get_no_figure_and_one_line(tmp_path, sweep_writer, caplog):
    root = sweep_writer(tmp_path / "old")
    with caplog.at_level(logging.WARNING, logger="fusionlab.report"):
        report = make_report(root, n_boot=20)
    assert not any(name.startswith("qualitative") for name in report.paths)
    lines = [r.getMessage() for r in caplog.records if "qualitative" in r.getMessage()]
    assert lines == [f"no qualitative figure: {root / 'trials' / ADD / 'predictions_box.json'} missing: the figure "
                     f"needs the evaluations' predicted masks; rerun the evaluations with eval.save_predictions: "
                     f"true (the default)"]


def test_images_moved_away_skip_the_figure_with_a_line(tmp_path, sweep_writer, caplog):
    root = add_predictions(sweep_writer(tmp_path / "moved"), trials=(RGB_ONLY, ADD))
    (root / "data" / "instances.json").rename(root / "data" / "elsewhere.json")
    with caplog.at_level(logging.WARNING, logger="fusionlab.report"):
        report = make_report(root, n_boot=20)
    assert "qualitative.png" not in report.paths
    assert any("instances.json: annotation file not found" in r.getMessage() for r in caplog.records)


def test_without_a_fusion_group_the_default_is_the_best_design(tmp_path, sweep_writer, encoder_variants):
    results = load_results(sweep_writer(tmp_path / "s", variants=encoder_variants, noise=0.0))
    summary = summarize(results, n_boot=20)
    assert qualitative.default_variant(summary) == "same"  # the only fusion-group variant
    summary.loc[summary["group"] == "fusion", "group"] = "encoder"
    assert qualitative.default_variant(summary) == "same"  # +4.0, the largest Δ of the encoders
    summary.loc[summary["group"] == "encoder", "delta"] = float("nan")
    with pytest.raises(qualitative.FigureSkipped, match="no fusion or encoder variant has a Δ box mIoU yet"):
        qualitative.default_variant(summary)
