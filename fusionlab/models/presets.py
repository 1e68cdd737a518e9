"""Named architectures: the five released EfficientViT-SAM models, two CPU presets, and Meta's SAM
ViT-B/L/H as reference models (with a tiny ViT for tests).

Each preset is a small factory returning a :class:`SamConfig`, registered by name, as
``segment_anything.build_sam`` has one builder per size.
"""
from __future__ import annotations

from typing import List, Union

from fusionlab.models.config import SamConfig
from fusionlab.models.promptable import PromptableSam
from fusionlab.models.sam import EfficientViTSam
from fusionlab.models.sam_vit import SamViT, SamViTConfig
from fusionlab.registry import Registry

MODELS = Registry(
    kind="model preset",
    builtin_modules=["fusionlab.models.presets"],
    entry_point_group="fusionlab.models",
    register_hint=("decorate a function returning a fusionlab.models.SamConfig (or SamViTConfig) with "
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


@register_model("sam-vit-h")
def sam_vit_h() -> SamViTConfig:
    """Meta's SAM ViT-H (reference, RGB-only): 641 M parameters, 1024-px input; weights
    ``sam_vit_h_4b8939.pth``."""
    return SamViTConfig(vit_embed_dim=1280, vit_depth=32, vit_heads=16, vit_global_attn_indexes=[7, 15, 23, 31])


@register_model("sam-vit-l")
def sam_vit_l() -> SamViTConfig:
    """Meta's SAM ViT-L (reference, RGB-only): 312 M parameters; weights ``sam_vit_l_0b3195.pth``."""
    return SamViTConfig(vit_embed_dim=1024, vit_depth=24, vit_heads=16, vit_global_attn_indexes=[5, 11, 17, 23])


@register_model("sam-vit-b")
def sam_vit_b() -> SamViTConfig:
    """Meta's SAM ViT-B (reference, RGB-only): 94 M parameters; weights ``sam_vit_b_01ec64.pth``."""
    return SamViTConfig(vit_embed_dim=768, vit_depth=12, vit_heads=12, vit_global_attn_indexes=[2, 5, 8, 11])


@register_model("sam-vit-tiny")
def sam_vit_tiny() -> SamViTConfig:
    """SAM ViT's classes at a test size: a 2-block, 32-wide ViT at 128 px and the demo's small head."""
    return SamViTConfig(vit_embed_dim=32, vit_depth=2, vit_heads=2, vit_global_attn_indexes=[1], vit_window_size=4,
                        embed_dim=64, grid=8, image_size=(128, 128), decoder_mlp_dim=256, decoder_heads=4,
                        iou_head_hidden_dim=64)


ModelConfig = Union[SamConfig, SamViTConfig]


def model_config(preset: Union[str, SamConfig, SamViTConfig], **overrides) -> ModelConfig:
    """The config of a preset (or a given config) with ``overrides`` applied."""
    config = preset if isinstance(preset, (SamConfig, SamViTConfig)) else MODELS.get(preset)()
    return config.replace(**overrides) if overrides else config.validate()


_FROM_PRESET = object()


def model_for(config: ModelConfig) -> PromptableSam:
    """The model a config describes: an :class:`EfficientViTSam` or, for a :class:`SamViTConfig`, a :class:`SamViT`."""
    return SamViT(config) if isinstance(config, SamViTConfig) else EfficientViTSam(config)


def build_model(preset: Union[str, SamConfig, SamViTConfig] = "efficientvit-sam-nano", fusion=_FROM_PRESET,
                **overrides) -> PromptableSam:
    """Build an EfficientViT-SAM (or a SAM ViT reference model, for the ``sam-vit-*`` presets).

    Args:
        preset: a registered preset name (``fusionlab.list_models()``), a :class:`SamConfig` or a
            :class:`SamViTConfig`.
        fusion: a fusion block name (``fusionlab.list_fusions()``); None builds the RGB-only
            model, with no depth branch at all. Left out: the preset's own (a config may have one).
        overrides: any :class:`SamConfig` field, e.g. ``fusion_point="stage3"``,
            ``fusion_kwargs={"alpha": "channel"}``, ``depth_input="stem1"``, ``grid=32``.
    """
    if fusion is not _FROM_PRESET:
        overrides["fusion"] = fusion
    return model_for(model_config(preset, **overrides))
