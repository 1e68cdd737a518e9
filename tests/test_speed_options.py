"""``train.channels_last`` and ``train.compile`` give the outputs, gradients and losses of a model
without them, and the same checkpoint keys."""
import copy
import csv
import os

import pytest
import torch

from fusionlab.config import RunConfig, from_dict
from fusionlab.models import build_model
from fusionlab.models.checkpoint import read_state_dict
from fusionlab.models.speed import apply_speed_options
from fusionlab.train import train

OPTIONS = {"channels_last": {"channels_last": True, "compiled": False},
           "compile": {"channels_last": False, "compiled": True}}
SLOW_COMPILE = pytest.mark.skipif(
    not os.environ.get("FUSIONLAB_TEST_COMPILE"),
    reason="a second cold torch.compile (a training run's) would add minutes on a 2-core CPU: the outputs test "
           "above checks compile; set FUSIONLAB_TEST_COMPILE=1 to run this one too")
CASES = [pytest.param(option, marks=[SLOW_COMPILE] if option == "compile" else []) for option in OPTIONS]


pytestmark = pytest.mark.usefixtures("small_world")


def forward_backward(model, images, depths, boxes):
    """The embedding, low-res logits and IoU predictions of one training-mode forward, and every gradient."""
    model.train()
    embedding = model.encode(images, depths)
    logits, iou = model.decode(embedding[:1], boxes=boxes, multimask_output=True)
    (logits.sigmoid().mean() + iou.mean()).backward()
    return [embedding, logits, iou], {name: p.grad for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("option", OPTIONS)  # compile included: the one cold compile CI pays (about 2 minutes)
def test_option_gives_the_same_outputs_and_gradients(option):
    torch.manual_seed(0)
    plain = build_model("efficientvit-sam-demo", fusion="add")
    sped = copy.deepcopy(plain)
    apply_speed_options(sped, **OPTIONS[option])
    images, depths = torch.randn(2, 3, 128, 128), torch.rand(2, 1, 128, 128)
    boxes = torch.tensor([[32.0, 32.0, 160.0, 200.0], [0.0, 0.0, 64.0, 64.0]])

    plain_outputs, plain_grads = forward_backward(plain, images, depths, boxes)
    sped_outputs, sped_grads = forward_backward(sped, images, depths, boxes)

    for sped_output, plain_output in zip(sped_outputs, plain_outputs):
        torch.testing.assert_close(sped_output, plain_output, rtol=1e-4, atol=1e-4)
    assert list(sped_grads) == list(plain_grads)
    # on the scale of the largest gradient: some are ~0 (a key bias before softmax), all rounding noise
    plain_flat, sped_flat = (torch.cat([g.flatten() for g in grads.values()]) for grads in (plain_grads, sped_grads))
    torch.testing.assert_close(sped_flat, plain_flat, rtol=1e-3, atol=1e-4 * plain_flat.abs().max().item())


def tiny_config(**train_options) -> RunConfig:
    options = {"epochs": 1, "batch_size": 2, "max_steps": 2, "masks_per_image": 4, "max_points": 3, "lr": 1e-3,
               "device": "cpu", "precision": "fp32", **train_options}
    return from_dict(RunConfig, {
        "model": {"fusion": "add"},
        "data": {"train": {"split": "train", "num_images": 4, "image_size": 64}},
        "train": options}, "test")


def losses(run_dir) -> list:
    with open(run_dir / "train_log.csv") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


@pytest.mark.parametrize("option", CASES)
def test_training_with_option_logs_the_same_losses_and_saves_the_same_keys(tmp_path, option):
    plain = train(tiny_config(), tmp_path / "plain", progress=False)
    sped = train(tiny_config(**{option: True}), tmp_path / "sped", progress=False)

    assert losses(tmp_path / "sped") == pytest.approx(losses(tmp_path / "plain"), rel=1e-4)
    plain_state, sped_state = read_state_dict(plain.checkpoint), read_state_dict(sped.checkpoint)
    assert {k: v.shape for k, v in sped_state.items()} == {k: v.shape for k, v in plain_state.items()}
    assert list(sped_state) == list(plain_state)
