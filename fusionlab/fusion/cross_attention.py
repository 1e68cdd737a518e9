"""Cross-attention fusion: RGB tokens query spatially reduced depth tokens."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fusionlab.errors import FusionlabError
from fusionlab.fusion._inputs import check_pair
from fusionlab.fusion.base import FusionBlock, register_fusion


@register_fusion("cross_attention")
class CrossAttentionFusion(FusionBlock):
    """Multi-head cross-attention from every RGB pixel to a pooled grid of depth tokens.

    Queries are the ``H*W`` RGB tokens; keys and values are the depth map average-pooled to
    at most ``kv_size x kv_size`` tokens (the spatial reduction of PVT, Wang et al., ICCV
    2021, with a fixed token count instead of a fixed stride). Both token sets are
    LayerNorm-ed; a fixed 2-D sine/cosine encoding of each token's position in input
    pixels (periods 2 to 256 pixels) is added to queries and keys (not values, as in DETR,
    Carion et al., ECCV 2020), so a pixel can find the depth at its own location. Then
    ``fused = rgb_feats + O(attention(Q(rgb), K(depth), V(depth)))`` with
    :func:`torch.nn.functional.scaled_dot_product_attention`.

    Shapes: ``rgb_feats``, ``depth_feats`` and the output are ``(B, C, H, W)``; the
    attention runs on ``(B, heads, H*W, C/heads)`` queries against
    ``(B, heads, L, C/heads)`` keys, ``L = key_length(H, W) <= kv_size**2``.

    Cost: ``2 * H*W * C**2 + 2 * L * C**2`` multiply-adds for the projections plus
    ``2 * H*W * L * C`` for the attention. At ``(1, 256, 64, 64)`` with the defaults
    (L = 256) that is about 1.1 GMAC and a 4096 x 256 score matrix per head; full attention
    (L = 4096) would be about 9.7 GMAC with a 4096 x 4096 matrix per head.

    Locality prior: each head adds ``-slope_h * d**2`` to its scores, ``d`` the distance between
    the query pixel and the key cell in key-grid cells, with slopes spread geometrically
    (head ``h`` looks over about ``2**(h/2 - 1)`` cells at init) and learnable (as ALiBi's
    distance bias, Press et al., ICLR 2022, in 2-D). Without it, randomly initialised queries and
    keys attend uniformly, each pixel gets the depth of the whole image, and in a short
    fine-tune the block learns next to nothing; with it, the block starts by reading the
    depth around each pixel and learns what else to look at.

    Init: PyTorch defaults everywhere except the output projection ``O``, which is zero
    (weight and bias), so the block starts as the RGB model exactly and ``O`` gets
    gradient from the first step.

    Args:
        channels: C, divisible by ``num_heads``.
        num_heads: attention heads.
        kv_size: side of the pooled depth grid; maps smaller than it are not pooled.
    """

    def __init__(self, channels: int, num_heads: int = 8, kv_size: int = 16):
        super().__init__(channels)
        if num_heads <= 0 or self.channels % num_heads:
            raise FusionlabError(f"fusion block 'cross_attention': num_heads={num_heads} must be "
                                 f"positive and divide channels={self.channels}")
        if kv_size <= 0:
            raise FusionlabError(f"fusion block 'cross_attention': kv_size={kv_size}; expected a positive int")
        self.num_heads = num_heads
        self.kv_size = kv_size
        self.rgb_norm = nn.LayerNorm(self.channels)
        self.depth_norm = nn.LayerNorm(self.channels)
        self.query = nn.Linear(self.channels, self.channels)
        self.key = nn.Linear(self.channels, self.channels)
        self.value = nn.Linear(self.channels, self.channels)
        self.out = nn.Linear(self.channels, self.channels)
        sigmas = 2.0 ** (torch.arange(num_heads, dtype=torch.float32) / 2 - 1)
        self.log_slope = nn.Parameter(torch.log(1.0 / (2 * sigmas ** 2)))
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def key_length(self, height: int, width: int) -> int:
        """Number of depth tokens (keys) an ``height x width`` input attends to."""
        return min(height, self.kv_size) * min(width, self.kv_size)

    def forward(self, rgb_feats: torch.Tensor, depth_feats: torch.Tensor) -> torch.Tensor:
        check_pair(self, rgb_feats, depth_feats)
        batch, channels, height, width = rgb_feats.shape
        kv_height, kv_width = min(height, self.kv_size), min(width, self.kv_size)
        depth_grid = F.adaptive_avg_pool2d(depth_feats, (kv_height, kv_width))

        rgb_tokens = self.rgb_norm(rgb_feats.flatten(2).transpose(1, 2))  # (B, H*W, C)
        depth_tokens = self.depth_norm(depth_grid.flatten(2).transpose(1, 2))  # (B, L, C)
        rgb_pos = _sincos_position(height, width, height, width, channels, rgb_feats)
        depth_pos = _sincos_position(kv_height, kv_width, height, width, channels, rgb_feats)

        query = self._split_heads(self.query(rgb_tokens + rgb_pos))
        key = self._split_heads(self.key(depth_tokens + depth_pos))
        value = self._split_heads(self.value(depth_tokens))
        bias = self._locality_bias(height, width, kv_height, kv_width, query.dtype)
        attended = F.scaled_dot_product_attention(query, key, value, attn_mask=bias)  # (B, heads, H*W, C/heads)
        attended = attended.transpose(1, 2).reshape(batch, height * width, channels)
        update = self.out(attended).transpose(1, 2).reshape(batch, channels, height, width)
        return rgb_feats + update

    def _locality_bias(self, height: int, width: int, kv_height: int, kv_width: int, dtype: torch.dtype
                       ) -> torch.Tensor:
        """``(heads, H*W, L)`` score bias ``-slope_h * (squared distance in key cells)``."""
        device = self.log_slope.device
        qy = (torch.arange(height, device=device) + 0.5) * (kv_height / height)
        qx = (torch.arange(width, device=device) + 0.5) * (kv_width / width)
        ky = torch.arange(kv_height, device=device) + 0.5
        kx = torch.arange(kv_width, device=device) + 0.5
        dy = (qy[:, None] - ky[None, :]) ** 2  # (H, kv_H)
        dx = (qx[:, None] - kx[None, :]) ** 2  # (W, kv_W)
        squared = (dy[:, None, :, None] + dx[None, :, None, :]).reshape(height * width, kv_height * kv_width)
        return (-self.log_slope.exp()[:, None, None] * squared).to(dtype)

    def _split_heads(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, N, C)`` -> ``(B, heads, N, C/heads)``."""
        batch, length, channels = tokens.shape
        return tokens.view(batch, length, self.num_heads, channels // self.num_heads).transpose(1, 2)


def _sincos_position(grid_height: int, grid_width: int, height: int, width: int, channels: int,
                     like: torch.Tensor) -> torch.Tensor:
    """``(grid_height * grid_width, channels)`` sine/cosine codes of the cell centres of a
    ``grid_height x grid_width`` grid laid over ``height x width`` pixels, in pixel units,
    so the query grid and the pooled key grid share one coordinate frame. Channels are
    ``[sin y, cos y, sin x, cos x]`` blocks of ``channels // 4``; the rest are zero."""
    ys = (torch.arange(grid_height, device=like.device, dtype=torch.float32) + 0.5) * (height / grid_height)
    xs = (torch.arange(grid_width, device=like.device, dtype=torch.float32) + 0.5) * (width / grid_width)
    num_freqs = channels // 4
    # Periods from 2 to 256 pixels, geometrically spaced: DETR's base-10000 frequencies are
    # nearly constant over a 64-pixel map, and barely tell neighbouring pixels apart.
    steps = torch.arange(num_freqs, device=like.device, dtype=torch.float32) / max(num_freqs - 1, 1)
    freqs = math.pi * (1.0 / 128.0) ** steps
    y_angles = (ys[:, None] * freqs)[:, None, :].expand(grid_height, grid_width, num_freqs)
    x_angles = (xs[:, None] * freqs)[None, :, :].expand(grid_height, grid_width, num_freqs)
    codes = torch.cat([y_angles.sin(), y_angles.cos(), x_angles.sin(), x_angles.cos()], dim=-1)
    codes = F.pad(codes.reshape(grid_height * grid_width, 4 * num_freqs), (0, channels - 4 * num_freqs))
    return codes.to(like.dtype)
