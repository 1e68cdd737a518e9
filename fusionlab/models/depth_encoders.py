"""Depth encoders: what turns the depth map into features at the model's fusion points.

Every kind is registered by name, as fusion blocks are::

    @register_depth_encoder("same")
    def same_encoder(config: SamConfig) -> DepthEncoder: ...

and chosen with ``SamConfig.depth_encoder`` (YAML ``model.depth_encoder``, options under
``model.depth_encoder_kwargs``). A name ``kind:suffix`` passes the suffix to the option the
kind declares in ``suffix_option`` (``timm:resnet18`` → ``model_name="resnet18"``). Third-party
encoders come from the entry-point group ``fusionlab.depth_encoders`` or a ``plugins:`` module.

The built-ins: ``same`` (the paper's: the RGB encoder's architecture with its own weights),
``shared`` (the RGB encoder's own weights, siamese), ``efficientvit`` / ``efficientvit-half`` /
``efficientvit-quarter`` (the same family, lighter), and ``timm`` (:mod:`.timm_encoder`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from fusionlab.errors import FusionlabError
from fusionlab.models.backbone import EfficientViTBackbone
from fusionlab.models.config import FUSION_POINT_NECK, SamConfig
from fusionlab.models.image_encoder import ImageEncoder
from fusionlab.registry import Registry

DEPTH_ENCODERS = Registry(
    kind="depth encoder",
    builtin_modules=["fusionlab.models.depth_encoders", "fusionlab.models.timm_encoder"],
    entry_point_group="fusionlab.depth_encoders",
    register_hint=("decorate a function (config: SamConfig, **options) -> DepthEncoder with "
                   "@fusionlab.register_depth_encoder('name') in a module listed under 'plugins:' in the YAML, "
                   "or expose it in the 'fusionlab.depth_encoders' entry-point group"),
    supplied=("config",),
)


def register_depth_encoder(name: str):
    """Register a factory ``(config: SamConfig, **options) -> DepthEncoder`` under ``name``."""
    return DEPTH_ENCODERS.register(name)


def list_depth_encoders(pattern: str = "*") -> List[str]:
    """Names of the registered depth encoders matching a glob, sorted (``timm`` stands for ``timm:<model>``)."""
    return DEPTH_ENCODERS.names(pattern)


def split_depth_encoder(name: str, options: Optional[Dict[str, object]] = None) -> Tuple[str, Dict[str, object]]:
    """``("timm", {"model_name": "resnet18", **options})`` for ``"timm:resnet18"``; other names pass through."""
    options = dict(options or {})
    if ":" not in name:
        return name, options
    kind, suffix = name.split(":", 1)
    suffix_option = getattr(DEPTH_ENCODERS.get(kind), "suffix_option", None)
    if suffix_option is None:
        raise FusionlabError(f"depth_encoder {name!r}: {kind!r} takes no ':<name>' suffix; write {kind!r}")
    if suffix_option in options:
        raise FusionlabError(f"depth_encoder {name!r}: {suffix_option!r} is given twice (in the name and in "
                             "depth_encoder_kwargs); keep one")
    options[suffix_option] = suffix
    return kind, options


def check_depth_encoder(config: SamConfig, where: str) -> None:
    """Raise a one-line error (prefixed ``where``) for an unknown encoder, a bad option, or a fusion
    point the encoder cannot serve; builds the encoder on the meta device (no memory, no weights read)."""
    try:
        kind, options = split_depth_encoder(config.depth_encoder, config.depth_encoder_kwargs)
    except FusionlabError as exc:
        raise FusionlabError(f"{where}.depth_encoder: {exc}") from None
    DEPTH_ENCODERS.check_options(kind, options, f"{where}.depth_encoder_kwargs", f"{where}.depth_encoder")
    try:
        with torch.device("meta"):
            build_depth_encoder(config)
    except FusionlabError as exc:
        raise FusionlabError(f"{where}: {exc}") from None


def build_depth_encoder(config: SamConfig) -> "DepthEncoder":
    """The depth encoder ``config`` names, for its fusion points."""
    kind, options = split_depth_encoder(config.depth_encoder, config.depth_encoder_kwargs)
    DEPTH_ENCODERS.check_options(kind, options, "depth_encoder_kwargs", "depth_encoder")
    return DEPTH_ENCODERS.get(kind)(config, **options)


@dataclass(frozen=True)
class FusionTarget:
    """What a fusion point needs from a depth encoder.

    Attributes:
        point: ``neck`` or ``stageN``.
        channels: the RGB feature's channels there (``embed_dim`` at the neck, ``width_list[N]`` at a stage).
        strides: strides (in encoder-input pixels) of the features that feed it: one for a stage,
            the neck stages' for the neck.
    """

    point: str
    channels: int
    strides: Tuple[int, ...]


def stage_stride(stage: str) -> int:
    """Stride of an EfficientViT stage's output: ``stageN`` → ``2**(N+1)``."""
    return 2 ** (int(stage.replace("stage", "")) + 1)


