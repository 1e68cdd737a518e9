"""EfficientViT-SAM's neck: multi-stage features → one SAM image embedding."""
from __future__ import annotations

from typing import Dict, Sequence

import torch
from torch import nn

from fusionlab.models.layers import ConvLayer, FusedMBConv, MBConv, OpSequential, ResidualBlock, Upsample


class SamNeck(nn.Module):
    """Project each chosen stage to ``head_width`` channels, resize to the embedding grid, sum,
    refine with ``head_depth`` residual blocks, and project to ``out_dim`` channels.

    ``forward(feats)`` takes the backbone's dict (``"stageN": (B, C_N, h_N, w_N)``) and returns
    ``(B, out_dim, grid, grid)`` (before the encoder's final LayerNorm2d).

    Args:
        fid_list: the stages that feed the neck, e.g. ``["stage4", "stage3", "stage2"]``.
        in_channel_list: their channels.
        head_width, head_depth, expand_ratio, middle_op: the refinement blocks (``fmb`` or ``mb``).
        out_dim: embedding channels (256 for SAM).
        grid: embedding side (64 for SAM at 1024 prompts).
    """

    def __init__(self, fid_list: Sequence[str], in_channel_list: Sequence[int], head_width: int, head_depth: int,
                 expand_ratio: float, middle_op: str = "fmb", out_dim: int = 256, grid: int = 64,
                 norm: str = "bn2d", act_func: str = "gelu"):
        super().__init__()
        self.fid_list = list(fid_list)
        self.input_ops = nn.ModuleList([
            OpSequential([ConvLayer(c, head_width, 1, norm=norm, act_func=None), Upsample(grid)])
            for c in in_channel_list
        ])
        middle = []
        for _ in range(head_depth):
            if middle_op == "fmb":
                block = FusedMBConv(head_width, head_width, expand_ratio=expand_ratio, norm=norm,
                                    act_func=(act_func, None))
            elif middle_op == "mb":
                block = MBConv(head_width, head_width, expand_ratio=expand_ratio, norm=norm,
                               act_func=(act_func, act_func, None))
            else:
                raise ValueError(f"unknown middle_op {middle_op!r}; expected 'fmb' or 'mb'")
            middle.append(ResidualBlock(block, True))
        self.middle = OpSequential(middle)
        self.output_ops = nn.ModuleList([
            OpSequential([ConvLayer(head_width, out_dim, 1, use_bias=True, norm=None, act_func=None)])
        ])

    def forward(self, feats: Dict[str, torch.Tensor]) -> torch.Tensor:
        projected = [op(feats[fid]) for fid, op in zip(self.fid_list, self.input_ops)]
        merged = projected[0]
        for extra in projected[1:]:
            merged = merged + extra
        return self.output_ops[0](self.middle(merged))
