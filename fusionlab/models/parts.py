"""The trainable parts of an (RGB-D) EfficientViT-SAM: the names ``train.freeze`` and
``train.lr_multipliers`` may use, declared once, and the modules each name covers."""
from __future__ import annotations

import typing
from typing import TYPE_CHECKING, List, Literal

if TYPE_CHECKING:
    from torch import nn

    from fusionlab.models.sam import EfficientViTSam

Part = Literal["rgb_encoder", "depth_encoder", "fusion", "neck", "prompt_encoder", "decoder"]
PARTS: typing.Tuple[str, ...] = typing.get_args(Part)
# Parts only an RGB-D model has: an RGB-only model ignores them, and its results do not depend on them.
DEPTH_ONLY_PARTS = ("depth_encoder", "fusion")


def part_modules(model: "EfficientViTSam", part: str) -> List["nn.Module"]:
    """The modules of one trainable part; empty when the model lacks it.

    ``neck`` covers the RGB encoder's neck and LayerNorm2d, and the depth encoder's where it has
    them (``same`` at the neck); ``depth_encoder`` is the rest of the depth encoder (a light
    encoder's projections included; nothing for ``shared``, which is the RGB encoder).
    """
    depth_parts = model.depth_encoder.parts() if model.depth_encoder is not None else {}
    modules = {
        "rgb_encoder": lambda: [model.image_encoder.backbone],
        "depth_encoder": lambda: depth_parts.get("depth_encoder", []),
        "neck": lambda: [model.image_encoder.neck, model.image_encoder.norm] + depth_parts.get("neck", []),
        "fusion": lambda: [model.fusions],
        "prompt_encoder": lambda: [model.prompt_encoder],
        "decoder": lambda: [model.mask_decoder],
    }
    if part not in modules:
        raise ValueError(f"unknown part {part!r}; the parts are {', '.join(PARTS)}")
    return modules[part]()
