"""Rectify-then-fuse (CMX): each stream is corrected by weights computed from both, then fused."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fusionlab.fusion._inputs import check_pair
from fusionlab.fusion.base import FusionBlock, register_fusion


@register_fusion("rectify")
class RectifyFusion(FusionBlock):
    """CMX's cross-modal feature rectification followed by a residual fusion on RGB.

    Follows Zhang et al., "CMX: Cross-Modal Fusion for RGB-X Semantic Segmentation with
    Transformers", IEEE T-ITS 2023. Rectification (CMX's FRM): from both streams,

    - channel weights ``w_c = sigmoid(M_c([avg(R); avg(D); max(R); max(D)]))``, ``(B, 2, C)``,
      with global average/max pooling and an MLP ``4C -> 4C/reduction -> 2C``;
    - spatial weights ``w_s = sigmoid(M_s([R; D]))``, ``(B, 2, H, W)``, with 1x1 convolutions
      ``2C -> C/reduction -> 2``;

    and each stream is corrected by the other: ``R' = R + l_c w_c[1] D + l_s w_s[1] D``,
    ``D' = D + l_c w_c[0] R + l_s w_s[0] R``. Fusion (a light stand-in for CMX's FFM,
    without its token cross-attention): ``h = GELU(dw3x3(conv1x1([R'; D'])))`` (2C -> C),
    ``fused = R + O(h)`` with ``O`` a 1x1 convolution C -> C.

    Shapes: ``rgb_feats`` (R), ``depth_feats`` (D) and the output are ``(B, C, H, W)``.

    Init: ``O`` is zero (weight and bias), so the block starts as the RGB model exactly;
    everything else is random (PyTorch defaults), so ``O`` gets gradient ``dL/dfused`` times
    ``h``, which depends on the depth, from the first step.

    Args:
        channels: C.
        reduction: bottleneck ratio of the rectification MLPs (CMX uses 1; 4 is lighter).
        lambda_channel: l_c, weight of the channel-wise correction (CMX: 0.5).
        lambda_spatial: l_s, weight of the spatial-wise correction (CMX: 0.5).
    """

    def __init__(self, channels: int, reduction: int = 4, lambda_channel: float = 0.5,
                 lambda_spatial: float = 0.5):
        super().__init__(channels)
        c = self.channels
        self.lambda_channel = float(lambda_channel)
        self.lambda_spatial = float(lambda_spatial)
        self.channel_weights = nn.Sequential(
            nn.Linear(4 * c, max(4 * c // reduction, 1)), nn.ReLU(inplace=True),
            nn.Linear(max(4 * c // reduction, 1), 2 * c))
        self.spatial_weights = nn.Sequential(
            nn.Conv2d(2 * c, max(c // reduction, 1), kernel_size=1), nn.ReLU(inplace=True),
            nn.Conv2d(max(c // reduction, 1), 2, kernel_size=1))
        self.mix = nn.Conv2d(2 * c, c, kernel_size=1)
        self.local = nn.Conv2d(c, c, kernel_size=3, padding=1, groups=c)
        self.out = nn.Conv2d(c, c, kernel_size=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, rgb_feats: torch.Tensor, depth_feats: torch.Tensor) -> torch.Tensor:
        check_pair(self, rgb_feats, depth_feats)
        batch, channels = rgb_feats.shape[:2]
        both = torch.cat([rgb_feats, depth_feats], dim=1)  # (B, 2C, H, W)
        pooled = torch.cat([both.mean(dim=(2, 3)), both.amax(dim=(2, 3))], dim=1)  # (B, 4C)
        channel_w = torch.sigmoid(self.channel_weights(pooled)).view(batch, 2, channels, 1, 1)
        spatial_w = torch.sigmoid(self.spatial_weights(both)).unsqueeze(2)  # (B, 2, 1, H, W)
        correction = self.lambda_channel * channel_w + self.lambda_spatial * spatial_w  # (B, 2, C, H, W)
        rgb_rectified = rgb_feats + correction[:, 1] * depth_feats
        depth_rectified = depth_feats + correction[:, 0] * rgb_feats
        fused = F.gelu(self.local(self.mix(torch.cat([rgb_rectified, depth_rectified], dim=1))))
        return rgb_feats + self.out(fused)
