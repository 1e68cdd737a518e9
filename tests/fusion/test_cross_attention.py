"""CrossAttentionFusion: RGB tokens attend to at most kv_size**2 pooled depth tokens."""
import pytest
import torch
import torch.nn.functional as F

from fusionlab.errors import FusionlabError
from fusionlab.fusion.cross_attention import CrossAttentionFusion

CHANNELS = (8, 24, 64)


@pytest.mark.parametrize("size", [(7, 5), (40, 24)])
@pytest.mark.parametrize("channels", CHANNELS)
def test_starts_as_the_rgb_model_exactly(channels, size):
    torch.manual_seed(channels)
    block = CrossAttentionFusion(channels)
    rgb = torch.randn(2, channels, *size)
    depth = 100 * torch.randn(2, channels, *size)
    assert torch.equal(block(rgb, depth), rgb)


def test_learns_to_use_depth():
    torch.manual_seed(0)
    block = CrossAttentionFusion(16, num_heads=4)
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


@pytest.mark.parametrize("channels", CHANNELS)
def test_shape_and_parameter_count(channels):
    block = CrossAttentionFusion(channels)
    rgb = torch.randn(3, channels, 4, 9)
    assert block(rgb, torch.randn_like(rgb)).shape == rgb.shape
    # 4 linear layers, 2 layer norms, one locality slope per head
    expected = 4 * (channels**2 + channels) + 2 * (2 * channels) + block.num_heads
    assert block.num_parameters == sum(p.numel() for p in block.parameters()) == expected


def _keys_seen(block, rgb):
    """The key-token count that actually reaches the key projection in one forward."""
    seen = []
    handle = block.key.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape[1]))
    with torch.no_grad():
        block(rgb, torch.randn_like(rgb))
    handle.remove()
    return seen[0]


def test_64x64_input_attends_to_at_most_256_depth_tokens():
    block = CrossAttentionFusion(256)
    assert _keys_seen(block, torch.randn(1, 256, 64, 64)) == block.key_length(64, 64) == 256


@pytest.mark.parametrize("size, expected", [((7, 5), 35), ((40, 9), 16 * 9)])
def test_maps_smaller_than_kv_size_are_not_pooled(size, expected):
    block = CrossAttentionFusion(8)
    assert _keys_seen(block, torch.randn(1, 8, *size)) == block.key_length(*size) == expected


def test_depth_at_a_pixel_reaches_that_pixel_most():
    # Position codes are what let a pixel find the depth at its own location.
    torch.manual_seed(0)
    block = CrossAttentionFusion(32, num_heads=1, kv_size=8)
    with torch.no_grad():
        block.out.weight.copy_(torch.eye(32))
        block.query.weight.copy_(4 * torch.eye(32))
        block.key.weight.copy_(4 * torch.eye(32))
    rgb = torch.zeros(1, 32, 8, 8)
    base = torch.randn(1, 32, 1, 1).expand(1, 32, 8, 8)
    bumped = base.clone()
    bumped[0, :, 1, 6] += 5.0 * torch.randn(32)
    with torch.no_grad():
        change = (block(rgb, bumped) - block(rgb, base)).norm(dim=1)[0]  # (H, W)
    assert change.argmax().item() == 1 * 8 + 6


def test_heads_must_divide_channels():
    with pytest.raises(FusionlabError, match=r"num_heads=5.*channels=24"):
        CrossAttentionFusion(24, num_heads=5)


def test_mismatched_inputs_name_both_shapes():
    with pytest.raises(FusionlabError, match=r"\(1, 8, 4, 4\).*\(1, 8, 4\)"):
        CrossAttentionFusion(8)(torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4))


def test_locality_prior_makes_each_pixel_read_the_depth_around_it():
    """At init (random Q/K), the sharpest head's attention peaks on the query's own key cell."""
    block = CrossAttentionFusion(16, num_heads=4, kv_size=8)
    bias = block._locality_bias(8, 8, 8, 8, torch.float32)
    assert bias.shape == (4, 64, 64)
    assert torch.equal(bias[0].argmax(dim=1), torch.arange(64))
    assert (bias[0].diagonal() == 0).all() and (bias[-1] > bias[0] - 1e-6).all()
