"""SEFusion (ESANet): rgb * 2 sigmoid(E_rgb) + beta * depth * sigmoid(E_depth)."""
import pytest
import torch
import torch.nn.functional as F

from fusionlab.errors import FusionlabError
from fusionlab.fusion.se import SEFusion

CHANNELS = (8, 24, 64)


@pytest.mark.parametrize("channels", CHANNELS)
def test_starts_as_the_rgb_model_exactly(channels):
    torch.manual_seed(channels)
    block = SEFusion(channels)
    rgb = torch.randn(2, channels, 7, 5)
    depth = 100 * torch.randn(2, channels, 7, 5)
    assert torch.equal(block(rgb, depth), rgb)


def test_learns_to_use_depth():
    torch.manual_seed(0)
    block = SEFusion(32)
    rgb, target = torch.randn(2, 32, 6, 5), torch.randn(2, 32, 6, 5)
    depth = torch.randn(2, 32, 6, 5, requires_grad=True)
    optimizer = torch.optim.SGD(block.parameters(), lr=0.1)

    F.mse_loss(block(rgb, depth), target).backward()
    assert block.depth_scale.grad.abs().sum() > 0
    assert block.rgb_excitation[-1].bias.grad.abs().sum() > 0
    optimizer.step()
    optimizer.zero_grad()
    depth.grad = None
    F.mse_loss(block(rgb, depth), target).backward()
    assert depth.grad.abs().sum() > 0


@pytest.mark.parametrize("channels", CHANNELS)
def test_shape_and_parameter_count(channels):
    block = SEFusion(channels)
    rgb = torch.randn(3, channels, 4, 9)
    assert block(rgb, torch.randn_like(rgb)).shape == rgb.shape
    hidden = max(channels // 16, 1)
    one_mlp = (channels * hidden + hidden) + (hidden * channels + channels)
    assert block.num_parameters == sum(p.numel() for p in block.parameters()) == 2 * one_mlp + channels


def test_each_stream_is_reweighted_per_channel_from_its_own_global_pool():
    torch.manual_seed(0)
    block = SEFusion(16)
    with torch.no_grad():
        block.depth_scale.fill_(1.0)
    rgb = torch.zeros(2, 16, 5, 5)
    depth = torch.rand(2, 16, 5, 5) + 0.5
    fused = block(rgb, depth)
    weights = fused / depth  # one weight per (sample, channel), constant over the map
    assert torch.allclose(weights, weights[:, :, :1, :1].expand_as(weights), atol=1e-6)
    assert weights.min() > 0 and weights.max() < 1


def test_mismatched_inputs_name_both_shapes():
    with pytest.raises(FusionlabError, match=r"\(1, 8, 4, 4\).*\(1, 8, 2, 2\)"):
        SEFusion(8)(torch.randn(1, 8, 4, 4), torch.randn(1, 8, 2, 2))
