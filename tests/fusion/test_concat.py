"""ConcatFusion: a 1x1 convolution over [rgb; depth], starting as [I | 0]."""
import pytest
import torch
import torch.nn.functional as F

from fusionlab.errors import FusionlabError
from fusionlab.fusion.concat import ConcatFusion

CHANNELS = (8, 24, 64)


@pytest.mark.parametrize("channels", CHANNELS)
def test_starts_as_the_rgb_model_exactly(channels):
    torch.manual_seed(channels)
    block = ConcatFusion(channels)
    rgb = torch.randn(2, channels, 7, 5)
    depth = 100 * torch.randn(2, channels, 7, 5)
    assert torch.equal(block(rgb, depth), rgb)


def test_learns_to_use_depth():
    torch.manual_seed(0)
    block = ConcatFusion(16)
    rgb, target = torch.randn(2, 16, 6, 5), torch.randn(2, 16, 6, 5)
    depth = torch.randn(2, 16, 6, 5, requires_grad=True)
    optimizer = torch.optim.AdamW(block.parameters(), lr=1e-2)

    F.mse_loss(block(rgb, depth), target).backward()
    assert block.weight.grad[:, 16:].abs().sum() > 0
    optimizer.step()
    optimizer.zero_grad()
    depth.grad = None
    F.mse_loss(block(rgb, depth), target).backward()
    assert depth.grad.abs().sum() > 0


@pytest.mark.parametrize("channels", CHANNELS)
def test_shape_and_parameter_count(channels):
    block = ConcatFusion(channels)
    rgb = torch.randn(3, channels, 4, 9)
    assert block(rgb, torch.randn_like(rgb)).shape == rgb.shape
    assert block.num_parameters == sum(p.numel() for p in block.parameters()) == 2 * channels**2 + channels


def test_is_a_pointwise_linear_map_of_the_stacked_channels():
    torch.manual_seed(0)
    block = ConcatFusion(6)
    with torch.no_grad():
        block.weight.normal_()
        block.bias.normal_()
    rgb, depth = torch.randn(2, 6, 3, 4), torch.randn(2, 6, 3, 4)
    expected = F.conv2d(torch.cat([rgb, depth], dim=1), block.weight[:, :, None, None], block.bias)
    assert torch.allclose(block(rgb, depth), expected, atol=1e-5)


def test_mismatched_inputs_name_both_shapes():
    with pytest.raises(FusionlabError, match=r"\(1, 8, 4, 4\).*\(1, 9, 4, 4\)"):
        ConcatFusion(8)(torch.randn(1, 8, 4, 4), torch.randn(1, 9, 4, 4))
