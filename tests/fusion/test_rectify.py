"""RectifyFusion (CMX): cross-modal rectification, then rgb + O(fuse(rgb', depth'))."""
import pytest
import torch
import torch.nn.functional as F

from fusionlab.errors import FusionlabError
from fusionlab.fusion.rectify import RectifyFusion

CHANNELS = (8, 24, 64)


@pytest.mark.parametrize("channels", CHANNELS)
def test_starts_as_the_rgb_model_exactly(channels):
    torch.manual_seed(channels)
    block = RectifyFusion(channels)
    rgb = torch.randn(2, channels, 7, 5)
    depth = 100 * torch.randn(2, channels, 7, 5)
    assert torch.equal(block(rgb, depth), rgb)


def test_learns_to_use_depth():
    torch.manual_seed(0)
    block = RectifyFusion(16)
    rgb, target = torch.randn(2, 16, 6, 5), torch.randn(2, 16, 6, 5)
    depth = torch.randn(2, 16, 6, 5, requires_grad=True)
    optimizer = torch.optim.AdamW(block.parameters(), lr=1e-2)

    F.mse_loss(block(rgb, depth), target).backward()
    assert block.out.weight.grad.abs().sum() > 0
    optimizer.step()
    optimizer.zero_grad()
    depth.grad = None
    F.mse_loss(block(rgb, depth), target).backward()
    assert depth.grad.abs().sum() > 0
    assert block.channel_weights[0].weight.grad.abs().sum() > 0
    assert block.spatial_weights[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("channels", CHANNELS)
def test_shape_and_parameter_count(channels):
    block = RectifyFusion(channels)
    rgb = torch.randn(3, channels, 4, 9)
    assert block(rgb, torch.randn_like(rgb)).shape == rgb.shape
    c = channels
    expected = ((4 * c * c + c) + (c * 2 * c + 2 * c)  # channel MLP 4C -> C -> 2C
                + (2 * c * (c // 4) + c // 4) + (c // 4 * 2 + 2)  # spatial MLP 2C -> C/4 -> 2
                + (2 * c * c + c) + (9 * c + c) + (c * c + c))  # mix, depthwise 3x3, out
    assert block.num_parameters == sum(p.numel() for p in block.parameters()) == expected


@pytest.mark.parametrize("lambda_channel, lambda_spatial", [(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5)])
def test_lambdas_switch_the_cross_modal_corrections(lambda_channel, lambda_spatial):
    torch.manual_seed(0)
    block = RectifyFusion(8, lambda_channel=lambda_channel, lambda_spatial=lambda_spatial)
    torch.nn.init.normal_(block.out.weight)
    rgb, depth = torch.randn(1, 8, 5, 5), torch.randn(1, 8, 5, 5)
    with torch.no_grad():
        before = block(rgb, depth)
        block.channel_weights[-1].bias.sub_(3.0)
        changed_by_channel = not torch.equal(block(rgb, depth), before)
        block.spatial_weights[-1].bias.sub_(3.0)
        changed_by_both = block(rgb, depth)
    assert changed_by_channel == (lambda_channel > 0)
    assert torch.equal(changed_by_both, before) == (lambda_channel == 0 and lambda_spatial == 0)


def test_mismatched_inputs_name_both_shapes():
    with pytest.raises(FusionlabError, match=r"\(1, 8, 4, 4\).*\(1, 8, 4, 4, 1\)"):
        RectifyFusion(8)(torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4, 1))
