"""The zero-shot protocol: click simulation, buckets, end-to-end runs, mask AP, predictions, ``fusionlab eval``."""
import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy.ndimage import distance_transform_edt

import fusionlab.evaluate as evaluation
from fusionlab.config import RunConfig
from fusionlab.data import build_dataset
from fusionlab.errors import FusionlabError
from fusionlab.cli import main
from fusionlab.evaluate import Click, EvalResult, aggregate_metrics, evaluate, next_click, size_bucket
from fusionlab.models import Predictor, build_model, save_checkpoint

HEIGHT, WIDTH = 48, 64
# Per image: rectangles (row0, row1, col0, col1, camouflaged), each in its own colour on a dark
# background, so an oracle can read every object's mask off the image.
SCENES = [
    [(5, 15, 5, 17, False), (10, 46, 20, 62, True), (40, 43, 2, 5, False)],
    [(2, 40, 2, 40, True), (42, 47, 50, 60, False)],
]
COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40), (200, 40, 200)]
BACKGROUND = (20, 20, 20)


# ---------------------------------------------------------------- a tiny COCO set with depth
@pytest.fixture(scope="module")
def coco_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    (root / "images").mkdir()
    (root / "depth").mkdir()
    images, annotations, colour = [], [], 0
    for image_id, rects in enumerate(SCENES, start=1):
        rgb = np.full((HEIGHT, WIDTH, 3), BACKGROUND, dtype=np.uint8)
        for r0, r1, c0, c1, camouflaged in rects:
            rgb[r0:r1, c0:c1] = COLOURS[colour]
            colour += 1
            mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
            mask[r0:r1, c0:c1] = 1
            rle = mask_utils.encode(np.asfortranarray(mask))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": 1 + len(annotations) % 2,
                                "segmentation": {"size": [HEIGHT, WIDTH], "counts": rle["counts"].decode("ascii")},
                                "area": float(mask.sum()), "bbox": [c0, r0, c1 - c0, r1 - r0], "iscrowd": 0,
                                "camouflaged": camouflaged})
        name = f"{image_id:03d}.png"
        Image.fromarray(rgb).save(root / "images" / name)
        ramp = np.linspace(1.0, 3.0, WIDTH, dtype=np.float32)[None].repeat(HEIGHT, 0) * image_id
        np.save(root / "depth" / f"{image_id:03d}.npy", ramp)
        images.append({"id": image_id, "file_name": name, "height": HEIGHT, "width": WIDTH})
    content = {"images": images, "annotations": annotations,
               "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}
    (root / "instances.json").write_text(json.dumps(content))
    return {"annotations": str(root / "instances.json"), "images": str(root / "images"),
            "depth_root": str(root / "depth")}


@pytest.fixture(scope="module")
def dataset(coco_set):
    return build_dataset("coco", **coco_set)


def run_config(coco_set, **eval_options) -> RunConfig:
    config = RunConfig()
    config.data.dataset = "coco"
    config.data.train = dict(coco_set)
    config.data.val = dict(coco_set)
    for key, value in eval_options.items():
        setattr(config.eval, key, value)
    config.eval.device = "cpu"
    return config


def demo_model(fusion=None):
    torch.manual_seed(0)
    return build_model("efficientvit-sam-demo", fusion=fusion)


def write_detections(path: Path, coco_set, extra=()) -> str:
    gt = json.loads(Path(coco_set["annotations"]).read_text())["annotations"]
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
            for a in gt] + list(extra)
    path.write_text(json.dumps(dets))
    return str(path)


class OraclePredictor(Predictor):
    """Returns each prompt's object exactly (read off the colour under the box centre or the
    first click) as the second of three masks, with the highest predicted IoU."""

    def set_image(self, image, depth=None):
        super().set_image(image, depth)
        self.image = image

    def predict_torch(self, points=None, boxes=None, mask_input=None, multimask_output=True, return_logits=False):
        (old_h, old_w), (new_h, new_w) = self.original_size, self.input_size
        if boxes is not None:
            xy = (boxes[:, :2] + boxes[:, 2:]) / 2
        else:
            xy = points[0][:, 0]
        xy = xy.cpu().numpy() * [old_w / new_w, old_h / new_h]
        objects = [np.all(self.image == self.image[int(y), int(x)], axis=-1) for x, y in xy]
        masks = torch.zeros((len(objects), 3, old_h, old_w), dtype=torch.bool)
        masks[:, 1] = torch.from_numpy(np.stack(objects))
        iou = torch.tensor([[0.1, 0.9, 0.2]]).repeat(len(objects), 1)
        return masks, iou, None


