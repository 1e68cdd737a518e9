"""The training loop on tiny synthetic RGB-D scenes with the CPU demo preset."""
import csv
import json
import logging
import math
import os

import pandas as pd
import pytest
import torch
import yaml

from fusionlab.config import RunConfig, from_dict
from fusionlab.errors import FusionlabError
from fusionlab.models import EfficientViTSam, read_config
from fusionlab.models.checkpoint import read_state_dict
from fusionlab.cli import main
from fusionlab.data.training import Targets
from fusionlab.rounds import correction_click
from fusionlab.train import TrainingDiverged, build_run_model, param_groups, part_modules, train


pytestmark = pytest.mark.usefixtures("small_world")


def tiny_config(fusion=None, num_images=4, **train) -> RunConfig:
    options = {"epochs": 1, "batch_size": 2, "masks_per_image": 4, "max_points": 3, "lr": 1e-3, **train}
    return from_dict(RunConfig, {
        "model": {"fusion": fusion},
        "data": {"train": {"split": "train", "num_images": num_images, "image_size": 64}},
        "train": options}, "test")


def losses(run_dir) -> list:
    with open(run_dir / "train_log.csv") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


@pytest.mark.parametrize("fusion", [None, "add"])
def test_run_folder_holds_config_log_checkpoint_and_done_marker(tmp_path, fusion):
    result = train(tiny_config(fusion, epochs=2), tmp_path, progress=False)

    assert result.steps == 4  # 2 epochs of 4 images in batches of 2
    assert result.model.has_depth == (fusion is not None)
    with open(tmp_path / "train_log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["step", "epoch", "loss", "bce", "dice", "iou_mse", "lr", "seconds"]
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4] and [int(r["epoch"]) for r in rows] == [0, 0, 1, 1]
    assert all(torch.isfinite(torch.tensor(float(r["loss"]))) for r in rows)
    assert float(rows[0]["lr"]) == pytest.approx(1e-3) and float(rows[-1]["lr"]) < 1e-3  # cosine decays
    assert json.loads((tmp_path / "train_done.json").read_text()) == {
        "steps": 4, "final_loss": result.final_loss, "wall_s": pytest.approx(result.wall_s, abs=1e-3),
        "resumed_from_step": 0}
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["model"]["fusion"] == fusion
    state = read_state_dict(result.checkpoint)
    assert torch.equal(state["mask_decoder.iou_token.weight"], result.model.mask_decoder.iou_token.weight)
    assert read_config(result.checkpoint).fusion == fusion


def test_loss_falls_when_overfitting_one_batch(tmp_path):
    config = tiny_config(num_images=2, epochs=30, box_prob=1.0, multimask_prob=0.0, masks_per_image=16)
    train(config, tmp_path, progress=False)

    curve = losses(tmp_path)
    assert len(curve) == 30
    assert sum(curve[-5:]) / 5 < 0.5 * sum(curve[:5]) / 5


def test_same_seed_gives_identical_losses_whatever_the_workers_and_another_seed_does_not(tmp_path):
    for name, seed, workers in (("a", 3, 0), ("b", 3, 2), ("c", 4, 0)):
        train(tiny_config("add", epochs=2, seed=seed, num_workers=workers), tmp_path / name, progress=False)

    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    assert losses(tmp_path / "a") != losses(tmp_path / "c")


def test_frozen_rgb_encoder_keeps_its_weights_and_statistics(tmp_path):
    config = tiny_config("add", freeze=["rgb_encoder"], max_steps=2)
    torch.manual_seed(config.train.seed)
    start = {k: v.clone() for k, v in build_run_model(config).state_dict().items()}

    trained = train(config, tmp_path, progress=False).model.state_dict()

    rgb = [k for k in start if k.startswith("image_encoder.backbone.")]
    assert rgb and any("running_mean" in k for k in rgb)
    assert all(torch.equal(start[k], trained[k]) for k in rgb)
    for prefix in ("depth_encoder.backbone.", "image_encoder.neck.", "fusions.", "mask_decoder."):
        assert any(not torch.equal(start[k], trained[k]) for k in start if k.startswith(prefix)), prefix


