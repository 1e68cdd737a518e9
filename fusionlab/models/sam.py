"""The (RGB-D) EfficientViT-SAM model.

RGB path = the official EfficientViT-SAM (``image_encoder`` = backbone + neck + LayerNorm2d,
then SAM's ``prompt_encoder`` and ``mask_decoder`` from Meta's ``segment_anything``), with
the official state-dict keys. With a fusion block, a ``depth_encoder`` of the same
architecture encodes the depth map and ``fusions[<point>]`` merges it into the RGB path.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder, TwoWayTransformer
from torch import nn

from fusionlab.data.transforms import PIXEL_MEAN, PIXEL_STD
from fusionlab.errors import FusionlabError
from fusionlab.fusion import build_fusion
from fusionlab.models.backbone import EfficientViTBackbone
from fusionlab.models.config import FUSION_POINT_NECK, SamConfig
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


class EfficientViTSam(nn.Module):
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

    mask_threshold = 0.0

    def __init__(self, config: SamConfig):
        super().__init__()
        self.config = config.validate()
        self.image_size: Tuple[int, int] = tuple(config.image_size)
        self.image_encoder = ImageEncoder(config)
        self.depth_encoder: Optional[ImageEncoder] = None
        self.fusions = nn.ModuleDict()
        if config.has_depth:
            points = config.fusion_points()
            late = points == [FUSION_POINT_NECK]
            last_stage = max(int(p.replace("stage", "")) for p in points) if not late else None
            self.depth_encoder = ImageEncoder(config, in_channels=1 if config.depth_input == "stem1" else 3,
                                              num_stages=None if late else last_stage + 1, with_neck=late)
            for point in points:
                channels = config.embed_dim if late else config.width_list[int(point.replace("stage", ""))]
                self.fusions[point] = build_fusion(config.fusion, channels, **config.fusion_kwargs)
        self.prompt_encoder = PromptEncoder(
            embed_dim=config.embed_dim, image_embedding_size=(config.grid, config.grid),
            input_image_size=(config.image_size[0], config.image_size[0]), mask_in_chans=config.mask_in_chans)
        self.mask_decoder = MaskDecoder(
            num_multimask_outputs=config.num_multimask_outputs,
            transformer=TwoWayTransformer(depth=config.decoder_depth, embedding_dim=config.embed_dim,
                                          mlp_dim=config.decoder_mlp_dim, num_heads=config.decoder_heads),
            transformer_dim=config.embed_dim, iou_head_depth=config.iou_head_depth,
            iou_head_hidden_dim=config.iou_head_hidden_dim)
        for module in self.modules():  # as the official model zoo does before loading weights
            if isinstance(module, (nn.GroupNorm, nn.LayerNorm, nn.modules.batchnorm._BatchNorm)) or \
                    type(module).__name__ == "LayerNorm2d":
                module.eps = NORM_EPS
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(3, 1, 1) / 255.0, persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(3, 1, 1) / 255.0, persistent=False)

    @property
    def has_depth(self) -> bool:
        return self.depth_encoder is not None

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    # ---------------------------------------------------------------- forward parts
    def _depth_as_input(self, depths: torch.Tensor) -> torch.Tensor:
        if self.config.depth_input == "stem1":
            return (depths - 0.5) / 0.25
        grey = depths.expand(-1, 3, -1, -1)
        return (grey - self.pixel_mean) / self.pixel_std

    def encode(self, images: torch.Tensor, depths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Image (and depth) → the SAM image embedding ``(B, embed_dim, grid, grid)``."""
        rgb_feats = self.image_encoder.backbone(images)
        if not self.has_depth:
            return self.image_encoder.embed(rgb_feats)
        if depths is None:
            raise FusionlabError("this RGB-D model needs a depth map for every image; got none "
                                 "(use a depth source, or the 'constant' control to drop depth)")
        depth_feats = self.depth_encoder.backbone(self._depth_as_input(depths))
        if FUSION_POINT_NECK in self.fusions:
            return self.fusions[FUSION_POINT_NECK](self.image_encoder.embed(rgb_feats),
                                                   self.depth_encoder.embed(depth_feats))
        for point, block in self.fusions.items():
            rgb_feats[point] = block(rgb_feats[point], depth_feats[point])
        return self.image_encoder.embed(rgb_feats)

    def decode(self, embedding: torch.Tensor, points: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
               boxes: Optional[torch.Tensor] = None, mask_input: Optional[torch.Tensor] = None,
               multimask_output: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
        """Masks for N prompts on ONE image.

        Args:
            embedding: ``(1, embed_dim, grid, grid)``.
            points: ``(coords (N, P, 2), labels (N, P))`` in the prompt frame; label 1 = foreground,
                0 = background.
            boxes: ``(N, 4)`` xyxy in the prompt frame.
            mask_input: ``(N, 1, 4·grid, 4·grid)`` low-res logits from an earlier prediction.
        Returns:
            low-res logits ``(N, M, 4·grid, 4·grid)`` and IoU predictions ``(N, M)``; M = 3 with
            multimask output, else 1.
        """
        sparse, dense = self.prompt_encoder(points=points, boxes=boxes, masks=mask_input)
        return self.mask_decoder(image_embeddings=embedding, image_pe=self.prompt_encoder.get_dense_pe(),
                                 sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                 multimask_output=multimask_output)

    def forward(self, images: torch.Tensor, depths: Optional[torch.Tensor], prompts: list,
                multimask_output: bool = False) -> list:
        """Batched forward for training: encode B images once, decode each image's prompts.

        Args:
            images: ``(B, 3, S, S)``; depths: ``(B, 1, S, S)`` or None for RGB-only.
            prompts: B dicts with optional ``points`` ``(coords (N, P, 2), labels (N, P))``,
                ``boxes`` ``(N, 4)`` and ``mask_input`` (prompt-frame coordinates).
        Returns:
            B tuples ``(low_res_logits (N, M, 4·grid, 4·grid), iou_predictions (N, M))``.
        """
        embeddings = self.encode(images, depths)
        return [self.decode(embeddings[i:i + 1], points=p.get("points"), boxes=p.get("boxes"),
                            mask_input=p.get("mask_input"), multimask_output=multimask_output)
                for i, p in enumerate(prompts)]

    # ---------------------------------------------------------------- parameters
    def rgb_state_keys(self) -> set:
        """Keys of the RGB model (what an official checkpoint holds)."""
        return {k for k in self.state_dict() if not k.startswith(("depth_encoder.", "fusions."))}

    def init_depth_from_rgb(self) -> None:
        """Copy the RGB encoder's weights into the depth encoder (where shapes agree)."""
        if not self.has_depth:
            raise FusionlabError("this model has no depth encoder to initialise (fusion=None)")
        rgb = self.image_encoder.state_dict()
        own = self.depth_encoder.state_dict()
        if self.config.depth_input == "stem1":  # a one-channel stem starts as the RGB stem summed over colours
            key = "backbone.stages.0.op_list.0.conv.weight"
            rgb = dict(rgb)
            rgb[key] = rgb[key].sum(dim=1, keepdim=True)
        self.depth_encoder.load_state_dict({k: v for k, v in rgb.items() if k in own}, strict=True)