class ConfidentMissPredictor(OraclePredictor):
    """The oracle, except that it misses every object of the second scene (an empty mask) and is
    surer of each miss (predicted IoU 0.95) than of its hits (0.9)."""

    SECOND_SCENE = set(COLOURS[len(SCENES[0]):len(SCENES[0]) + len(SCENES[1])])  # coco_set colours in order

    def predict_torch(self, points=None, boxes=None, mask_input=None, multimask_output=True, return_logits=False):
        masks, iou, low_res = super().predict_torch(points, boxes, mask_input, multimask_output, return_logits)
        for index, mask in enumerate(masks[:, 1]):
            if tuple(self.image[mask.numpy()][0]) in self.SECOND_SCENE:
                mask[:] = False
                iou[index, 1] = 0.95
        return masks, iou, low_res


# ---------------------------------------------------------------- clicks
def test_first_click_is_the_centre_of_a_square():
    gt = np.zeros((21, 21), dtype=bool)
    gt[5:16, 3:14] = True
    assert next_click(gt, np.zeros_like(gt)) == Click(x=8, y=10, positive=True)


def test_image_border_counts_as_boundary():
    gt = np.zeros((30, 30), dtype=bool)
    gt[:11, :11] = True  # a corner square: unpadded, the farthest pixel would be the image corner
    assert next_click(gt, np.zeros_like(gt)) == Click(x=5, y=5, positive=True)


def test_second_click_goes_to_the_larger_error_with_its_label():
    gt = np.zeros((40, 40), dtype=bool)
    gt[5:16, 5:16] = True
    pred = np.zeros_like(gt)
    pred[5:16, 5:8] = True  # misses most of the object (false negatives 4 px deep) ...
    pred[22:37, 22:37] = True  # ... and claims a 15x15 block of background (8 px deep)
    assert next_click(gt, pred, [(10, 10)]) == Click(x=29, y=29, positive=False)
    pred[22:37, 22:37] = False
    pred[30:33, 30:33] = True  # a small false positive: now the missed part wins
    assert next_click(gt, pred, [(10, 10)]) == Click(x=11, y=8, positive=True)


def test_clicks_never_repeat_and_stop_on_a_perfect_mask():
    gt = np.zeros((21, 21), dtype=bool)
    gt[5:16, 3:14] = True
    again = next_click(gt, np.zeros_like(gt), [(8, 10)])
    assert again.positive and (again.x, again.y) != (8, 10)
    assert next_click(gt, gt.copy()) is None


def test_cropped_distance_transform_matches_the_whole_image():
    rng = np.random.default_rng(0)
    for _ in range(20):
        gt = rng.random((25, 33)) < 0.5
        pred = rng.random((25, 33)) < 0.3
        click = next_click(gt, pred)
        fn = distance_transform_edt(np.pad(gt & ~pred, 1))[1:-1, 1:-1]
        fp = distance_transform_edt(np.pad(pred & ~gt, 1))[1:-1, 1:-1]
        region = fn if fn.max() > fp.max() else fp
        row, col = np.unravel_index(np.argmax(region), region.shape)
        assert click == Click(x=col, y=row, positive=bool(fn.max() > fp.max()))


# ---------------------------------------------------------------- buckets and summary
def test_size_buckets_follow_coco_boundaries():
    thresholds = (32.0 ** 2, 96.0 ** 2)
    assert [size_bucket(a, thresholds) for a in (1, 1023.5, 1024, 9215, 9216)] == \
        ["small", "small", "medium", "medium", "large"]