def test_weight_decay_spares_one_dimensional_parameters_and_multipliers_scale_lr():
    config = tiny_config("add", lr_multipliers={"fusion": 10.0}, freeze=["prompt_encoder"])
    model = build_run_model(config)

    groups = param_groups(model, config.train)

    alpha = model.fusions["neck"].alpha
    (fusion_group,) = [g for g in groups if any(p is alpha for p in g["params"])]
    assert fusion_group["weight_decay"] == 0.0 and fusion_group["lr"] == pytest.approx(1e-2)
    decayed = [p for g in groups if g["weight_decay"] > 0 for p in g["params"]]
    assert decayed and all(p.ndim >= 2 for p in decayed)
    assert not any(g["part"] == "prompt_encoder" for g in groups)
    assert not any(p.requires_grad for m in part_modules(model, "prompt_encoder") for p in m.parameters())


def test_divergence_names_the_step_and_leaves_the_run_incomplete(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"training diverged at step 2 \(epoch 0\): loss is nan"):
        train(tiny_config(lr=1e30, grad_clip=0.0), tmp_path, progress=False)

    assert not (tmp_path / "train_done.json").exists()
    assert len(losses(tmp_path)) == 1


def test_unknown_freeze_part_is_a_one_line_error_listing_the_parts(tmp_path):
    with pytest.raises(FusionlabError) as error:
        train(tiny_config(freeze=["decoder", "backbone"]), tmp_path, progress=False)

    assert str(error.value) == ("test: train.freeze[1]: 'backbone' is not allowed; expected one of rgb_encoder, "
                                "depth_encoder, fusion, neck, prompt_encoder, decoder")


def test_train_command_trains_with_overrides_then_writes_the_evaluation(tmp_path, monkeypatch, capsys):
    import fusionlab.evaluate

    def evaluate(model, config, dataset=None, progress=True):
        assert config.train.max_steps == 1 and not model.has_depth
        return fusionlab.evaluate.EvalResult(metrics={"box_miou": 61.25, "n_images": 1},
                                             instances=pd.DataFrame({"image_id": [0], "iou": [0.6125]}))

    monkeypatch.setattr(fusionlab.evaluate, "evaluate", evaluate)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config().to_dict()))

    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--set", "train.max_steps=1"]) == 0

    run = tmp_path / "run"
    assert json.loads((run / "train_done.json").read_text())["steps"] == 1
    assert json.loads((run / "metrics.json").read_text()) == {"box_miou": 61.25, "n_images": 1}
    assert pd.read_csv(run / "instances.csv").to_dict("list") == {"image_id": [0], "iou": [0.6125]}
    out = capsys.readouterr().out
    assert out.startswith("trained 1 steps in ") and f"box_miou 61.25; run folder {run}" in out

    assert main(["train", str(path), "--out", str(run), "--set", "train.max_steps=1"]) == 2  # a finished run
    assert "holds a finished run (train_done.json)" in capsys.readouterr().err
    assert main(["train", str(path), "--out", str(run), "--set", "train.max_steps=1", "--overwrite"]) == 0


def test_iou_head_learns_the_iou_its_masks_reach():
    """The IoU head is trained (MSE to the reached IoU), so picking the best-predicted mask means something."""
    import torch

    from fusionlab.config import TrainSection
    from fusionlab.rounds import batch_loss

    logits = torch.full((2, 3, 8, 8), -10.0)
    logits[:, 0, :4, :4] = 10.0  # output 0 predicts the top-left quarter exactly
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[:, :8, :8] = True
    iou_pred = torch.zeros(2, 3, requires_grad=True)
    losses = batch_loss([(logits, iou_pred)], [type("T", (), {"masks": masks})()], TrainSection())
    assert losses["iou_mse"].item() == pytest.approx(1 / 3)  # reached IoUs are (1, 0, 0), predictions 0
    losses["loss"].backward()
    assert iou_pred.grad[:, 0].lt(0).all() and iou_pred.grad[:, 1:].eq(0).all()


# ------------------------------------------------------------------------------ how long a run trains
def test_steps_trains_exactly_that_many_steps_cycling_through_the_epochs(tmp_path):
    epochs = []
    config = tiny_config(num_images=8, batch_size=4, epochs=4, steps=50, masks_per_image=1,
                         freeze=["rgb_encoder", "neck"])  # a light step: 50 of them

    result = train(config, tmp_path, progress=False, on_epoch_end=lambda epoch, _: epochs.append(epoch))

    assert result.steps == 50 and json.loads((tmp_path / "train_done.json").read_text())["steps"] == 50
    with open(tmp_path / "train_log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == list(range(1, 51))
    assert epochs == list(range(25))  # 2 batches an epoch; train.epochs is ignored
    assert float(rows[24]["lr"]) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 24 / 50)))  # cosine over 50
    assert 0 < float(rows[-1]["lr"]) < 1e-5


