"""Gated fusion: a learned per-pixel, per-channel gate on a projection of the depth features."""
from __future__ import annotations

import torch
from torch import nn

from fusionlab.fusion._inputs import check_pair
from fusionlab.fusion.base import FusionBlock, register_fusion


@register_fusion("gated")
class GatedFusion(FusionBlock):
    """Adds projected depth features where a gate computed from both streams lets them in.

    ``fused = rgb_feats + g * P(depth_feats)`` with ``g = sigmoid(G([rgb_feats; depth_feats]))``;
    ``G`` (2C -> C) and ``P`` (C -> C) are 1x1 convolutions, so ``g`` is one value in (0, 1)
    per pixel and channel. This is the gated-fusion idea of Gated Fusion Networks (Cheng et
    al., "Locality-Sensitive Deconvolution Networks with Gated Fusion for RGB-D Indoor
    Semantic Segmentation", CVPR 2017), written as a residual on RGB.

    Shapes: ``rgb_feats``, ``depth_feats`` and the output are ``(B, C, H, W)``.

    Init: ``G`` random (PyTorch default), ``P`` zero (weight and bias), so the block starts
    as the RGB model exactly. ``P`` is the only zero-initialised layer on the depth path,
    so it gets gradient ``g * dL/dfused`` times ``depth_feats`` from the first step; ``G``
    starts receiving gradient once ``P`` is non-zero.

    Args:
        channels: C.
    """

    def __init__(self, channels: int):
        super().__init__(channels)
        self.gate = nn.Conv2d(2 * self.channels, self.channels, kernel_size=1)
        self.depth_proj = nn.Conv2d(self.channels, self.channels, kernel_size=1)
        nn.init.zeros_(self.depth_proj.weight)
        nn.init.zeros_(self.depth_proj.bias)

    def forward(self, rgb_feats: torch.Tensor, depth_feats: torch.Tensor) -> torch.Tensor:
        check_pair(self, rgb_feats, depth_feats)
        gate = torch.sigmoid(self.gate(torch.cat([rgb_feats, depth_feats], dim=1)))
        return rgb_feats + gate * self.depth_proj(depth_feats)