def test_aggregate_metrics_gives_means_counts_and_nan_for_empty_buckets():
    rows = [("box", 0.5, "small", True), ("box", 1.0, "small", False), ("box", 0.2, "medium", False),
            ("click1", 0.1, "small", True), ("click1", 0.3, "small", False), ("click1", 0.8, "medium", False)]
    table = pd.DataFrame(rows, columns=["prompt", "iou", "size", "camouflaged"])
    metrics = aggregate_metrics(table, ["box", "click1"])
    assert metrics["box_miou"] == pytest.approx(100 * 1.7 / 3)
    assert metrics["box_miou_small"] == pytest.approx(75.0)
    assert metrics["click1_miou_medium"] == pytest.approx(80.0)
    assert math.isnan(metrics["box_miou_large"]) and math.isnan(metrics["click1_miou_large"])
    assert metrics["box_miou_camouflaged"] == pytest.approx(50.0)
    assert metrics["click1_miou_plain"] == pytest.approx(55.0)
    assert (metrics["n_instances"], metrics["n_small"], metrics["n_medium"], metrics["n_large"]) == (3, 2, 1, 0)
    assert (metrics["n_camouflaged"], metrics["n_plain"]) == (1, 2)


def test_unknown_prompt_is_a_one_line_error(coco_set, dataset):
    with pytest.raises(FusionlabError, match=r"eval.prompts\[1\]: 'click0'"):
        evaluate(demo_model(), run_config(coco_set, prompts=["box", "click0"]), dataset, progress=False)


# ---------------------------------------------------------------- end to end
def test_random_model_gives_every_metric_and_one_row_per_instance_and_prompt(coco_set, dataset, tmp_path):
    detections = write_detections(tmp_path / "dets.json", coco_set)
    config = run_config(coco_set, prompts=["box", "click1", "click3"], detections=detections)
    result = evaluate(demo_model(), config, progress=False)  # the dataset comes from config.data
    assert isinstance(result, EvalResult)
    for prompt in ("box", "click1", "click3"):
        for suffix in ("", "_small", "_medium", "_large", "_camouflaged", "_plain"):
            assert f"{prompt}_miou{suffix}" in result.metrics
        assert 0.0 <= result.metrics[f"{prompt}_miou"] <= 100.0
        assert math.isnan(result.metrics[f"{prompt}_miou_large"])  # no object reaches 96² px
    for key in ("mask_ap", "mask_ap50", "mask_ap75", "mask_ap_small", "mask_ap_medium", "mask_ap_large"):
        assert key in result.metrics
    assert result.metrics["n_images"] == 2 and result.metrics["n_instances"] == 5
    assert (result.metrics["n_small"], result.metrics["n_medium"]) == (3, 2)
    table = result.instances
    assert len(table) == 5 * 3
    assert list(table.columns[:10]) == ["image_id", "ann_id", "prompt", "iou", "biou", "area", "size",
                                        "rgb_edge", "depth_edge", "depth_contrast"]
    assert "camouflaged" in table.columns and table["iou"].between(0, 1).all() and table["biou"].between(0, 1).all()
    assert table[["rgb_edge", "depth_edge", "depth_contrast"]].notna().all().all()  # the dataset's own depth
    for prompt in ("box", "click1", "click3"):
        biou = table.loc[table["prompt"] == prompt, "biou"]
        assert result.metrics[f"{prompt}_biou"] == pytest.approx(100 * biou.mean())
    assert not table.duplicated(["image_id", "ann_id", "prompt"]).any()


