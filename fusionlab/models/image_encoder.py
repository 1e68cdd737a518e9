"""EfficientViT-SAM's image encoder: backbone → neck → LayerNorm2d (the official module layout)."""
from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import nn

from fusionlab.models.backbone import EfficientViTBackbone
from fusionlab.models.config import SamConfig
from fusionlab.models.layers import NORM_EPS, LayerNorm2d
from fusionlab.models.neck import SamNeck


class ImageEncoder(nn.Module):
    """Backbone → neck → LayerNorm2d: ``(B, C_in, S, S) → (B, embed_dim, grid, grid)``."""

    def __init__(self, config: SamConfig, in_channels: int = 3, num_stages: Optional[int] = None,
                 with_neck: bool = True):
        super().__init__()
        self.backbone = EfficientViTBackbone(config.width_list, config.depth_list, config.block_list,
                                             config.expand_list, config.fewer_norm_list, in_channels=in_channels,
                                             qkv_dim=config.qkv_dim, num_stages=num_stages)
        if with_neck:
            stage_channels = [config.width_list[int(s.replace("stage", ""))] for s in config.neck_stages]
            self.neck = SamNeck(config.neck_stages, stage_channels, config.neck_width, config.neck_depth,
                                config.neck_expand, config.neck_op, out_dim=config.embed_dim, grid=config.grid)
            self.norm = LayerNorm2d(config.embed_dim, eps=NORM_EPS)

    def embed(self, feats: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Neck and norm over backbone features: ``{stageN: ...} → (B, embed_dim, grid, grid)``."""
        return self.norm(self.neck(feats))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.backbone(x))
