"""Additive fusion, the block of the paper: ``fused = rgb + alpha * depth``."""
from __future__ import annotations

import typing
from typing import Dict, Literal

import torch
from torch import nn

from fusionlab.errors import FusionlabError
from fusionlab.fusion._inputs import check_pair
from fusionlab.fusion.base import FusionBlock, register_fusion

AlphaKind = Literal["scalar", "channel"]
_ALPHA_KINDS = typing.get_args(AlphaKind)


@register_fusion("add")
class AddFusion(FusionBlock):
    """Adds the depth features to the RGB features, scaled by a learnable ``alpha``.

    ``fused = rgb_feats + alpha * depth_feats``, the additive fusion of the paper (RGB-D
    EfficientViT-SAM: depth encoder of the RGB encoder's architecture, features summed).

    Shapes: ``rgb_feats``, ``depth_feats`` and the output are ``(B, C, H, W)``.

    Init: ``alpha = alpha_init`` (default 0), so the block starts as the RGB model exactly
    and ``alpha`` gets gradient ``sum(depth_feats * dL/dfused)`` from the first step. A
    non-zero ``alpha_init`` (an ablation) gives up that exact start.

    Args:
        channels: C.
        alpha: ``"scalar"`` (1 parameter) or ``"channel"`` (C parameters, one per channel).
        alpha_init: initial value of every entry of ``alpha``.
    """

    def __init__(self, channels: int, alpha: AlphaKind = "scalar", alpha_init: float = 0.0):
        super().__init__(channels)
        if alpha not in _ALPHA_KINDS:
            raise FusionlabError(f"fusion block 'add': alpha={alpha!r}; expected one of {', '.join(_ALPHA_KINDS)}")
        shape = () if alpha == "scalar" else (self.channels, 1, 1)
        self.alpha = nn.Parameter(torch.full(shape, float(alpha_init)))

    def forward(self, rgb_feats: torch.Tensor, depth_feats: torch.Tensor) -> torch.Tensor:
        check_pair(self, rgb_feats, depth_feats)
        return rgb_feats + self.alpha * depth_feats

    def gates(self) -> Dict[str, float]:
        """``alpha`` (its mean over the channels with ``alpha: channel``)."""
        return {"alpha": self.alpha.detach().float().mean().item()}