def test_oracle_scores_100_on_every_prompt_and_mask_ap(coco_set, dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(evaluation, "Predictor", OraclePredictor)
    config = run_config(coco_set, prompts=["box", "click1", "click2"],
                        detections=write_detections(tmp_path / "dets.json", coco_set))
    result = evaluate(demo_model(), config, dataset, progress=False)
    for key in ("box_miou", "box_miou_small", "click1_miou_medium", "click2_miou_camouflaged", "box_miou_plain",
                "box_biou", "click2_biou_small"):
        assert result.metrics[key] == pytest.approx(100.0)
    assert result.metrics["mask_ap"] == pytest.approx(100.0)
    assert result.metrics["mask_ap50"] == pytest.approx(100.0)


def test_spurious_detections_lower_mask_ap(coco_set, dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(evaluation, "Predictor", OraclePredictor)
    spurious = [{"image_id": 1, "category_id": 1, "bbox": [0, 44, 3, 3], "score": 0.95}]
    config = run_config(coco_set, prompts=["box"],
                        detections=write_detections(tmp_path / "dets.json", coco_set, spurious))
    result = evaluate(demo_model(), config, dataset, progress=False)
    assert 50.0 < result.metrics["mask_ap"] < 100.0


def test_max_images_limits_the_run(coco_set, dataset):
    result = evaluate(demo_model(), run_config(coco_set, prompts=["box"]), dataset, progress=False, max_images=1)
    assert result.metrics["n_images"] == 1 and set(result.instances["image_id"]) == {1}


# ---------------------------------------------------------------- depth dropped at test time
class DepthSpy(Predictor):
    seen = []

    def set_image(self, image, depth=None):
        DepthSpy.seen.append(depth)
        super().set_image(image, depth)


@pytest.mark.parametrize("option", [{"drop_depth": True}, {"save_predictions": False}])
def test_option_leaves_an_rgb_model_s_results_unchanged(coco_set, dataset, option):
    """Dropping depth an RGB model never reads, or not keeping the predictions, changes no IoU nor metric."""
    model = demo_model()
    default = evaluate(model, run_config(coco_set, prompts=["box", "click2"]), dataset, progress=False)
    changed = evaluate(model, run_config(coco_set, prompts=["box", "click2"], **option), dataset, progress=False)
    pd.testing.assert_frame_equal(default.instances, changed.instances)
    assert default.metrics == changed.metrics


def test_drop_depth_equals_a_constant_depth_source(coco_set, dataset, monkeypatch, depth_sensitive_model):
    monkeypatch.setattr(evaluation, "Predictor", DepthSpy)
    model = depth_sensitive_model
    DepthSpy.seen = []
    dropped = evaluate(model, run_config(coco_set, prompts=["box", "click1"], drop_depth=True), dataset,
                       progress=False)
    assert all(np.all(d == 0.5) for d in DepthSpy.seen) and len(DepthSpy.seen) == 2
    constant = run_config(coco_set, prompts=["box", "click1"])
    constant.depth.source, constant.depth.options = "constant", {"value": 0.5}
    pd.testing.assert_frame_equal(dropped.instances, evaluate(model, constant, dataset, progress=False).instances)
    DepthSpy.seen = []
    own_depth = evaluate(model, run_config(coco_set, prompts=["box", "click1"]), dataset, progress=False)
    assert all(d.std() > 0.1 for d in DepthSpy.seen)
    assert not np.allclose(own_depth.instances["iou"], dropped.instances["iou"])  # the IoUs show the depth read


# ---------------------------------------------------------------- bad input
def test_missing_detections_file_is_a_one_line_error(coco_set, dataset, tmp_path):
    config = run_config(coco_set, prompts=["box"], detections=str(tmp_path / "nope.json"))
    with pytest.raises(FusionlabError, match="nope.json not found") as err:
        evaluate(demo_model(), config, dataset, progress=False)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("content, message", [
    ({"image_id": 1}, "expected a list"),
    ([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 4]}], r"\[0\] lacks 'score'"),
    ([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 4], "score": 1}], r"bbox=\[0, 0, 4\]"),
    (["box"], r"\[0\] is a str"),
])
def test_malformed_detections_are_one_line_errors(coco_set, dataset, tmp_path, content, message):
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(content))
    with pytest.raises(FusionlabError, match=message) as err:
        evaluate(demo_model(), run_config(coco_set, prompts=["box"], detections=str(path)), dataset, progress=False)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- fusionlab eval
def write_run_yaml(tmp_path, coco_set) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"data": {"dataset": "coco", "train": coco_set, "val": coco_set},
                                    "eval": {"prompts": ["box", "click1"], "device": "cpu"}}))
    return path