def fusion_targets(config: SamConfig) -> List[FusionTarget]:
    """The fusion points of ``config`` with the channels and strides each needs."""
    targets = []
    for point in config.fusion_points():
        if point == FUSION_POINT_NECK:
            strides = tuple(stage_stride(s) for s in config.neck_stages)
            targets.append(FusionTarget(point, config.embed_dim, strides))
        else:
            targets.append(FusionTarget(point, config.width_list[int(point.replace("stage", ""))],
                                        (stage_stride(point),)))
    return targets


class DepthEncoder(nn.Module):
    """Base class of depth encoders.

    ``forward(depth_input, rgb_encoder)`` takes the depth map as the encoder's input,
    ``(B, in_channels, s, s)`` (``s``: ``depth_size`` or the RGB encoder's input side), and the
    model's RGB :class:`ImageEncoder` (which only ``shared`` uses), and returns one map per
    fusion point, ``{point: (B, channels, h, w)}`` with the channels of :func:`fusion_targets`;
    ``h, w`` may differ from the RGB feature's (the model resamples them to its grid).

    Attributes:
        in_channels: 3 (the depth replicated and normalised as RGB) or 1 (``depth_input: stem1``).
    """

    def __init__(self, in_channels: int):
        super().__init__()
        self.in_channels = in_channels

    def forward(self, depth_input: torch.Tensor, rgb_encoder: ImageEncoder) -> Dict[str, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(depth_input, rgb_encoder)")

    def parts(self) -> Dict[str, List[nn.Module]]:
        """The modules of the training parts ``depth_encoder`` and ``neck`` (for freezing and lr multipliers)."""
        return {"depth_encoder": [self], "neck": []}

    def init_from_rgb(self, rgb_encoder: ImageEncoder) -> bool:
        """Start from the RGB encoder's weights where this kind can; False where it cannot (own init kept)."""
        return False


def _in_channels(config: SamConfig) -> int:
    return 1 if config.depth_input == "stem1" else 3


class SameEncoder(DepthEncoder):
    """The RGB encoder's architecture with its own weights; only the stages the fusion points need."""

    def __init__(self, config: SamConfig):
        super().__init__(_in_channels(config))
        points = config.fusion_points()
        self.late = points == [FUSION_POINT_NECK]
        last_stage = None if self.late else max(int(p.replace("stage", "")) for p in points)
        self.points = points
        encoder = ImageEncoder(config, in_channels=self.in_channels,
                               num_stages=None if self.late else last_stage + 1, with_neck=self.late)
        # The encoder's modules sit directly on this one, so that the state-dict keys stay
        # ``depth_encoder.backbone.*`` / ``depth_encoder.neck.*`` as in fusionlab 0.1 checkpoints.
        self.backbone = encoder.backbone
        if self.late:
            self.neck, self.norm = encoder.neck, encoder.norm

    def forward(self, depth_input: torch.Tensor, rgb_encoder: ImageEncoder) -> Dict[str, torch.Tensor]:
        feats = self.backbone(depth_input)
        if self.late:
            return {FUSION_POINT_NECK: self.norm(self.neck(feats))}
        return {point: feats[point] for point in self.points}

    def parts(self) -> Dict[str, List[nn.Module]]:
        return {"depth_encoder": [self.backbone], "neck": [self.neck, self.norm] if self.late else []}

    def init_from_rgb(self, rgb_encoder: ImageEncoder) -> bool:
        rgb = dict(rgb_encoder.state_dict())
        own = self.state_dict()
        if self.in_channels == 1:  # a one-channel stem starts as the RGB stem summed over colours
            key = "backbone.stages.0.op_list.0.conv.weight"
            rgb[key] = rgb[key].sum(dim=1, keepdim=True)
        self.load_state_dict({k: v for k, v in rgb.items() if k in own}, strict=True)
        return True


@register_depth_encoder("same")
def same_encoder(config: SamConfig) -> DepthEncoder:
    """The paper's depth encoder: the RGB encoder's architecture (backbone, and neck when fusing at
    ``neck``) with its own weights, started from the RGB weights by ``init_depth_from_rgb``."""
    return SameEncoder(config)


class SharedEncoder(DepthEncoder):
    """The RGB encoder itself applied to the depth map: no parameters of its own.

    In eval mode on a GPU the model runs the RGB and depth inputs through the backbone as one
    batch (:attr:`batches_with_rgb`: None = on a GPU only, True = always, False = never); on the
    CPU, where one batch of two measured slower than two passes (L0, ``benchmarks/latency.py``),
    and in training mode it runs them apart, so that BatchNorm normalises the RGB images by
    their own batch statistics, as in the RGB-only model.
    """

    batches_with_rgb: Optional[bool] = None

    def __init__(self, config: SamConfig):
        if config.depth_input == "stem1":
            raise FusionlabError("depth_encoder 'shared' runs the RGB encoder, whose stem takes 3 channels, on the "
                                 "depth map; it needs depth_input: replicate (not stem1)")
        super().__init__(3)
        self.points = config.fusion_points()

    def forward(self, depth_input: torch.Tensor, rgb_encoder: ImageEncoder) -> Dict[str, torch.Tensor]:
        return self.from_backbone(rgb_encoder.backbone(depth_input), rgb_encoder)

    def from_backbone(self, feats: Dict[str, torch.Tensor], rgb_encoder: ImageEncoder) -> Dict[str, torch.Tensor]:
        """The fusion points' maps from the shared backbone's output on the depth map."""
        if self.points == [FUSION_POINT_NECK]:
            return {FUSION_POINT_NECK: rgb_encoder.embed(feats)}
        return {point: feats[point] for point in self.points}

    def parts(self) -> Dict[str, List[nn.Module]]:
        return {"depth_encoder": [], "neck": []}


@register_depth_encoder("shared")
def shared_encoder(config: SamConfig) -> DepthEncoder:
    """Siamese: the RGB encoder's own weights encode the depth map (no extra parameters; twice the
    encoder's GMACs, in one batched pass at inference on a GPU)."""
    return SharedEncoder(config)


class Projection(nn.Module):
    """Maps features by stride to the fusion points' channels: a 1×1 convolution and BatchNorm per
    (point, stride); a point fed by several strides (the neck) sums them at the finest one's size.

    Args:
        available: ``{stride: channels}`` of the encoder's features.
        config: the model's architecture (its fusion points, see :func:`fusion_targets`).
        name: the encoder's name, for the error when a point's stride is missing.
    """

    def __init__(self, available: Dict[int, int], config: SamConfig, name: str):
        super().__init__()
        self.strides: Dict[str, List[int]] = {}
        self.project = nn.ModuleDict()
        check_servable(available, config, name)
        for target in fusion_targets(config):
            strides = taken_strides(target, available)
            self.strides[target.point] = strides
            self.project[target.point] = nn.ModuleDict({
                str(stride): nn.Sequential(nn.Conv2d(available[stride], target.channels, 1, bias=False),
                                           nn.BatchNorm2d(target.channels))
                for stride in strides})

    def forward(self, feats: Dict[int, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """``{stride: (B, C_s, h_s, w_s)}`` → ``{point: (B, channels, h, w)}`` at the point's finest stride."""
        out = {}
        for point, strides in self.strides.items():
            maps = [self.project[point][str(s)](feats[s]) for s in strides]
            size = maps[0].shape[-2:]
            out[point] = sum(m if m.shape[-2:] == size else F.interpolate(m, size=size, mode="bilinear",
                                                                            align_corners=False) for m in maps)
        return out


def taken_strides(target: FusionTarget, available: Dict[int, int]) -> List[int]:
    """The strides of ``available`` that feed ``target``, finest first; empty when it cannot be fed.

    A stage takes the feature of exactly its stride; the neck takes every neck stride the encoder has.
    """
    strides = sorted(s for s in target.strides if s in available)
    return strides if target.point == FUSION_POINT_NECK or len(strides) == len(target.strides) else []


def check_servable(available: Dict[int, int], config: SamConfig, name: str) -> None:
    """Raise a one-line error naming the points that would work when an encoder with features at
    ``available`` strides cannot feed one of ``config``'s fusion points."""
    for target in fusion_targets(config):
        if not taken_strides(target, available):
            raise FusionlabError(
                f"depth encoder {name!r} has features at strides {sorted(available)}; fusion point "
                f"{target.point!r} needs stride {' or '.join(map(str, target.strides))}; with this encoder "
                f"use fusion_point {' or '.join(servable_points(config, available)) or '(none: no stride fits)'}")


def servable_points(config: SamConfig, available: Dict[int, int]) -> List[str]:
    """The fusion points of ``config``'s model that an encoder with features at ``available`` strides can feed."""
    stages = sorted((s for s in config.neck_stages if stage_stride(s) in available), key=stage_stride)
    points = [FUSION_POINT_NECK] if stages else []
    points += stages + (["neck_inputs"] if len(stages) == len(config.neck_stages) else [])
    return points


class EfficientViTEncoder(DepthEncoder):
    """An EfficientViT backbone of its own widths and depths (the RGB encoder's block kinds), projected."""

    def __init__(self, config: SamConfig, width_list: Sequence[int], depth_list: Sequence[int], name: str):
        super().__init__(_in_channels(config))
        stages = len(config.width_list)
        if len(width_list) != stages or len(depth_list) != stages:
            raise FusionlabError(f"depth encoder {name!r}: width_list and depth_list need {stages} entries (one "
                                 f"per stage of the RGB encoder); got {list(width_list)} and {list(depth_list)}")
        targets = fusion_targets(config)
        needed = max(s.bit_length() - 2 for t in targets for s in t.strides)
        num_stages = min(needed + 1, stages)
        self.backbone = EfficientViTBackbone(width_list, depth_list, config.block_list, config.expand_list,
                                             config.fewer_norm_list, in_channels=self.in_channels,
                                             qkv_dim=config.qkv_dim, num_stages=num_stages)
        available = {stage_stride(f"stage{i}"): width_list[i] for i in range(num_stages)}
        self.projection = Projection(available, config, name)

    def forward(self, depth_input: torch.Tensor, rgb_encoder: ImageEncoder) -> Dict[str, torch.Tensor]:
        feats = self.backbone(depth_input)
        return self.projection({stage_stride(k): v for k, v in feats.items()})


@register_depth_encoder("efficientvit")
def efficientvit_encoder(config: SamConfig, width_list: Optional[List[int]] = None,
                         depth_list: Optional[List[int]] = None) -> DepthEncoder:
    """An EfficientViT backbone with explicit ``width_list`` / ``depth_list`` (left out: the RGB
    encoder's), its features projected by a 1×1 convolution to each fusion point's channels (no neck)."""
    return EfficientViTEncoder(config, width_list or config.width_list, depth_list or config.depth_list,
                               "efficientvit")


@register_depth_encoder("efficientvit-half")
def efficientvit_half(config: SamConfig) -> DepthEncoder:
    """Half the RGB encoder's widths and half its blocks per stage (rounded up), projected (no neck)."""
    return EfficientViTEncoder(config, [max(8, w // 2) for w in config.width_list],
                               [(d + 1) // 2 for d in config.depth_list], "efficientvit-half")


@register_depth_encoder("efficientvit-quarter")
def efficientvit_quarter(config: SamConfig) -> DepthEncoder:
    """A quarter of the RGB encoder's widths (at least 8) and one block per stage, projected (no
    neck): on L0 at 512 px, 1.2 GMACs against the RGB encoder's 34.8."""
    return EfficientViTEncoder(config, [max(8, w // 4) for w in config.width_list], [1] * len(config.depth_list),
                               "efficientvit-quarter")
