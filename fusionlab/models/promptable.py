"""What every promptable model of fusionlab shares: SAM's prompt encoder and mask decoder (Meta's
``segment_anything`` modules, under their official names), decoding and the batched forward.

:class:`~fusionlab.models.sam.EfficientViTSam` and :class:`~fusionlab.models.sam_vit.SamViT`
subclass it and add their image encoders; the predictor, evaluation, training and cost code
use only what is here plus ``encode(images, depths)``, ``image_size`` and ``has_depth``.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder, TwoWayTransformer
from torch import nn

from fusionlab.data.transforms import PIXEL_MEAN, PIXEL_STD


class PromptableSam(nn.Module):
    """SAM's head on an image embedding ``(B, embed_dim, grid, grid)`` made by a subclass's ``encode``.

    Subclasses call :meth:`add_head` and :meth:`add_pixel_stats` in ``__init__`` (where, decides
    the order in which parameters are created and so the random initialisation).
    """

    mask_threshold = 0.0
    image_size: Tuple[int, int]

    def add_head(self, config) -> None:
        """``prompt_encoder`` and ``mask_decoder`` from the config's ``embed_dim``, ``grid``, ``image_size``,
        ``mask_in_chans`` and ``decoder_*`` / ``iou_head_*`` / ``num_multimask_outputs`` fields."""
        self.prompt_encoder = PromptEncoder(
            embed_dim=config.embed_dim, image_embedding_size=(config.grid, config.grid),
            input_image_size=(config.image_size[0], config.image_size[0]), mask_in_chans=config.mask_in_chans)
        self.mask_decoder = MaskDecoder(
            num_multimask_outputs=config.num_multimask_outputs,
            transformer=TwoWayTransformer(depth=config.decoder_depth, embedding_dim=config.embed_dim,
                                          mlp_dim=config.decoder_mlp_dim, num_heads=config.decoder_heads),
            transformer_dim=config.embed_dim, iou_head_depth=config.iou_head_depth,
            iou_head_hidden_dim=config.iou_head_hidden_dim)

    def add_pixel_stats(self) -> None:
        """SAM's pixel mean and std (in [0, 1] units), as buffers that follow the model's device."""
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(3, 1, 1) / 255.0, persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(3, 1, 1) / 255.0, persistent=False)

    @property
    def has_depth(self) -> bool:
        return False

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def encode(self, images: torch.Tensor, depths: Optional[torch.Tensor] = None) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement encode(images, depths)")

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