def test_eval_command_writes_metrics_and_instances(coco_set, tmp_path, capsys):
    checkpoint = save_checkpoint(demo_model(), tmp_path / "model.safetensors")
    out = tmp_path / "out"
    assert main(["eval", str(write_run_yaml(tmp_path, coco_set)), "--checkpoint", str(checkpoint), "--out", str(out),
                 "--set", "eval.max_images=1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_images"] == 1 and metrics["box_miou_large"] is None
    table = pd.read_csv(out / "instances.csv")
    assert len(table) == 3 * 2 and set(table["prompt"]) == {"box", "click1"}
    assert "click1" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "images.json", "instances.csv", "metrics.json",
                                                     "predictions_box.json", "predictions_click1.json"]  # no temp files


def test_eval_command_rejects_a_checkpoint_of_another_model(coco_set, tmp_path, capsys):
    checkpoint = save_checkpoint(demo_model(fusion="add"), tmp_path / "rgbd.safetensors")
    assert main(["eval", str(write_run_yaml(tmp_path, coco_set)), "--checkpoint", str(checkpoint), "--out",
                 str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "does not fit this model" in error and error.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_prompt_batch_does_not_change_results(coco_set, dataset):
    model = demo_model()
    whole = evaluate(model, run_config(coco_set, prompts=["box", "click2"]), dataset, progress=False)
    one_by_one = evaluate(model, run_config(coco_set, prompts=["box", "click2"], prompt_batch=1), dataset,
                          progress=False)
    pd.testing.assert_frame_equal(whole.instances, one_by_one.instances)


# ---------------------------------------------------------------- predictions kept as COCO results
def _ground_truth(coco_set) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(coco_set["annotations"])


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools' decode, numpy 2
def test_predictions_are_coco_results_of_the_scored_masks_one_file_per_prompt(coco_set, dataset, tmp_path):
    result = evaluate(demo_model(fusion="add"), run_config(coco_set, prompts=["box", "click1", "click2"]), dataset,
                      progress=False)
    evaluation.write_result(tmp_path, result)
    gt = _ground_truth(coco_set)
    for prompt in ("box", "click1", "click2"):
        path = tmp_path / f"predictions_{prompt}.json"
        entries = json.loads(path.read_text())
        assert len(entries) == 5 and {e["ann_id"] for e in entries} == set(gt.anns)
        for entry in entries:
            ann = gt.anns[entry["ann_id"]]
            assert (entry["image_id"], entry["category_id"], entry["prompt"]) == (ann["image_id"],
                                                                                  ann["category_id"], prompt)
            assert isinstance(entry["segmentation"]["counts"], str) and isinstance(entry["score"], float)
            if prompt == "box":
                x, y, w, h = ann["bbox"]
                assert entry["box"] == [x, y, x + w, y + h] and "points" not in entry
            else:
                assert 1 <= len(entry["points"]) <= int(prompt[-1]) and entry["points"][0][2] == 1
            # the saved mask is the one the protocol scored (for clicks: after the last click)
            mask, truth = mask_utils.decode(entry["segmentation"]).astype(bool), gt.annToMask(ann).astype(bool)
            iou = result.instances.set_index(["ann_id", "prompt"]).loc[(entry["ann_id"], prompt), "iou"]
            assert (mask & truth).sum() / max((mask | truth).sum(), 1) == pytest.approx(iou)


def _cocoeval_ap(coco_set, predictions: Path) -> float:
    """COCOeval's segm AP (IoU 0.5:0.95, all areas) of a predictions file."""
    gt = _ground_truth(coco_set)
    with contextlib.redirect_stdout(io.StringIO()):
        scored = COCOeval(gt, gt.loadRes(str(predictions)), iouType="segm")
        scored.evaluate()
        scored.accumulate()
        scored.summarize()
    return scored.stats[0]


def test_an_oracle_s_predictions_score_ap_100_with_cocoeval(coco_set, dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(evaluation, "Predictor", OraclePredictor)
    evaluation.write_result(tmp_path, evaluate(demo_model(), run_config(coco_set, prompts=["box"]), dataset,
                                               progress=False))
    assert _cocoeval_ap(coco_set, tmp_path / "predictions_box.json") == pytest.approx(1.0)


def test_confident_misses_score_the_ap_worked_out_by_hand(coco_set, dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(evaluation, "Predictor", ConfidentMissPredictor)
    evaluation.write_result(tmp_path, evaluate(demo_model(), run_config(coco_set, prompts=["box"]), dataset,
                                               progress=False))
    # Each category has one miss (the second scene holds objects 4 and 5), ranked first by its score.
    # Category 1, objects 1, 3, 5: miss, hit, hit: precision 2/3 up to recall 2/3, 67 of COCO's 101
    # recall points (0, 0.01 ... 0.66). Category 2, objects 2, 4: miss, hit: precision 1/2 up to
    # recall 1/2, 51 points. Hits are exact and misses empty, so every IoU threshold gives the same.
    by_hand = (67 * 2 / 3 + 51 * 1 / 2) / 101 / 2
    assert _cocoeval_ap(coco_set, tmp_path / "predictions_box.json") == pytest.approx(by_hand)


def test_images_json_names_the_image_files_and_the_depth_previews(coco_set, dataset, tmp_path):
    evaluation.write_result(tmp_path, evaluate(demo_model(fusion="add"), run_config(coco_set, prompts=["box"]),
                                               dataset, progress=False))
    images = json.loads((tmp_path / "images.json").read_text())
    assert images["annotations"] == str(Path(coco_set["annotations"]).resolve())
    assert images["depth"].startswith("dataset depth")
    assert [image["image_id"] for image in images["images"]] == [1, 2]
    for image in images["images"]:
        assert Path(image["path"]) == (Path(coco_set["images"]) / image["file_name"]).resolve()
        preview = np.asarray(Image.open(tmp_path / image["depth"]))
        # the depth is a horizontal ramp: the preview too, min-max scaled
        assert preview.shape == (HEIGHT, WIDTH) and preview.dtype == np.uint8
        assert (preview[:, 0].max(), preview[:, -1].min()) == (255, 0)  # disparity: near (left) is bright


def test_save_predictions_false_keeps_and_writes_none(coco_set, dataset, tmp_path):
    result = evaluate(demo_model(), run_config(coco_set, prompts=["box", "click1"], save_predictions=False), dataset,
                      progress=False)
    assert result.predictions is None
    evaluation.write_result(tmp_path, result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["instances.csv", "metrics.json"]


# ---------------------------------------------------------------- fusionlab rescore
def test_rescore_gives_an_older_folder_the_boundary_iou_and_attributes_evaluation_gives(coco_set, tmp_path, capsys):
    checkpoint = save_checkpoint(demo_model(), tmp_path / "model.safetensors")
    out = tmp_path / "out"
    assert main(["eval", str(write_run_yaml(tmp_path, coco_set)), "--checkpoint", str(checkpoint), "--out",
                 str(out)]) == 0
    scored = pd.read_csv(out / "instances.csv")
    metrics = json.loads((out / "metrics.json").read_text())
    new = ["biou", "rgb_edge", "depth_edge", "depth_contrast"]
    scored.drop(columns=new).to_csv(out / "instances.csv", index=False)  # as an evaluation before them wrote it
    (out / "metrics.json").write_text(json.dumps({k: v for k, v in metrics.items() if "_biou" not in k}))
    assert main(["rescore", str(out)]) == 0
    assert "rescored 10 rows" in capsys.readouterr().out
    rescored = pd.read_csv(out / "instances.csv")
    pd.testing.assert_frame_equal(rescored[scored.columns], scored)
    assert json.loads((out / "metrics.json").read_text()) == pytest.approx(metrics, nan_ok=True)


def test_rescore_refuses_predictions_that_are_not_the_scored_masks(coco_set, tmp_path, capsys):
    checkpoint = save_checkpoint(demo_model(), tmp_path / "model.safetensors")
    out = tmp_path / "out"
    assert main(["eval", str(write_run_yaml(tmp_path, coco_set)), "--checkpoint", str(checkpoint), "--out",
                 str(out), "--set", "eval.max_images=1"]) == 0
    table = pd.read_csv(out / "instances.csv")
    table.drop(columns=["biou"]).assign(iou=table["iou"] + 0.01).to_csv(out / "instances.csv", index=False)
    capsys.readouterr()
    assert main(["rescore", str(out)]) == 2
    error = capsys.readouterr().err
    assert "the predictions do not match the instances" in error and error.count("\n") == 1
