"""The input check every fusion block runs first."""
from __future__ import annotations

import torch
from torch import nn

from fusionlab.errors import FusionlabError


def check_pair(block: nn.Module, rgb_feats: torch.Tensor, depth_feats: torch.Tensor) -> None:
    """Raise a one-line :class:`FusionlabError` unless both maps are ``(B, block.channels, H, W)``.

    A mismatch here usually means the depth encoder and the RGB encoder were built at
    different sizes or resolutions, so the message gives both shapes.
    """
    channels = getattr(block, "channels", None)
    if (rgb_feats.shape != depth_feats.shape or rgb_feats.dim() != 4
            or (channels is not None and rgb_feats.shape[1] != channels)):
        name = getattr(type(block), "registry_name", type(block).__name__)
        raise FusionlabError(
            f"fusion block {name!r}: rgb_feats {tuple(rgb_feats.shape)} and depth_feats "
            f"{tuple(depth_feats.shape)} must both have shape (B, {channels}, H, W)")
