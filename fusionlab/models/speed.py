"""Training throughput options: channels-last memory format and ``torch.compile`` of the encoders.

Both leave the weights and their state-dict keys as they are, so checkpoints save and load as
without them. Compilation is in place (``nn.Module.compile``) on the modules that hold nearly all
of a step's multiply-accumulates: the RGB backbone and neck, and the depth encoder. SAM's prompt
encoder and mask decoder stay eager: they run once per image on a varying number of prompts, and
each new count would compile again.
"""
from __future__ import annotations

from typing import List

import torch
from torch import nn

from fusionlab.models.sam import EfficientViTSam


def apply_speed_options(model: EfficientViTSam, channels_last: bool, compiled: bool) -> None:
    """Put ``model``'s 4-D weights in channels-last layout and/or compile its encoders, in place.

    With channels-last weights, convolutions return channels-last activations, so the
    ``(B, C, S, S)`` inputs need no conversion. Compilation happens at the first forward.
    """
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compiled:
        for module in encoder_modules(model):
            module.compile()


def encoder_modules(model: EfficientViTSam) -> List[nn.Module]:
    """The modules :func:`apply_speed_options` compiles: the RGB backbone and neck, and the depth
    encoder when the model has one."""
    modules = [model.image_encoder.backbone, model.image_encoder.neck]
    if model.depth_encoder is not None:
        modules.append(model.depth_encoder)
    return modules
