"""The (RGB-D) EfficientViT-SAM model.

RGB path = the official EfficientViT-SAM (``image_encoder`` = backbone + neck + LayerNorm2d,
then SAM's ``prompt_encoder`` and ``mask_decoder`` from Meta's ``segment_anything``), with
the official state-dict keys. With a fusion block, a ``depth_encoder`` (by default of the same
architecture; see :mod:`fusionlab.models.depth_encoders`) encodes the depth map and
``fusions[<point>]`` merges it into the RGB path.
"""
from __future__ import annotations

import logging
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from fusionlab.errors import FusionlabError
from fusionlab.fusion import build_fusion
from fusionlab.models.config import FUSION_POINT_NECK, SamConfig
from fusionlab.models.depth_encoders import DepthEncoder, build_depth_encoder
from fusionlab.models.image_encoder import ImageEncoder
from fusionlab.models.layers import NORM_EPS
from fusionlab.models.promptable import PromptableSam

log = logging.getLogger("fusionlab.models")


class EfficientViTSam(PromptableSam):
    """EfficientViT-SAM, optionally with a depth branch and fusion blocks.

    Tensors in and out:
        images: ``(B, 3, S, S)`` normalised, padded, ``S = image_size[1]``
            (see :func:`fusionlab.data.transforms.preprocess_image`).
        depths: ``(B, 1, S, S)`` normalised (in [0, 1] for the default normalisations), padded
            with 0 (see :func:`fusionlab.data.transforms.preprocess_depth`).
        embeddings: ``(B, embed_dim, grid, grid)``.
        prompts: coordinates in the prompt frame (long side ``image_size[0]``).
        low-res mask logits: ``(N, M, 4·grid, 4·grid)``; IoU predictions ``(N, M)``.
    """

    def __init__(self, config: SamConfig):
        super().__init__()
        self.config = config.validate()
        self.image_size: Tuple[int, int] = tuple(config.image_size)
        self.image_encoder = ImageEncoder(config)
        self.depth_encoder: Optional[DepthEncoder] = None
        self.fusions = nn.ModuleDict()
        if config.has_depth:
            self.depth_encoder = build_depth_encoder(config)
            for point in config.fusion_points():
                channels = config.embed_dim if point == FUSION_POINT_NECK else \
                    config.width_list[int(point.replace("stage", ""))]
                self.fusions[point] = build_fusion(config.fusion, channels, **config.fusion_kwargs)
        self.add_head(config)
        # as the official model zoo does before loading weights; a foreign backbone (timm) keeps its own
        foreign = {id(m) for m in self.depth_encoder.modules()} if getattr(self.depth_encoder, "keeps_norm_eps",
                                                                            False) else set()
        for module in self.modules():
            if id(module) not in foreign and (isinstance(module, (nn.GroupNorm, nn.LayerNorm,
                                                                  nn.modules.batchnorm._BatchNorm))
                                              or type(module).__name__ == "LayerNorm2d"):
                module.eps = NORM_EPS
        self.add_pixel_stats()

    @property
    def has_depth(self) -> bool:
        return self.depth_encoder is not None

    # ---------------------------------------------------------------- forward parts
    def _depth_as_input(self, depths: torch.Tensor) -> torch.Tensor:
        """``(B, 1, S, S)`` normalised depth → the depth encoder's input, at ``depth_size`` if set."""
        if self.config.depth_size is not None and depths.shape[-1] != self.config.depth_size:
            depths = F.interpolate(depths, size=(self.config.depth_size,) * 2, mode="bilinear",
                                   align_corners=False, antialias=True)
        if self.depth_encoder.in_channels == 1:
            return (depths - 0.5) / 0.25
        grey = depths.expand(-1, 3, -1, -1)
        return (grey - self.pixel_mean) / self.pixel_std

    def encode(self, images: torch.Tensor, depths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Image (and depth) → the SAM image embedding ``(B, embed_dim, grid, grid)``."""
        if not self.has_depth:
            return self.image_encoder(images)
        if depths is None:
            raise FusionlabError("this RGB-D model needs a depth map for every image; got none "
                                 "(use a depth source, or the 'constant' control to drop depth)")
        depth_input = self._depth_as_input(depths)
        batched = getattr(self.depth_encoder, "batches_with_rgb", False)
        if batched is None:  # the default: on a GPU only
            batched = images.is_cuda
        if batched and not self.training and depth_input.shape == images.shape:
            feats = self.image_encoder.backbone(torch.cat([images, depth_input]))
            rgb_feats = {k: v[:len(images)] for k, v in feats.items()}
            depth_feats = self.depth_encoder.from_backbone({k: v[len(images):] for k, v in feats.items()},
                                                           self.image_encoder)
        else:
            rgb_feats = self.image_encoder.backbone(images)
            depth_feats = self.depth_encoder(depth_input, self.image_encoder)
        if FUSION_POINT_NECK in self.fusions:
            rgb_embedding = self.image_encoder.embed(rgb_feats)
            return self.fusions[FUSION_POINT_NECK](rgb_embedding, _resample(depth_feats[FUSION_POINT_NECK],
                                                                            rgb_embedding))
        for point, block in self.fusions.items():
            rgb_feats[point] = block(rgb_feats[point], _resample(depth_feats[point], rgb_feats[point]))
        return self.image_encoder.embed(rgb_feats)

    # ---------------------------------------------------------------- parameters
    def rgb_state_keys(self) -> set:
        """Keys of the RGB model (what an official checkpoint holds)."""
        return {k for k in self.state_dict() if not k.startswith(("depth_encoder.", "fusions."))}

    def init_depth_from_rgb(self) -> bool:
        """Start the depth encoder from the RGB encoder's weights where its kind can (``same``: a copy;
        a one-channel stem as the RGB stem summed over colours). False when it keeps its own start."""
        if not self.has_depth:
            raise FusionlabError("this model has no depth encoder to initialise (fusion=None)")
        copied = self.depth_encoder.init_from_rgb(self.image_encoder)
        if not copied:
            log.info("depth encoder %r keeps its own initialisation (init_depth_from_rgb copies the RGB weights "
                     "into 'same' only)", self.config.depth_encoder)
        return copied


def _resample(depth_feats: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``depth_feats`` bilinearly resized to ``like``'s height and width (unchanged when they agree)."""
    if depth_feats.shape[-2:] == like.shape[-2:]:
        return depth_feats
    return F.interpolate(depth_feats, size=like.shape[-2:], mode="bilinear", align_corners=False)