def test_max_steps_beyond_what_the_epochs_give_is_a_cap_and_says_so(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="fusionlab.train"):
        result = train(tiny_config(num_images=8, batch_size=4, epochs=1, max_steps=50), tmp_path, progress=False)

    assert result.steps == 2 and json.loads((tmp_path / "train_done.json").read_text())["steps"] == 2
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning == ("train.max_steps: 50 is only a cap; train.epochs: 1 of 2 batches gives 2 steps, and only "
                       "these are trained (set train.steps: 50 instead for exactly 50)")


# ------------------------------------------------------------------------------ bad input: one line, nothing written
@pytest.fixture
def tiny_yaml(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(device="cpu").to_dict()))
    return path


def fails_in_one_line(capsys, argv) -> str:
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    return line


@pytest.mark.parametrize("overrides, message", [
    (["train.lr=.nan"], "train.lr: nan must be a finite number > 0"),
    (["train.lr=.inf"], "train.lr: inf must be a finite number > 0"),
    (["train.lr=0"], "train.lr: 0.0 must be a finite number > 0"),
    (["train.weight_decay=-0.1"], "train.weight_decay: -0.1 must be a finite number >= 0"),
    (["train.betas=[0.9, 1.0]"], "train.betas: [0.9, 1.0] must be two numbers in [0, 1)"),
    (["train.grad_clip=-1"], "train.grad_clip: -1.0 must be a finite number >= 0 (0: off)"),
    (["train.multimask_prob=1.5"], "train.multimask_prob: 1.5 must be a number in [0, 1]"),
    (["train.lr_multipliers={decoder: .inf}"], "train.lr_multipliers.decoder: inf must be a finite number >= 0"),
    (["train.interactive_rounds=-1"], "train.interactive_rounds: -1 must be an integer >= 0"),
    (["train.steps=0"], "train.steps: 0 must be an integer >= 1 or null"),
    (["train.steps=50", "train.max_steps=10"], "train.steps: 50 and max_steps: 10 both given; expected one: "
                                               "steps (exactly that many) or max_steps (a cap on the epochs)"),
    (["model.checkpoint=/nowhere/weights.safetensors"], "model.checkpoint: /nowhere/weights.safetensors does not exist"),
])
def test_bad_train_input_is_one_line_and_leaves_no_run_folder(tiny_yaml, tmp_path, capsys, overrides, message):
    run = tmp_path / "run"
    argv = ["train", str(tiny_yaml), "--out", str(run)] + [arg for item in overrides for arg in ("--set", item)]

    assert message in fails_in_one_line(capsys, argv)
    assert not run.exists()


@pytest.mark.parametrize("count, message", [
    (0, "train.device: 'cuda:99': this machine has no CUDA device"),
    (2, "train.device: 'cuda:99': this machine has 2 CUDA devices (cuda:0..cuda:1)"),
])
def test_a_cuda_device_the_machine_lacks_is_one_line_and_leaves_no_run_folder(tiny_yaml, tmp_path, capsys,
                                                                              monkeypatch, count, message):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    run = tmp_path / "run"

    line = fails_in_one_line(capsys, ["train", str(tiny_yaml), "--out", str(run), "--set", "train.device=cuda:99"])

    assert line == f"fusionlab train: error: {message}"
    assert not run.exists()


def test_a_finished_run_is_refused_as_out_folder_and_kept_when_new_input_is_broken(tiny_yaml, tmp_path, capsys):
    run = tmp_path / "run"
    train(tiny_config(max_steps=1), run, progress=False)
    finished = {path.name: path.read_bytes() for path in run.iterdir()}

    line = fails_in_one_line(capsys, ["train", str(tiny_yaml), "--out", str(run)])
    assert line == (f"fusionlab train: error: --out {run}: holds a finished run (train_done.json); choose another "
                    "folder, or pass --overwrite to replace it")
    broken = tiny_config(max_steps=1)
    broken.model.checkpoint = str(tmp_path / "missing.safetensors")
    with pytest.raises(FusionlabError, match="missing.safetensors does not exist"):
        train(broken, run, progress=False)
    broken = tiny_config(max_steps=1)
    broken.data.train = {"split": "train", "num_images": 0}
    with pytest.raises(FusionlabError, match="num_images=0"):
        train(broken, run, progress=False)

    assert {path.name: path.read_bytes() for path in run.iterdir()} == finished


