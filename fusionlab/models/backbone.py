"""The EfficientViT "large" backbone used by EfficientViT-SAM (L and XL families)."""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch
from torch import nn

from fusionlab.models.layers import (ConvLayer, EfficientViTBlock, FusedMBConv, MBConv, OpSequential, ResBlock,
                                     ResidualBlock)


def _local_block(kind: str, in_channels: int, out_channels: int, stride: int, expand_ratio: float,
                 fewer_norm: bool, norm: str, act_func: str) -> nn.Module:
    if kind == "res":
        return ResBlock(in_channels, out_channels, stride, expand_ratio=1,
                        use_bias=(True, False) if fewer_norm else False,
                        norm=(None, norm) if fewer_norm else norm, act_func=(act_func, None))
    if kind == "fmb":
        return FusedMBConv(in_channels, out_channels, stride, expand_ratio,
                           use_bias=(True, False) if fewer_norm else False,
                           norm=(None, norm) if fewer_norm else norm, act_func=(act_func, None))
    if kind == "mb":
        return MBConv(in_channels, out_channels, stride, expand_ratio,
                      use_bias=(True, True, False) if fewer_norm else False,
                      norm=(None, None, norm) if fewer_norm else norm, act_func=(act_func, act_func, None))
    raise ValueError(f"unknown local block {kind!r}; expected 'res', 'fmb' or 'mb'")


class EfficientViTBackbone(nn.Module):
    """EfficientViT-L/XL backbone: a stem stage and stride-2 stages of local or attention blocks.

    ``forward(x)`` takes ``(B, in_channels, H, W)`` and returns ``{"stage0": (B, w0, H/2, W/2),
    "stage1": (B, w1, H/4, W/4), ...}``: stage ``i`` has stride ``2**(i+1)``.

    Args:
        width_list: channels per stage.
        depth_list: blocks per stage (after each later stage's downsample block).
        block_list: block kind per stage: ``res``, ``fmb``, ``mb``, ``att`` (5×5 aggregation)
            or ``att@3`` (3×3, the XL models).
        expand_list: expansion ratio per stage; a stage's downsample block uses 4× it.
        fewer_norm_list: per stage, drop the norms inside blocks but the last (and use biases).
        in_channels: input channels (3 for RGB; 1 for a one-channel depth stem).
        qkv_dim: head dimension of the linear attention.
        num_stages: build only the first ``num_stages`` stages (a depth encoder that feeds a
            fusion point before the last stage needs no more).
    """

    def __init__(self, width_list: Sequence[int], depth_list: Sequence[int],
                 block_list: Sequence[str] = ("res", "fmb", "fmb", "mb", "att"),
                 expand_list: Sequence[float] = (1, 4, 4, 4, 6),
                 fewer_norm_list: Sequence[bool] = (False, False, False, True, True),
                 in_channels: int = 3, qkv_dim: int = 32, norm: str = "bn2d", act_func: str = "gelu",
                 num_stages: Optional[int] = None):
        super().__init__()
        lists = (width_list, depth_list, block_list, expand_list, fewer_norm_list)
        if len({len(x) for x in lists}) != 1:
            raise ValueError("width_list, depth_list, block_list, expand_list and fewer_norm_list must have one "
                             f"entry per stage; got lengths {[len(x) for x in lists]}")
        num_stages = len(width_list) if num_stages is None else num_stages
        stem = [ConvLayer(in_channels, width_list[0], 3, 2, norm=norm, act_func=act_func)]
        for _ in range(depth_list[0]):
            block = _local_block(block_list[0], width_list[0], width_list[0], 1, expand_list[0],
                                 fewer_norm_list[0], norm, act_func)
            stem.append(ResidualBlock(block, True))
        stages = [OpSequential(stem)]
        channels = width_list[0]
        for stage_id in range(1, num_stages):
            kind, width = block_list[stage_id], width_list[stage_id]
            down_kind = kind if kind in ("mb", "fmb") else "mb"
            ops = [ResidualBlock(_local_block(down_kind, channels, width, 2, expand_list[stage_id] * 4,
                                              fewer_norm_list[stage_id], norm, act_func), False)]
            channels = width
            for _ in range(depth_list[stage_id]):
                if kind.startswith("att"):
                    ops.append(EfficientViTBlock(channels, dim=qkv_dim, expand_ratio=expand_list[stage_id],
                                                 scales=(3,) if kind == "att@3" else (5,), norm=norm,
                                                 act_func=act_func))
                else:
                    block = _local_block(kind, channels, channels, 1, expand_list[stage_id],
                                         fewer_norm_list[stage_id], norm, act_func)
                    ops.append(ResidualBlock(block, True))
            stages.append(OpSequential(ops))
        self.stages = nn.ModuleList(stages)
        self.width_list = list(width_list[:num_stages])

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        feats = {}
        for stage_id, stage in enumerate(self.stages):
            x = stage(x)
            feats[f"stage{stage_id}"] = x
        return feats
