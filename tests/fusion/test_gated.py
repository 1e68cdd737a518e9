"""GatedFusion: fused = rgb + sigmoid(G([rgb; depth])) * P(depth), P zero at init."""
import pytest
import torch
import torch.nn.functional as F

from fusionlab.errors import FusionlabError
from fusionlab.fusion.gated import GatedFusion

CHANNELS = (8, 24, 64)


@pytest.mark.parametrize("channels", CHANNELS)
def test_starts_as_the_rgb_model_exactly(channels):
    torch.manual_seed(channels)
    block = GatedFusion(channels)
    rgb = torch.randn(2, channels, 7, 5)
    depth = 100 * torch.randn(2, channels, 7, 5)
    assert torch.equal(block(rgb, depth), rgb)


def test_learns_to_use_depth():
    torch.manual_seed(0)
    block = GatedFusion(16)
    rgb, target = torch.randn(2, 16, 6, 5), torch.randn(2, 16, 6, 5)
    depth = torch.randn(2, 16, 6, 5, requires_grad=True)
    optimizer = torch.optim.SGD(block.parameters(), lr=0.1)

    F.mse_loss(block(rgb, depth), target).backward()
    assert block.depth_proj.weight.grad.abs().sum() > 0
    optimizer.step()
    optimizer.zero_grad()
    depth.grad = None
    F.mse_loss(block(rgb, depth), target).backward()
    assert depth.grad.abs().sum() > 0
    assert block.gate.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("channels", CHANNELS)
def test_shape_and_parameter_count(channels):
    block = GatedFusion(channels)
    rgb = torch.randn(3, channels, 4, 9)
    assert block(rgb, torch.randn_like(rgb)).shape == rgb.shape
    expected = (2 * channels**2 + channels) + (channels**2 + channels)
    assert block.num_parameters == sum(p.numel() for p in block.parameters()) == expected


def test_gate_lets_in_a_fraction_of_the_projected_depth():
    torch.manual_seed(0)
    block = GatedFusion(8)
    with torch.no_grad():
        block.depth_proj.weight.copy_(torch.eye(8)[:, :, None, None])
    rgb, depth = torch.randn(2, 8, 5, 5), torch.ones(2, 8, 5, 5)
    gate = block(rgb, depth) - rgb
    assert gate.min() > 0 and gate.max() < 1
    assert gate.std() > 0  # it varies with position and channel, not one constant


def test_mismatched_inputs_name_both_shapes():
    with pytest.raises(FusionlabError, match=r"\(2, 8, 4, 4\).*\(1, 8, 4, 4\)"):
        GatedFusion(8)(torch.randn(2, 8, 4, 4), torch.randn(1, 8, 4, 4))
