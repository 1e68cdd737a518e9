"""Squeeze-and-excitation fusion (ESANet): each stream reweights its channels, then they are added."""
from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from fusionlab.fusion._inputs import check_pair
from fusionlab.fusion.base import FusionBlock, register_fusion


def _excitation(channels: int, reduction: int) -> nn.Sequential:
    """The SE bottleneck MLP: ``(B, C)`` pooled features -> ``(B, C)`` channel logits."""
    hidden = max(channels // reduction, 1)
    return nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))


@register_fusion("se")
class SEFusion(FusionBlock):
    """ESANet's fusion: squeeze-and-excitation on each stream, then a sum.

    ``fused = rgb_feats * 2 sigmoid(E_rgb(mean_hw(rgb_feats)))
    + beta * depth_feats * sigmoid(E_depth(mean_hw(depth_feats)))``, where ``E`` is an SE
    bottleneck MLP (C -> C/reduction -> C) and ``beta`` a per-channel scale. ESANet
    (Seichter et al., "Efficient RGB-D Semantic Segmentation for Indoor Scene Analysis",
    ICRA 2021) sums ``SE(rgb) + SE(depth)``; the factor 2 and ``beta`` only make the
    block start at the RGB model (the RGB channel weights range over (0, 2)).

    Shapes: ``rgb_feats``, ``depth_feats`` and the output are ``(B, C, H, W)``.

    Init: the last layer of ``E_rgb`` is zero, so ``2 sigmoid(0) = 1`` keeps RGB unchanged;
    ``beta`` is zero, so depth adds nothing; ``E_depth`` and the first layer of ``E_rgb``
    are random (PyTorch defaults). Exactly one zero-initialised factor sits on the depth
    path (``beta``), so it gets gradient from the first step; so does the zero last layer of
    ``E_rgb``, through its bias always and through its weight where the ReLU is active.

    Args:
        channels: C.
        reduction: bottleneck ratio of the SE MLPs (ESANet uses 16).
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__(channels)
        self.rgb_excitation = _excitation(self.channels, reduction)
        self.depth_excitation = _excitation(self.channels, reduction)
        nn.init.zeros_(self.rgb_excitation[-1].weight)
        nn.init.zeros_(self.rgb_excitation[-1].bias)
        self.depth_scale = nn.Parameter(torch.zeros(self.channels))

    def forward(self, rgb_feats: torch.Tensor, depth_feats: torch.Tensor) -> torch.Tensor:
        check_pair(self, rgb_feats, depth_feats)
        rgb_weights = 2.0 * torch.sigmoid(self.rgb_excitation(rgb_feats.mean(dim=(2, 3))))  # (B, C)
        depth_weights = torch.sigmoid(self.depth_excitation(depth_feats.mean(dim=(2, 3))))  # (B, C)
        depth_weights = self.depth_scale * depth_weights
        return rgb_feats * rgb_weights[:, :, None, None] + depth_feats * depth_weights[:, :, None, None]

    def gates(self) -> Dict[str, float]:
        """The mean of ``beta`` (``depth_scale``) over the channels."""
        return {"depth_scale": self.depth_scale.detach().float().mean().item()}
