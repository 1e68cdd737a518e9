"""The architecture of an (RGB-D) EfficientViT-SAM, as one explicit dataclass."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Dict, List, Literal, Optional, Tuple

from fusionlab.errors import FusionlabError
from fusionlab.typecheck import check_fields, conform

FUSION_POINT_NECK = "neck"
FUSION_POINT_NECK_INPUTS = "neck_inputs"
DepthInput = Literal["replicate", "stem1"]
DEPTH_INPUTS = typing.get_args(DepthInput)


class ConfigMethods:
    """What every architecture dataclass does (:class:`SamConfig`, ``SamViTConfig``): copies with
    some fields changed, and a plain dict."""

    def replace(self, **overrides):
        """A copy with some fields changed, validated; an unknown field or a value of the wrong type is
        a one-line error naming it (``grid: expected an integer, got a string 'big'``)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise FusionlabError(f"unknown model option(s) {unknown} of {type(self).__name__}; expected: "
                                 f"{sorted(names)}")
        hints = typing.get_type_hints(type(self))
        overrides = {name: conform(hints[name], value, name) for name, value in overrides.items()}
        return dataclasses.replace(self, **overrides).validate()

    def to_dict(self) -> Dict[str, object]:
        return dataclasses.asdict(self)


@dataclass
class SamConfig(ConfigMethods):
    """Everything that fixes an EfficientViT-SAM's architecture and its depth branch.

    The first group is the official RGB model (see the presets); the second adds depth:
    the fusion block and where it sits, the depth encoder (``fusionlab list depth_encoders``;
    ``timm:<name>`` for a timm backbone) with its options, how depth enters it (three
    replicated channels or a one-channel stem) and its own input side (``depth_size``; None:
    the RGB encoder's input).
    ``image_size = (prompt_frame, encoder_input)``: prompts live in a frame whose long side
    is ``prompt_frame`` (1024 for all released models) while the encoder sees
    ``encoder_input`` pixels (512 for L, 1024 for XL).
    """

    width_list: List[int] = field(default_factory=lambda: [32, 64, 128, 256, 512])
    depth_list: List[int] = field(default_factory=lambda: [1, 1, 1, 4, 4])
    block_list: List[str] = field(default_factory=lambda: ["res", "fmb", "fmb", "mb", "att"])
    expand_list: List[float] = field(default_factory=lambda: [1, 4, 4, 4, 6])
    fewer_norm_list: List[bool] = field(default_factory=lambda: [False, False, False, True, True])
    qkv_dim: int = 32
    neck_stages: List[str] = field(default_factory=lambda: ["stage4", "stage3", "stage2"])
    neck_width: int = 256
    neck_depth: int = 4
    neck_expand: float = 1
    neck_op: str = "fmb"
    embed_dim: int = 256
    grid: int = 64
    image_size: Tuple[int, int] = (1024, 512)
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_heads: int = 8
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    num_multimask_outputs: int = 3

    fusion: Optional[str] = None
    fusion_point: str = FUSION_POINT_NECK
    fusion_kwargs: Dict[str, object] = field(default_factory=dict)
    depth_encoder: str = "same"
    depth_encoder_kwargs: Dict[str, object] = field(default_factory=dict)
    depth_input: DepthInput = "replicate"
    depth_size: Optional[int] = None

    @property
    def has_depth(self) -> bool:
        return self.fusion is not None

    def fusion_points(self) -> List[str]:
        """The concrete points where a fusion block sits (empty for RGB-only)."""
        if not self.has_depth:
            return []
        if self.fusion_point == FUSION_POINT_NECK_INPUTS:
            return list(self.neck_stages)
        return [self.fusion_point]

    def validate(self) -> "SamConfig":
        """This config, checked: field types, then what the fields must agree on; one-line errors."""
        check_fields(self, type(self).__name__)
        allowed = [FUSION_POINT_NECK, FUSION_POINT_NECK_INPUTS] + list(self.neck_stages)
        if self.fusion_point not in allowed:
            raise FusionlabError(f"fusion_point {self.fusion_point!r} is not a point of this model; "
                                 f"expected one of {allowed}")
        if not isinstance(self.depth_encoder, str) or not self.depth_encoder:
            raise FusionlabError(f"depth_encoder {self.depth_encoder!r}: expected a depth encoder's name, e.g. "
                                 "'same' (fusionlab list depth_encoders)")
        largest_stride = 2 ** len(self.width_list)
        if self.depth_size is not None and (isinstance(self.depth_size, bool) or not isinstance(self.depth_size, int)
                                            or self.depth_size <= 0 or self.depth_size % largest_stride):
            raise FusionlabError(f"depth_size {self.depth_size!r}: expected a positive multiple of {largest_stride} "
                                 "(the encoder's largest stride), or null for the RGB encoder's input size")
        prompt_frame, encoder_input = self.image_size
        if prompt_frame % self.grid:
            raise FusionlabError(f"image_size[0]={prompt_frame} must be a multiple of grid={self.grid}")
        return self
