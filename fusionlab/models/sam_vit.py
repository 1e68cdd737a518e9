"""Meta's SAM (ViT-B/L/H image encoder) as a reference model in fusionlab's harness.

The modules are ``segment_anything``'s own (``ImageEncoderViT``, ``PromptEncoder``,
``MaskDecoder``) under their official names, so Meta's checkpoints (``sam_vit_h_4b8939.pth``,
``sam_vit_l_0b3195.pth``, ``sam_vit_b_01ec64.pth``) load unchanged with
:func:`fusionlab.load_checkpoint`. It is RGB-only and evaluated as released (no fine-tuning):
a row to compare with, by the same protocol on the same instances.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import List, Optional, Tuple

import torch
from segment_anything.modeling import ImageEncoderViT
from torch import nn

from fusionlab.errors import FusionlabError
from fusionlab.models.config import ConfigMethods
from fusionlab.models.promptable import PromptableSam


@dataclass
class SamViTConfig(ConfigMethods):
    """The architecture of a SAM ViT model: the image encoder's size and SAM's head.

    ``image_size = (prompt_frame, encoder_input)`` as in :class:`~fusionlab.models.SamConfig`;
    both are 1024 for Meta's models, and ``grid = encoder_input / patch_size``.
    """

    vit_embed_dim: int = 1280
    vit_depth: int = 32
    vit_heads: int = 16
    vit_global_attn_indexes: List[int] = field(default_factory=lambda: [7, 15, 23, 31])
    vit_window_size: int = 14
    patch_size: int = 16
    embed_dim: int = 256
    grid: int = 64
    image_size: Tuple[int, int] = (1024, 1024)
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_heads: int = 8
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    num_multimask_outputs: int = 3
    fusion: Optional[str] = None  # always None: a reference model has no depth branch

    @property
    def has_depth(self) -> bool:
        return False

    def fusion_points(self) -> List[str]:
        return []

    def validate(self) -> "SamViTConfig":
        if self.fusion is not None:
            raise FusionlabError(f"fusion {self.fusion!r}: SAM ViT presets are RGB-only reference models; "
                                 "use fusion: null (fuse depth into an efficientvit-sam-* preset)")
        if self.image_size[1] != self.grid * self.patch_size:
            raise FusionlabError(f"image_size[1]={self.image_size[1]} must be grid × patch_size = "
                                 f"{self.grid} × {self.patch_size}")
        return self


class SamViT(PromptableSam):
    """SAM with a ViT image encoder; the same interface as :class:`~fusionlab.models.EfficientViTSam`.

    Tensors: images ``(B, 3, S, S)`` normalised and padded as for EfficientViT-SAM (SAM's pixel
    mean and std), ``S = image_size[1]``; embeddings ``(B, embed_dim, grid, grid)``.
    """

    def __init__(self, config: SamViTConfig):
        super().__init__()
        self.config = config.validate()
        self.image_size: Tuple[int, int] = tuple(config.image_size)
        self.image_encoder = ImageEncoderViT(
            img_size=config.image_size[1], patch_size=config.patch_size, embed_dim=config.vit_embed_dim,
            depth=config.vit_depth, num_heads=config.vit_heads, mlp_ratio=4,
            norm_layer=partial(nn.LayerNorm, eps=1e-6), qkv_bias=True, use_rel_pos=True,
            global_attn_indexes=tuple(config.vit_global_attn_indexes), window_size=config.vit_window_size,
            out_chans=config.embed_dim)
        self.add_head(config)
        self.add_pixel_stats()

    def encode(self, images: torch.Tensor, depths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(B, 3, S, S)`` → ``(B, embed_dim, grid, grid)``; depth, if given, is not used."""
        return self.image_encoder(images)

    def rgb_state_keys(self) -> set:
        """Every key: the model is RGB-only (Meta's checkpoints hold exactly these)."""
        return set(self.state_dict())
