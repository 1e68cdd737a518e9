"""Depth encoders from timm's backbone zoo: ``depth_encoder: timm:<model_name>``.

Any timm model that supports ``features_only=True`` serves: the features whose strides match
the fusion points (timm's ``feature_info``) are projected to the RGB channels (see
:class:`~fusionlab.models.depth_encoders.Projection`). With ``depth_input: stem1`` timm builds
a one-channel stem (adapting pretrained weights by summing over colours); with ``replicate``
the depth map enters as three channels normalised as an RGB image.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Union

import torch

from fusionlab.errors import FusionlabError
from fusionlab.models.config import SamConfig
from fusionlab.typecheck import InputPath
from fusionlab.models.depth_encoders import (DepthEncoder, Projection, check_servable, fusion_targets,
                                             register_depth_encoder)
from fusionlab.models.image_encoder import ImageEncoder

log = logging.getLogger("fusionlab.models")


class TimmEncoder(DepthEncoder):
    """A timm backbone (``features_only``, truncated after the last stage a fusion point needs), projected.

    Args:
        config: the model's architecture.
        model_name: a timm model name (``timm.list_models()``).
        pretrained: False (random initialisation), True (timm's weights: its cache or the hub), or a
            local weights file (``.safetensors`` / ``.pth``, a timm state dict of that model).
    """

    keeps_norm_eps = True  # timm's norms keep the epsilon their weights were trained with

    def __init__(self, config: SamConfig, model_name: str, pretrained: Union[bool, InputPath] = False):
        import timm

        super().__init__(1 if config.depth_input == "stem1" else 3)
        name = f"timm:{model_name}"
        if not timm.is_model(model_name):
            raise FusionlabError(f"depth encoder {name!r}: timm has no model {model_name!r}; see "
                                 "timm.list_models('<pattern>'), e.g. resnet18, mobilenetv3_small_100")
        if isinstance(pretrained, str) and not Path(pretrained).is_file():
            raise FusionlabError(f"depth encoder {name!r}: pretrained weights file {pretrained} does not exist")
        with torch.device("meta"):
            probe = _create(model_name, self.in_channels, False, None)
        available = dict(zip(probe.feature_info.reduction(), probe.feature_info.channels()))
        check_servable(available, config, name)
        strides = {s for t in fusion_targets(config) for s in t.strides if s in available}
        indices = [i for i, s in enumerate(probe.feature_info.reduction()) if s in strides]
        on_meta = torch.empty(()).device.type == "meta"  # counting GMACs: no weights to read
        self.body = _create(model_name, self.in_channels, False if on_meta else pretrained, indices)
        self.strides: List[int] = list(self.body.feature_info.reduction())
        self.projection = Projection(dict(zip(self.strides, self.body.feature_info.channels())), config, name)
        if not on_meta:
            log.info("%s: %s", name, "random initialisation (pretrained: false)" if pretrained is False
                     else f"pretrained weights from {'timm' if pretrained is True else pretrained}")

    def forward(self, depth_input: torch.Tensor, rgb_encoder: ImageEncoder) -> Dict[str, torch.Tensor]:
        return self.projection(dict(zip(self.strides, self.body(depth_input))))


def _create(model_name: str, in_chans: int, pretrained: Union[bool, str], indices):
    import timm

    kwargs = {"features_only": True, "in_chans": in_chans}
    if indices is not None:
        kwargs["out_indices"] = tuple(indices)
    if isinstance(pretrained, str):
        kwargs["pretrained_cfg_overlay"] = {"file": str(pretrained)}
    try:
        return timm.create_model(model_name, pretrained=bool(pretrained), **kwargs)
    except (RuntimeError, OSError, ValueError) as exc:  # no features_only support, a hub miss, a bad file
        if "features_only" in str(exc) or "feature" in type(exc).__name__.lower():
            raise FusionlabError(f"depth encoder 'timm:{model_name}': timm cannot give this model's features "
                                 f"(features_only): {exc}") from None
        if pretrained is True:
            raise FusionlabError(f"depth encoder 'timm:{model_name}': cannot get timm's pretrained weights "
                                 f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); offline, download them "
                                 "where you have access and set pretrained: <file>, or pretrained: false for "
                                 "random initialisation") from None
        raise FusionlabError(f"depth encoder 'timm:{model_name}': cannot build it with pretrained={pretrained!r}: "
                             f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None


@register_depth_encoder("timm")
def timm_encoder(config: SamConfig, model_name: str, pretrained: Union[bool, InputPath] = False) -> DepthEncoder:
    """A timm backbone (written ``timm:<model_name>``, e.g. ``timm:resnet18``) whose features at the
    fusion points' strides are projected by a 1×1 convolution (+ BatchNorm) to the RGB channels and
    resampled to the fusion grid. ``pretrained``: false (random init), true (timm's weights; needs
    its cache or the hub) or a local weights file."""
    return TimmEncoder(config, model_name, pretrained)


timm_encoder.suffix_option = "model_name"
