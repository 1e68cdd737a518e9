"""Every fusion block at every fusion point starts as the RGB model and learns to use depth."""
import pytest
import torch

from fusionlab.fusion import list_fusions
from fusionlab.models import build_model

BUILTIN_BLOCKS = ["add", "concat", "gated", "cross_attention", "se", "rectify"]
POINTS = ["neck", "stage2", "stage3", "stage4", "neck_inputs"]
PRESET = "efficientvit-sam-demo"


def _batch(model, batch=2, masks=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    size, frame = model.image_size[1], model.image_size[0]
    images = torch.randn(batch, 3, size, size, generator=generator)
    depths = torch.rand(batch, 1, size, size, generator=generator)
    corners = torch.rand(batch, masks, 2, 2, generator=generator).sort(dim=2).values * frame
    prompts = [{"boxes": corners[i].reshape(masks, 4)} for i in range(batch)]
    return images, depths, prompts


@pytest.fixture(scope="module")
def rgb_model():
    torch.manual_seed(0)
    return build_model(PRESET).eval()


def test_builtin_blocks_are_registered():
    assert set(BUILTIN_BLOCKS) <= set(list_fusions())


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("block", BUILTIN_BLOCKS)
def test_rgbd_starts_as_rgb_and_learns_depth(rgb_model, block, point):
    torch.manual_seed(1)
    rgbd = build_model(PRESET, fusion=block, fusion_point=point)
    rgbd.load_state_dict(rgb_model.state_dict(), strict=False)
    rgbd.eval()
    images, depths, prompts = _batch(rgbd)
    with torch.no_grad():
        expected = rgb_model(images, None, prompts, multimask_output=True)
        got = rgbd(images, depths, prompts, multimask_output=True)
        got_other_depth = rgbd(images, torch.rand_like(depths), prompts, multimask_output=True)
    for (exp_logits, exp_iou), (logits, iou), (logits2, _) in zip(expected, got, got_other_depth):
        assert torch.equal(logits, exp_logits)
        assert torch.equal(iou, exp_iou)
        assert torch.equal(logits2, exp_logits)

    rgbd.train()
    optimizer = torch.optim.AdamW(rgbd.parameters(), lr=1e-3, weight_decay=0.0)
    targets = [torch.rand_like(lr) for lr, _ in got]
    for _ in range(2):
        optimizer.zero_grad()
        outputs = rgbd(images, depths, prompts, multimask_output=True)
        loss = sum(torch.nn.functional.binary_cross_entropy_with_logits(lr, t) for (lr, _), t in zip(outputs, targets))
        loss.backward()
        optimizer.step()
    depth_grad = sum(p.grad.abs().sum().item() for p in rgbd.depth_encoder.parameters() if p.grad is not None)
    assert depth_grad > 0, f"{block} at {point}: the depth encoder received no gradient after one step"


def test_rgb_only_model_has_no_depth_branch():
    model = build_model(PRESET)
    assert model.depth_encoder is None and len(model.fusions) == 0
    assert not any(k.startswith(("depth_encoder.", "fusions.")) for k in model.state_dict())


def test_stage_fusion_builds_only_the_depth_stages_it_needs():
    model = build_model(PRESET, fusion="add", fusion_point="stage2")
    assert len(model.depth_encoder.backbone.stages) == 3
    assert not hasattr(model.depth_encoder, "neck")
    assert list(model.fusions) == ["stage2"]


def test_one_channel_stem_takes_one_channel_depth():
    model = build_model(PRESET, fusion="add", depth_input="stem1")
    assert model.depth_encoder.backbone.stages[0].op_list[0].conv.in_channels == 1
    images, depths, prompts = _batch(model, batch=1)
    (logits, iou), = model.eval()(images, depths, prompts)
    assert logits.shape == (3, 1, 64, 64) and iou.shape == (3, 1)
