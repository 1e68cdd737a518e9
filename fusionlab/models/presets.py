"""Named architectures: the five released EfficientViT-SAM models and two CPU presets.

Each preset is a small factory returning a :class:`SamConfig`, registered by name, as
``segment_anything.build_sam`` has one builder per size.
"""
from __future__ import annotations

from typing import List, Union

from fusionlab.models.config import SamConfig
from fusionlab.models.sam import EfficientViTSam
from fusionlab.registry import Registry

MODELS = Registry(
    kind="model preset",
    builtin_modules=["fusionlab.models.presets"],
    entry_point_group="fusionlab.models",
    register_hint=("decorate a function returning a fusionlab.models.SamConfig with "
                   "@fusionlab.models.register_model('name')"),
)


def register_model(name: str):
    """Register a factory ``() -> SamConfig`` under ``name``."""
    return MODELS.register(name)


def list_models(pattern: str = "*") -> List[str]:
    return MODELS.names(pattern)


_L_NECK = dict(neck_stages=["stage4", "stage3", "stage2"], neck_width=256, neck_expand=1, neck_op="fmb")
_XL_BACKBONE = dict(width_list=[32, 64, 128, 256, 512, 1024], block_list=["res", "fmb", "fmb", "fmb", "att@3", "att@3"],
                    expand_list=[1, 4, 4, 4, 4, 6], fewer_norm_list=[False, False, False, False, True, True],
                    neck_stages=["stage5", "stage4", "stage3"], neck_width=256, neck_expand=4, neck_op="fmb",
                    image_size=(1024, 1024))


@register_model("efficientvit-sam-l0")
def efficientvit_sam_l0() -> SamConfig:
    """Released L0: 34.79 M parameters, 512-px encoder input."""
    return SamConfig(depth_list=[1, 1, 1, 4, 4], neck_depth=4, **_L_NECK)


@register_model("efficientvit-sam-l1")
def efficientvit_sam_l1() -> SamConfig:
    """Released L1: 47.65 M parameters, 512-px encoder input."""
    return SamConfig(depth_list=[1, 1, 1, 6, 6], neck_depth=8, **_L_NECK)


@register_model("efficientvit-sam-l2")
def efficientvit_sam_l2() -> SamConfig:
    """Released L2: 61.33 M parameters, 512-px encoder input."""
    return SamConfig(depth_list=[1, 2, 2, 8, 8], neck_depth=12, **_L_NECK)


@register_model("efficientvit-sam-xl0")
def efficientvit_sam_xl0() -> SamConfig:
    """Released XL0: 116.96 M parameters, 1024-px encoder input."""
    return SamConfig(depth_list=[0, 1, 1, 2, 3, 3], neck_depth=6, **_XL_BACKBONE)


@register_model("efficientvit-sam-xl1")
def efficientvit_sam_xl1() -> SamConfig:
    """Released XL1: 203.35 M parameters, 1024-px encoder input."""
    return SamConfig(depth_list=[1, 2, 2, 4, 6, 6], neck_depth=12, **_XL_BACKBONE)


@register_model("efficientvit-sam-nano")
def efficientvit_sam_nano() -> SamConfig:
    """The shared tiny reference architecture: L0's layout with widths 8…128 and one block per
    stage, a 32-wide one-block neck and SAM's full-size prompt encoder and decoder (4.91 M)."""
    return SamConfig(width_list=[8, 16, 32, 64, 128], depth_list=[1, 1, 1, 1, 1],
                     neck_stages=["stage4", "stage3", "stage2"], neck_width=32, neck_depth=1, neck_expand=1)


@register_model("efficientvit-sam-demo")
def efficientvit_sam_demo() -> SamConfig:
    """Sized to train on a 2-core CPU in minutes: nano's backbone at 128-px input, a 16×16
    embedding of 64 channels, a 64-wide decoder (prompt frame 256 = 16 × grid, as 1024 = 16 × 64)."""
    return SamConfig(width_list=[8, 16, 32, 64, 128], depth_list=[1, 1, 1, 1, 1],
                     neck_stages=["stage4", "stage3", "stage2"], neck_width=32, neck_depth=1, neck_expand=1,
                     embed_dim=64, grid=16, image_size=(256, 128), decoder_mlp_dim=256, decoder_heads=4,
                     iou_head_hidden_dim=64)


def model_config(preset: Union[str, SamConfig], **overrides) -> SamConfig:
    """The config of a preset (or a given config) with ``overrides`` applied."""
    config = preset if isinstance(preset, SamConfig) else MODELS.get(preset)()
    return config.replace(**overrides) if overrides else config.validate()


_FROM_PRESET = object()


def build_model(preset: Union[str, SamConfig] = "efficientvit-sam-nano", fusion=_FROM_PRESET,
                **overrides) -> EfficientViTSam:
    """Build an EfficientViT-SAM.

    Args:
        preset: a registered preset name (``fusionlab.list_models()``) or a :class:`SamConfig`.
        fusion: a fusion block name (``fusionlab.list_fusions()``); None builds the RGB-only
            model, with no depth branch at all. Left out: the preset's own (a config may have one).
        overrides: any :class:`SamConfig` field, e.g. ``fusion_point="stage3"``,
            ``fusion_kwargs={"alpha": "channel"}``, ``depth_input="stem1"``, ``grid=32``.
    """
    if fusion is not _FROM_PRESET:
        overrides["fusion"] = fusion
    return EfficientViTSam(model_config(preset, **overrides))
