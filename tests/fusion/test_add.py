"""AddFusion: fused = rgb + alpha * depth."""
import pytest
import torch
import torch.nn.functional as F

from fusionlab.errors import FusionlabError
from fusionlab.fusion.add import AddFusion

CHANNELS = (8, 24, 64)


@pytest.mark.parametrize("alpha", ["scalar", "channel"])
@pytest.mark.parametrize("channels", CHANNELS)
def test_starts_as_the_rgb_model_exactly(channels, alpha):
    torch.manual_seed(channels)
    block = AddFusion(channels, alpha=alpha)
    rgb = torch.randn(2, channels, 7, 5)
    depth = 100 * torch.randn(2, channels, 7, 5)
    assert torch.equal(block(rgb, depth), rgb)


@pytest.mark.parametrize("alpha", ["scalar", "channel"])
def test_learns_to_use_depth(alpha):
    torch.manual_seed(0)
    block = AddFusion(16, alpha=alpha)
    rgb, target = torch.randn(2, 16, 6, 5), torch.randn(2, 16, 6, 5)
    depth = torch.randn(2, 16, 6, 5, requires_grad=True)
    optimizer = torch.optim.SGD(block.parameters(), lr=0.1)

    F.mse_loss(block(rgb, depth), target).backward()
    assert sum(p.grad.abs().sum() for p in block.parameters()) > 0
    optimizer.step()
    optimizer.zero_grad()
    depth.grad = None
    F.mse_loss(block(rgb, depth), target).backward()
    assert depth.grad.abs().sum() > 0


@pytest.mark.parametrize("alpha, expected", [("scalar", 1), ("channel", 24)])
def test_shape_and_parameter_count(alpha, expected):
    block = AddFusion(24, alpha=alpha)
    rgb = torch.randn(3, 24, 4, 9)
    assert block(rgb, torch.randn_like(rgb)).shape == rgb.shape
    assert block.num_parameters == sum(p.numel() for p in block.parameters()) == expected


def test_nonzero_alpha_init_adds_scaled_depth():
    block = AddFusion(4, alpha="channel", alpha_init=0.5)
    rgb, depth = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3)
    assert torch.equal(block(rgb, depth), rgb + 0.5 * depth)


def test_unknown_alpha_kind_is_a_user_error():
    with pytest.raises(FusionlabError, match=r"alpha='vector'.*scalar, channel"):
        AddFusion(4, alpha="vector")


def test_mismatched_inputs_name_both_shapes():
    block = AddFusion(8)
    with pytest.raises(FusionlabError) as error:
        block(torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 5))
    message = str(error.value)
    assert "(1, 8, 4, 4)" in message and "(1, 8, 4, 5)" in message and "\n" not in message
