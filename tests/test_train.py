"""The training loop on tiny synthetic RGB-D scenes with the CPU demo preset."""
import csv
import json

import pandas as pd
import pytest
import torch
import yaml

from fusionlab.config import RunConfig, from_dict
from fusionlab.errors import FusionlabError
from fusionlab.models import read_config
from fusionlab.models.checkpoint import read_state_dict
from fusionlab.cli import main
from fusionlab.train import TrainingDiverged, build_run_model, param_groups, part_modules, train


@pytest.fixture(scope="module", autouse=True)
def small_world(tmp_path_factory):
    """One thread, and the synthetic scenes generated into a private cache."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FUSIONLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield
    torch.set_num_threads(threads)


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
        "steps": 4, "final_loss": result.final_loss, "wall_s": pytest.approx(result.wall_s, abs=1e-3)}
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

    assert str(error.value) == ("train.freeze[1]: unknown part 'backbone'; allowed: rgb_encoder, depth_encoder, "
                                "fusion, neck, prompt_encoder, decoder")


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


def test_iou_head_learns_the_iou_its_masks_reach():
    """The IoU head is trained (MSE to the reached IoU), so picking the best-predicted mask means something."""
    import torch

    from fusionlab.config import TrainSection
    from fusionlab.train import batch_loss

    logits = torch.full((2, 3, 8, 8), -10.0)
    logits[:, 0, :4, :4] = 10.0  # output 0 predicts the top-left quarter exactly
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[:, :8, :8] = True
    iou_pred = torch.zeros(2, 3, requires_grad=True)
    losses = batch_loss([(logits, iou_pred)], [type("T", (), {"masks": masks})()], TrainSection())
    assert losses["iou_mse"].item() == pytest.approx(1 / 3)  # reached IoUs are (1, 0, 0), predictions 0
    losses["loss"].backward()
    assert iou_pred.grad[:, 0].lt(0).all() and iou_pred.grad[:, 1:].eq(0).all()
