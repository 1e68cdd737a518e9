"""The fusion-block contract and its registry."""
from __future__ import annotations

from typing import Dict, List

import torch
from torch import nn

from fusionlab.registry import Registry

FUSIONS = Registry(
    kind="fusion block",
    builtin_modules=[
        "fusionlab.fusion.add",
        "fusionlab.fusion.concat",
        "fusionlab.fusion.gated",
        "fusionlab.fusion.cross_attention",
        "fusionlab.fusion.se",
        "fusionlab.fusion.rectify",
    ],
    entry_point_group="fusionlab.fusions",
    register_hint=("decorate a FusionBlock subclass with @fusionlab.register_fusion('name') in a module "
                   "listed under 'plugins:' in the YAML, or expose it in the 'fusionlab.fusions' entry-point group"),
    supplied=("channels",),
)


class FusionBlock(nn.Module):
    """Base class of fusion blocks.

    ``forward(rgb_feats, depth_feats)`` takes two ``(B, C, H, W)`` maps of the same shape
    and returns the fused ``(B, C, H, W)`` map. Contract every block keeps: at
    initialisation the output equals ``rgb_feats`` exactly, whatever the depth, and the
    depth path still receives gradient (no two zero-initialised layers in series), so an
    RGB-D model starts as its RGB model and can learn to use depth.

    Args:
        channels: C, the width of both inputs and of the output.
    """

    def __init__(self, channels: int):
        super().__init__()
        if int(channels) <= 0:
            raise ValueError(f"channels must be positive, got {channels}")
        self.channels = int(channels)

    def forward(self, rgb_feats: torch.Tensor, depth_feats: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(rgb_feats, depth_feats)")

    @property
    def num_parameters(self) -> int:
        """Trainable parameters this block adds."""
        return sum(p.numel() for p in self.parameters())

    def gates(self) -> Dict[str, float]:
        """The block's own learned mixing weights as scalars (``add``: its alpha), which the training
        logs follow to show how much depth the block lets in; none by default."""
        return {}


def register_fusion(name: str):
    """Register a :class:`FusionBlock` subclass (or factory) under ``name``."""
    return FUSIONS.register(name)


def list_fusions(pattern: str = "*") -> List[str]:
    """Names of the registered fusion blocks matching a glob, sorted."""
    return FUSIONS.names(pattern)


def build_fusion(name: str, channels: int, **kwargs) -> FusionBlock:
    """Build the fusion block ``name`` for ``channels``-wide feature maps."""
    return FUSIONS.build_checked(name, channels, **kwargs)
