"""What one training step computes: the model's outputs over the interactive rounds of prompts,
and the recipe's loss on them (see :mod:`fusionlab.train` for the recipe and the loop).

For each image, up to ``masks_per_image`` masks are prompted by their boxes or by random
positive points; the low-res logits are upsampled to the encoder-input frame and scored with
``bce_weight``·BCE + ``dice_weight``·dice, only the best output of a multimask prompt getting
gradient, plus ``iou_weight`` times the IoU head's MSE. With ``interactive_rounds`` the decoder
runs again per round with one correction click more per mask (:func:`predict_rounds`).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from fusionlab.config import TrainSection
from fusionlab.data.training import Targets
from fusionlab.models import EfficientViTSam


# ------------------------------------------------------------------------------ loss
def mask_losses(logits: torch.Tensor, masks: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-mask BCE, dice and the IoU each output actually reaches.

    Args:
        logits: ``(N, M, h, w)`` low-res logits covering the whole padded frame.
        masks: ``(N, S, S)`` bool targets in the encoder-input frame.
    Returns:
        ``bce (N, M)`` (mean over pixels), ``dice (N, M)`` (``1 - (2|p·t| + 1) / (|p| + |t| + 1)``)
        and ``iou (N, M)`` of the thresholded output (no gradient: the IoU head's target).
    """
    logits = F.interpolate(logits.float(), size=masks.shape[-2:], mode="bilinear", align_corners=False)
    targets = masks[:, None].float().expand_as(logits)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").flatten(2).mean(-1)
    probs, targets = logits.sigmoid().flatten(2), targets.flatten(2)
    dice = 1.0 - (2.0 * (probs * targets).sum(-1) + 1.0) / (probs.sum(-1) + targets.sum(-1) + 1.0)
    with torch.no_grad():
        hard = (logits.flatten(2) > 0).float()
        intersection = (hard * targets).sum(-1)
        iou = intersection / ((hard + targets).clamp(max=1).sum(-1)).clamp(min=1)
    return bce, dice, iou


def batch_loss(outputs: List[Tuple[torch.Tensor, torch.Tensor]], targets: List[Targets],
               train: TrainSection) -> Dict[str, torch.Tensor]:
    """The recipe's loss over every mask of the batch: for each prompt, the output with the
    lowest weighted mask loss; the mean over prompts; plus, as SAM trains its IoU head,
    ``iou_weight`` times the MSE between every output's predicted IoU and the IoU it reaches.
    Returns ``loss``, ``bce``, ``dice`` and ``iou_mse`` (scalars)."""
    parts = [mask_losses(logits, t.masks) for (logits, _), t in zip(outputs, targets)]
    bce, dice, iou = (torch.cat(items) for items in zip(*parts))
    iou_pred = torch.cat([pred.float() for _, pred in outputs])
    total = train.bce_weight * bce + train.dice_weight * dice
    best = total.argmin(dim=1, keepdim=True)
    iou_mse = F.mse_loss(iou_pred, iou)
    return {"loss": total.gather(1, best).mean() + train.iou_weight * iou_mse,
            "bce": bce.gather(1, best).mean().detach(), "dice": dice.gather(1, best).mean().detach(),
            "iou_mse": iou_mse.detach()}


def rounds_loss(rounds: List[List[Tuple[torch.Tensor, torch.Tensor]]], targets: List[Targets],
                train: TrainSection) -> Dict[str, torch.Tensor]:
    """:func:`batch_loss` of every round of :func:`predict_rounds`, averaged over the rounds
    (a mean, not a sum, so that the loss and the learning rate keep their scale with more rounds)."""
    losses = [batch_loss(outputs, targets, train) for outputs in rounds]
    return {name: sum(loss[name] for loss in losses) / len(losses) for name in losses[0]}