def test_run_files_get_the_permissions_of_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        train(tiny_config(max_steps=1), tmp_path / "run", progress=False)
    finally:
        os.umask(previous)

    modes = {path.name: path.stat().st_mode & 0o777 for path in (tmp_path / "run").iterdir()}
    assert modes == {"config.yaml": 0o640, "train_log.csv": 0o640, "checkpoint.safetensors": 0o640,
                     "train_done.json": 0o640}


# ------------------------------------------------------------------------------ interactive training
def test_without_interactive_rounds_training_is_bit_for_bit_what_it_was(tmp_path):
    """The losses the loop gave before interactive rounds existed (commit 94e0ea7): equal bit for bit
    on the machine they were recorded on; the tolerance only absorbs another CPU's rounding, far
    below what any change to the prompts, draws or loss would make."""
    train(tiny_config("add", epochs=2, interactive_rounds=0), tmp_path, progress=False)

    assert losses(tmp_path) == pytest.approx(
        [14.805737495422363, 14.243354797363281, 13.703717231750488, 13.39912223815918], rel=1e-5)


def test_correction_clicks_fall_on_errors_positive_on_misses_negative_on_false_alarms():
    masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    masks[0, 2:4, 2:4] = True  # mask 0: predicted nowhere, so missed
    masks[2, 0:3, 0:3] = True  # mask 2: predicted exactly
    low_res = torch.full((3, 1, 8, 8), -10.0)
    low_res[1] = 10.0  # mask 1 (empty): predicted everywhere, the padding (rows 6, 7) included
    low_res[2, 0, 0:3, 0:3] = 10.0
    target = Targets(masks, None, None, input_size=(6, 8))
    generator = torch.Generator().manual_seed(0)

    draws = [correction_click(low_res, target, 16, generator) for _ in range(20)]

    for coords, labels in draws:
        assert coords.shape == (3, 1, 2) and labels.tolist() == [[1], [0], [-1]]
        x, y = (coords[0, 0] / 2).tolist()  # prompt frame 16 = 2 x the 8-pixel mask frame
        assert 2 <= x < 4 and 2 <= y < 4
        assert coords[1, 0, 1] / 2 < 6  # never in the padding
    assert len({tuple(coords[1, 0].tolist()) for coords, _ in draws}) > 5  # drawn, not a fixed pixel


@pytest.mark.parametrize("mask_input", [True, False])
def test_interactive_rounds_add_a_click_per_mask_each_round(tmp_path, monkeypatch, mask_input):
    prompts = []
    decode = EfficientViTSam.decode

    def recording_decode(self, embedding, points=None, boxes=None, mask_input=None, multimask_output=True):
        prompts.append({"points": points, "boxes": boxes, "mask_input": mask_input})
        return decode(self, embedding, points=points, boxes=boxes, mask_input=mask_input,
                      multimask_output=multimask_output)

    monkeypatch.setattr(EfficientViTSam, "decode", recording_decode)
    config = tiny_config(num_images=2, max_steps=1, box_prob=1.0, interactive_rounds=2,
                         interactive_mask_input=mask_input)

    result = train(config, tmp_path, progress=False)

    assert result.steps == 1 and math.isfinite(result.final_loss)
    assert len(prompts) == 3 * 2  # the first prompt and 2 rounds, for each of the 2 images
    first, later = prompts[:2], prompts[2:]
    assert all(p["points"] is None and p["mask_input"] is None for p in first)
    for round_index, prompt in enumerate(later, start=0):
        clicks = 1 + round_index // 2
        coords, labels = prompt["points"]
        masks = len(prompt["boxes"])
        assert coords.shape == (masks, clicks, 2) and labels.shape == (masks, clicks)
        assert set(labels.flatten().tolist()) <= {-1, 0, 1}
        assert (prompt["mask_input"] is not None) == mask_input
        if mask_input:
            assert prompt["mask_input"].shape == (masks, 1, 64, 64) and not prompt["mask_input"].requires_grad
    assert torch.equal(later[2]["points"][1][:, :1], later[0]["points"][1])  # round 2 keeps round 1's click
