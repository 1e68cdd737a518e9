"""Concatenation fusion: a 1x1 convolution over the stacked RGB and depth channels."""
from __future__ import annotations

import torch
from torch import nn

from fusionlab.fusion._inputs import check_pair
from fusionlab.fusion.base import FusionBlock, register_fusion


@register_fusion("concat")
class ConcatFusion(FusionBlock):
    """Concatenates RGB and depth features and mixes them back to C channels.

    ``fused = W @ [rgb_feats; depth_feats] + b`` at every pixel, with ``W`` of shape
    ``(C, 2C)`` (a 1x1 convolution 2C -> C): the "concatenate, then reduce the channels"
    baseline of RGB-D fusion ablations, not the block of one particular paper.

    Shapes: ``rgb_feats``, ``depth_feats`` and the output are ``(B, C, H, W)``.

    Init: ``W = [I | 0]`` and ``b = 0``: the identity on RGB and nothing from depth, so the
    block starts as the RGB model exactly; the depth half of ``W`` gets gradient
    ``dL/dfused @ depth_feats^T`` from the first step. Weight decay pulls ``W`` towards 0,
    i.e. away from the identity, unlike the residual blocks.

    The product is a matmul, not ``conv2d``: PyTorch runs CUDA convolutions in TF32 by
    default (``torch.backends.cudnn.allow_tf32``) but fp32 matmuls in full precision, and
    TF32 would round ``I @ rgb_feats`` away from ``rgb_feats``. Under autocast the start
    is exact only up to the autocast dtype.

    Args:
        channels: C.
    """

    def __init__(self, channels: int):
        super().__init__(channels)
        identity_then_zero = torch.cat([torch.eye(self.channels), torch.zeros(self.channels, self.channels)], dim=1)
        self.weight = nn.Parameter(identity_then_zero)
        self.bias = nn.Parameter(torch.zeros(self.channels))

    def forward(self, rgb_feats: torch.Tensor, depth_feats: torch.Tensor) -> torch.Tensor:
        check_pair(self, rgb_feats, depth_feats)
        stacked = torch.cat([rgb_feats, depth_feats], dim=1)
        return torch.einsum("oi,bihw->bohw", self.weight, stacked) + self.bias[:, None, None]