# ------------------------------------------------------------------------------ interactive rounds
def predict_rounds(model: EfficientViTSam, images: torch.Tensor, depths: Optional[torch.Tensor],
                   targets: List[Targets], multimask: bool, train: TrainSection, device: torch.device,
                   clicks: Optional[torch.Generator]) -> List[List[Tuple[torch.Tensor, torch.Tensor]]]:
    """The model's outputs for each image's first prompt, then for ``train.interactive_rounds`` more
    rounds, the images encoded once.

    Each round adds to every mask's prompt one correction click (:func:`correction_click`) on the
    output of the round before with the highest predicted IoU, and, with
    ``interactive_mask_input``, that output's low-res logits as ``mask_input``. Every round decodes
    with the step's ``multimask`` choice, as the click evaluation decodes every click with
    multimask output. Clicks and mask inputs carry no gradient, as in SAM.
    Returns: per round, B tuples ``(low-res logits (N, M, h, w), IoU predictions (N, M))``.
    """
    embeddings = model.encode(images, depths)
    prompts = [t.prompt(device) for t in targets]
    rounds = []
    for _ in range(1 + train.interactive_rounds):
        if rounds:
            with torch.no_grad():
                prompts = [next_prompt(prompt, outputs, target, model.image_size[0], train, clicks)
                           for prompt, outputs, target in zip(prompts, rounds[-1], targets)]
        rounds.append([model.decode(embeddings[i:i + 1], points=p.get("points"), boxes=p.get("boxes"),
                                    mask_input=p.get("mask_input"), multimask_output=multimask)
                       for i, p in enumerate(prompts)])
    return rounds


class Rounds(nn.Module):
    """:func:`predict_rounds` of ``model`` as a module's forward: the step's forward pass, which
    DistributedDataParallel must see to reduce the gradients (see :meth:`World.wrap`)."""

    def __init__(self, model: EfficientViTSam):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, depths: Optional[torch.Tensor], targets: List[Targets],
                multimask: bool, train: TrainSection, device: torch.device,
                clicks: Optional[torch.Generator]) -> List[List[Tuple[torch.Tensor, torch.Tensor]]]:
        return predict_rounds(self.model, images, depths, targets, multimask, train, device, clicks)


def next_prompt(prompt: dict, outputs: Tuple[torch.Tensor, torch.Tensor], target: Targets, prompt_frame: int,
                train: TrainSection, clicks: torch.Generator) -> dict:
    """One image's prompt for the next round: a correction click per mask appended to its points
    (a box prompt gains points) and, with ``interactive_mask_input``, the chosen low-res logits."""
    logits, iou_pred = outputs
    chosen = logits[torch.arange(len(logits), device=logits.device), iou_pred.argmax(dim=1)][:, None]
    coords, labels = correction_click(chosen, target, prompt_frame, clicks)
    if "points" in prompt:
        coords = torch.cat([prompt["points"][0], coords], dim=1)
        labels = torch.cat([prompt["points"][1], labels], dim=1)
    extra = {"mask_input": chosen} if train.interactive_mask_input else {}
    return {**prompt, "points": (coords, labels), **extra}


def correction_click(low_res: torch.Tensor, target: Targets, prompt_frame: int, clicks: torch.Generator
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """One click per mask, drawn uniformly from the error region of a prediction (SAM's recipe).

    Args:
        low_res: ``(N, 1, h, w)`` logits of the prediction.
        target: the image's ``masks (N, S, S)`` and ``input_size``; the padding holds no clicks.
        prompt_frame: side of the prompt frame (``image_size[0]``).
        clicks: the generator that draws the clicks, on ``low_res``'s device.
    Returns:
        ``coords (N, 1, 2)`` xy in the prompt frame and ``labels (N, 1)``: 1 on a pixel of the
        object the prediction missed, 0 on a pixel it covers wrongly, -1 (a point the prompt
        encoder ignores) where the prediction has no error.
    """
    masks = target.masks
    size = masks.shape[-1]
    predicted = F.interpolate(low_res.float(), size=(size, size), mode="bilinear", align_corners=False)[:, 0] > 0
    errors = predicted != masks
    errors[:, target.input_size[0]:] = False
    errors[:, :, target.input_size[1]:] = False
    # the arg-max of i.i.d. uniform scores over the error pixels is a uniform draw among them
    scores = torch.rand(errors.shape, generator=clicks, device=errors.device).masked_fill_(~errors, -1.0)
    pick = scores.flatten(1).argmax(dim=1)
    labels = masks.flatten(1).gather(1, pick[:, None]).int()
    labels = torch.where(errors.flatten(1).any(dim=1, keepdim=True), labels, -1)  # no mask indexing: no sync
    coords = torch.stack([pick % size, pick // size], dim=1).float() * (prompt_frame / size)
    return coords[:, None], labels
