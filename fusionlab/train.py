"""The training loop: the official EfficientViT-SAM recipe on an (RGB-D) EfficientViT-SAM.

One step: B images (and depth maps) are encoded once; for each image, up to
``masks_per_image`` of its ground-truth masks are prompted either by their boxes or by 1…P
random positive points inside each mask (P drawn per image); the low-res mask logits are
upsampled to the encoder-input frame and scored against the masks put in that frame
(resized like the image, padded) with ``bce_weight``·BCE + ``dice_weight``·dice. With
multimask output only the best of the masks (lowest loss) of each prompt gets gradient.
AdamW (no weight decay on 1-D parameters: norms, biases, fusion α), cosine schedule after
a linear warmup, gradient-norm clipping.

A run folder holds ``config.yaml``, ``train_log.csv``, ``checkpoint.safetensors`` and, written
last, ``train_done.json``: a folder without it is not a complete run.
"""
from __future__ import annotations

import contextlib
import csv
import itertools
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from tqdm import tqdm

from fusionlab.atomic import atomic_write_text
from fusionlab.config import RunConfig, TrainSection, resolve_device
from fusionlab.data import build_dataset
from fusionlab.data.prompts import box_from_instance, sample_points
from fusionlab.data.types import Sample
from fusionlab.depth import build_depth_source
from fusionlab.depth.base import DepthSource
from fusionlab.errors import FusionlabError
from fusionlab.models import EfficientViTSam, save_checkpoint
from fusionlab.models.sam import preprocess_depth, preprocess_image, resized_shape

log = logging.getLogger("fusionlab.train")

PARTS = ("rgb_encoder", "depth_encoder", "fusion", "neck", "prompt_encoder", "decoder")
PRECISIONS = ("auto", "fp32", "bf16")
DONE_FILE = "train_done.json"


class TrainingDiverged(FusionlabError):
    """The loss became NaN or infinite; the message names the step."""


@dataclass
class TrainResult:
    """What :func:`train` hands back.

    Attributes:
        model: the trained model (on the training device).
        steps: optimiser steps taken.
        final_loss: the last step's loss.
        wall_s: seconds from the first step to the end of training.
        checkpoint: the saved weights, or None when ``save_checkpoint`` is off.
    """

    model: EfficientViTSam
    steps: int
    final_loss: float
    wall_s: float
    checkpoint: Optional[Path]


# ------------------------------------------------------------------------------ model
def build_run_model(config: RunConfig) -> EfficientViTSam:
    """The model of ``config.model``, with its checkpoint loaded (see :meth:`ModelSection.build`)."""
    return config.model.build()


def part_modules(model: EfficientViTSam, part: str) -> List[nn.Module]:
    """The modules of one trainable part (see :data:`PARTS`); empty when the model lacks it.

    ``neck`` covers both encoders' necks and the LayerNorm2d after each.
    """
    encoders = [e for e in (model.image_encoder, model.depth_encoder) if e is not None]
    if part == "rgb_encoder":
        return [model.image_encoder.backbone]
    if part == "depth_encoder":
        return [model.depth_encoder.backbone] if model.depth_encoder is not None else []
    if part == "neck":
        return [getattr(e, name) for e in encoders for name in ("neck", "norm") if hasattr(e, name)]
    if part == "fusion":
        return [model.fusions]
    if part == "prompt_encoder":
        return [model.prompt_encoder]
    if part == "decoder":
        return [model.mask_decoder]
    raise ValueError(f"unknown part {part!r}")


def check_parts(names: Sequence[str], where: Callable[[int, str], str]) -> None:
    """Raise a one-line error for a name that is not one of :data:`PARTS`."""
    for i, name in enumerate(names):
        if name not in PARTS:
            raise FusionlabError(f"{where(i, name)}: unknown part {name!r}; allowed: {', '.join(PARTS)}")


def check_train_section(train: TrainSection) -> None:
    """One-line errors for option values the loop cannot run with."""
    check_parts(train.freeze, lambda i, _: f"train.freeze[{i}]")
    check_parts(list(train.lr_multipliers), lambda _, name: f"train.lr_multipliers.{name}")
    for name, value in train.lr_multipliers.items():
        if not value >= 0:
            raise FusionlabError(f"train.lr_multipliers.{name}: {value} must be >= 0")
    for name in ("epochs", "batch_size", "masks_per_image", "max_points", "log_every"):
        if getattr(train, name) < 1:
            raise FusionlabError(f"train.{name}: {getattr(train, name)} must be >= 1")
    for name in ("box_prob", "multimask_prob"):
        if not 0.0 <= getattr(train, name) <= 1.0:
            raise FusionlabError(f"train.{name}: {getattr(train, name)} must be in [0, 1]")
    if len(train.betas) != 2:
        raise FusionlabError(f"train.betas: {train.betas} must be two numbers")
    if train.precision not in PRECISIONS:
        raise FusionlabError(f"train.precision: {train.precision!r} is not one of {', '.join(PRECISIONS)}")
    if train.max_steps is not None and train.max_steps < 1:
        raise FusionlabError(f"train.max_steps: {train.max_steps} must be >= 1 or null")


def param_groups(model: EfficientViTSam, train: TrainSection) -> List[dict]:
    """AdamW groups per (part, decay): frozen parts left out (and ``requires_grad`` off),
    ``lr × lr_multipliers[part]``, weight decay only on parameters of 2 or more dimensions."""
    groups, seen = [], set()
    for part in PARTS:
        params = [p for module in part_modules(model, part) for p in module.parameters()]
        seen.update(id(p) for p in params)
        if part in train.freeze:
            for p in params:
                p.requires_grad_(False)
            continue
        lr = train.lr * train.lr_multipliers.get(part, 1.0)
        decayed = [p for p in params if p.ndim >= 2]
        plain = [p for p in params if p.ndim < 2]
        groups += [{"params": ps, "lr": lr, "weight_decay": wd, "part": part}
                   for ps, wd in ((decayed, train.weight_decay), (plain, 0.0)) if ps]
    orphans = [name for name, p in model.named_parameters() if id(p) not in seen]
    if orphans:  # a new submodule must be given a part, or it would silently never train
        raise RuntimeError(f"parameters outside every training part: {orphans[:3]}")
    return groups


def set_train_mode(model: EfficientViTSam, frozen: Sequence[str]) -> None:
    """Train mode, except frozen parts, whose BatchNorm statistics must not move either."""
    model.train()
    for part in frozen:
        for module in part_modules(model, part):
            module.eval()


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Schedule multiplier of step ``step`` (0-based): linear warmup, then cosine to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


# ------------------------------------------------------------------------------ data
class InputFrame:
    """The model's input frames, detached from the model (DataLoader workers must not touch a
    model whose buffers may live on the GPU): images and depth as :func:`preprocess_image` and
    :func:`preprocess_depth` make them, masks into the same frame, prompts into the prompt frame."""

    def __init__(self, image_size: Tuple[int, int]):
        self.image_size = tuple(image_size)

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        return preprocess_image(image, self.image_size[1])

    def preprocess_depth(self, depth: np.ndarray, image_shape: Tuple[int, int]) -> torch.Tensor:
        return preprocess_depth(depth, self.image_size[1], image_shape)

    def masks(self, masks: np.ndarray) -> torch.Tensor:
        """``(K, H, W)`` bool → ``(K, S, S)`` bool in the encoder-input frame: resized like the
        image (bilinear, antialiased when shrinking), thresholded at 0.5, padded with False."""
        size = self.image_size[1]
        height, width = masks.shape[1:]
        tensor = torch.from_numpy(masks).float()[:, None]
        if max(height, width) != size:
            new_h, new_w = resized_shape(height, width, size)
            tensor = F.interpolate(tensor, size=(new_h, new_w), mode="bilinear", align_corners=False,
                                   antialias=max(height, width) > size)
        tensor = tensor[:, 0] >= 0.5
        return F.pad(tensor, (0, size - tensor.shape[2], 0, size - tensor.shape[1]))

    def prompt_scale(self, height: int, width: int) -> np.ndarray:
        """``(2,)`` factors taking original ``(x, y)`` pixels to the prompt frame (as the predictor does)."""
        new_h, new_w = resized_shape(height, width, self.image_size[0])
        return np.array([new_w / width, new_h / height], dtype=np.float32)


@dataclass
class Targets:
    """One image's sampled masks and their prompts.

    Attributes:
        masks: ``(K, S, S)`` bool in the encoder-input frame.
        boxes: ``(K, 4)`` xyxy in the prompt frame, or None when prompted by points.
        points: ``(K, P, 2)`` xy in the prompt frame, or None when prompted by boxes.
    """

    masks: torch.Tensor
    boxes: Optional[torch.Tensor]
    points: Optional[torch.Tensor]

    def prompt(self, device: torch.device) -> dict:
        """The prompt dict :meth:`EfficientViTSam.forward` takes (all points are positive)."""
        if self.boxes is not None:
            return {"boxes": self.boxes.to(device)}
        coords = self.points.to(device)
        return {"points": (coords, torch.ones(coords.shape[:2], dtype=torch.int, device=device))}


class PromptedImages(torch.utils.data.Dataset):
    """Training items: a dataset's images preprocessed, with sampled masks and prompts.

    Each item's draws come from a generator seeded by ``(seed, epoch, index)``, so they are
    the same whatever ``num_workers`` is. Call :meth:`set_epoch` before each epoch.
    """

    def __init__(self, dataset, frame: InputFrame, train: TrainSection, depth_source: Optional[DepthSource]):
        self.dataset = dataset
        self.frame = frame
        self.train = train
        self.depth_source = depth_source
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, Optional[torch.Tensor], Targets]:
        """``(image (3, S, S), depth (1, S, S) or None, targets)``."""
        rng = np.random.default_rng([self.train.seed, self.epoch, index])
        sample: Sample = self.dataset[index]
        image = self.frame.preprocess(sample.image)
        depth = None
        if self.depth_source is not None:
            depth = self.frame.preprocess_depth(self.depth_source(sample, index), sample.image.shape[:2])
        return image, depth, self.targets(sample, rng)

    def targets(self, sample: Sample, rng: np.random.Generator) -> Targets:
        instances = [inst for inst in sample.instances if inst.mask.any()]
        if len(instances) > self.train.masks_per_image:
            keep = np.sort(rng.choice(len(instances), size=self.train.masks_per_image, replace=False))
            instances = [instances[k] for k in keep]
        height, width = sample.image.shape[:2]
        if not instances:
            size = self.frame.image_size[1]
            return Targets(torch.zeros((0, size, size), dtype=torch.bool), torch.zeros((0, 4)), None)
        masks = self.frame.masks(np.stack([inst.mask for inst in instances]))
        scale = self.frame.prompt_scale(height, width)
        if rng.random() < self.train.box_prob:
            boxes = np.stack([box_from_instance(inst) for inst in instances]) * np.tile(scale, 2)
            return Targets(masks, torch.from_numpy(boxes), None)
        count = int(rng.integers(1, self.train.max_points + 1))
        points = np.stack([sample_points(inst.mask, count, rng) for inst in instances]) * scale
        return Targets(masks, None, torch.from_numpy(points))


def collate(items: List[Tuple[torch.Tensor, Optional[torch.Tensor], Targets]]
            ) -> Tuple[torch.Tensor, Optional[torch.Tensor], List[Targets]]:
    """Items → ``(images (B, 3, S, S), depths (B, 1, S, S) or None, B targets)``."""
    images = torch.stack([item[0] for item in items])
    depths = torch.stack([item[1] for item in items]) if items[0][1] is not None else None
    return images, depths, [item[2] for item in items]


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
    parts = [mask_losses(logits, t.masks.to(logits.device)) for (logits, _), t in zip(outputs, targets)]
    bce, dice, iou = (torch.cat(items) for items in zip(*parts))
    iou_pred = torch.cat([pred.float() for _, pred in outputs])
    total = train.bce_weight * bce + train.dice_weight * dice
    best = total.argmin(dim=1, keepdim=True)
    iou_mse = F.mse_loss(iou_pred, iou)
    return {"loss": total.gather(1, best).mean() + train.iou_weight * iou_mse,
            "bce": bce.gather(1, best).mean().detach(), "dice": dice.gather(1, best).mean().detach(),
            "iou_mse": iou_mse.detach()}


# ------------------------------------------------------------------------------ loop
def autocast(device: torch.device, precision: str):
    """bf16 autocast for ``bf16`` (``auto`` on CUDA), nothing for ``fp32`` (``auto`` elsewhere)."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class StepLog:
    """``train_log.csv``: one row per logged step, flushed at once so a crash keeps it."""

    FIELDS = ("step", "epoch", "loss", "bce", "dice", "iou_mse", "lr", "seconds")

    def __init__(self, path: Path):
        self.handle = open(path, "w", newline="")
        self.writer = csv.writer(self.handle)
        self.writer.writerow(self.FIELDS)

    def write(self, **row: float) -> None:
        self.writer.writerow([row[name] for name in self.FIELDS])
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def make_loader(config: RunConfig, model: EfficientViTSam, device: torch.device, progress: bool
                ) -> Tuple[PromptedImages, torch.utils.data.DataLoader]:
    """The training split, its depth source (RGB-D models only) and the shuffling loader."""
    train = config.train
    dataset = build_dataset(config.data.dataset, **config.data.train)
    if len(dataset) == 0:
        raise FusionlabError(f"data.train: dataset {config.data.dataset!r} with options {config.data.train} "
                             "has no images")
    depth_source = None
    if model.has_depth:
        depth_source = build_depth_source(config.depth.source, **config.depth.options)
        counts = depth_source.prepare(dataset, progress=progress)
        log.info("depth source %s ready: %s", depth_source.describe(), counts)
    items = PromptedImages(dataset, InputFrame(model.image_size), train, depth_source)
    loader = torch.utils.data.DataLoader(
        items, batch_size=train.batch_size, shuffle=True, num_workers=train.num_workers, collate_fn=collate,
        generator=torch.Generator().manual_seed(train.seed), drop_last=False, pin_memory=device.type == "cuda")
    return items, loader


def train(config: RunConfig, run_dir: Path, progress: bool = True,
          on_epoch_end: Optional[Callable[[int, EfficientViTSam], None]] = None) -> TrainResult:
    """Train the model of ``config`` and write the run folder ``run_dir``.

    Args:
        config: the run (its ``train`` section holds the recipe's options).
        run_dir: created if needed; files: ``config.yaml``, ``train_log.csv`` (columns
            step, epoch, loss, bce, dice, iou_mse, lr, seconds since the first step),
            ``checkpoint.safetensors`` and, last, ``train_done.json``.
        progress: show tqdm bars.
        on_epoch_end: called as ``(epoch, model)`` after every epoch that ran (also one cut
            short by ``max_steps``); what it raises (e.g. ``optuna.TrialPruned``) propagates.
    Raises:
        TrainingDiverged: the loss became NaN or infinite.
    """
    train_cfg = config.train
    check_train_section(train_cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / DONE_FILE).unlink(missing_ok=True)  # a rerun must not look complete until it is
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))

    torch.manual_seed(train_cfg.seed)
    device = resolve_device(train_cfg.device, "train.device")
    model = build_run_model(config)
    items, loader = make_loader(config, model, device, progress)
    model.to(device)
    groups = param_groups(model, train_cfg)
    if not groups:
        raise FusionlabError(f"train.freeze: {train_cfg.freeze} freezes every part of this model; nothing to train")
    optimizer = torch.optim.AdamW(groups, lr=train_cfg.lr, betas=tuple(train_cfg.betas))
    total = train_cfg.epochs * len(loader)
    if train_cfg.max_steps is not None:
        total = min(total, train_cfg.max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total, train_cfg.warmup_steps))
    trainable = sum(p.numel() for g in groups for p in g["params"])
    log.info("training %s on %d images of %s (%s depth) for %d steps (%d epochs of %d) on %s; "
             "%.2f M parameters, %.2f M trainable", config.model.preset, len(items), config.data.dataset,
             config.depth.source if model.has_depth else "no", total, train_cfg.epochs, len(loader), device,
             sum(p.numel() for p in model.parameters()) / 1e6, trainable / 1e6)

    step_rng = np.random.default_rng([train_cfg.seed, 1])  # multimask draws, one per step
    step_log = StepLog(run_dir / "train_log.csv")
    bar = tqdm(total=total, desc="train", unit="step", disable=not progress, dynamic_ncols=True)
    step, images_seen, loss_value, start = 0, 0, float("nan"), time.perf_counter()
    try:
        for epoch in range(train_cfg.epochs):
            if step >= total:
                break
            items.set_epoch(epoch)
            set_train_mode(model, train_cfg.freeze)
            for images, depths, targets in itertools.islice(loader, total - step):  # max_steps may stop mid-epoch
                multimask = bool(step_rng.random() < train_cfg.multimask_prob)
                losses = train_step(model, optimizer, images, depths, targets, multimask, train_cfg, device)
                loss_value = losses["loss"]
                if not math.isfinite(loss_value):
                    raise TrainingDiverged(
                        f"training diverged at step {step + 1} (epoch {epoch}): loss is {loss_value}; "
                        f"try a lower train.lr (now {train_cfg.lr}) or train.grad_clip")
                lr = train_cfg.lr * lr_factor(step, total, train_cfg.warmup_steps)
                scheduler.step()
                step += 1
                if step % train_cfg.log_every == 0 or step == total:
                    step_log.write(step=step, epoch=epoch, lr=lr, seconds=round(time.perf_counter() - start, 4),
                                   **losses)
                images_seen += len(targets)
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.4f}", img_s=f"{images_seen / (time.perf_counter() - start):.1f}")
            if on_epoch_end is not None:
                on_epoch_end(epoch, model)
    finally:
        bar.close()
        step_log.close()
    wall_s = time.perf_counter() - start
    checkpoint = save_checkpoint(model, run_dir / "checkpoint.safetensors") if train_cfg.save_checkpoint else None
    atomic_write_text(run_dir / DONE_FILE, json.dumps(
        {"steps": step, "final_loss": loss_value, "wall_s": round(wall_s, 3)}, indent=2))
    log.info("trained %d steps in %.1f s; final loss %.4f", step, wall_s, loss_value)
    return TrainResult(model=model, steps=step, final_loss=loss_value, wall_s=wall_s, checkpoint=checkpoint)


def train_step(model: EfficientViTSam, optimizer: torch.optim.Optimizer, images: torch.Tensor,
               depths: Optional[torch.Tensor], targets: List[Targets], multimask: bool, train: TrainSection,
               device: torch.device) -> Dict[str, float]:
    """One optimiser step on a batch; returns the step's ``loss``, ``bce`` and ``dice``.

    Images without any mask are left out of the forward: they would carry no loss. A
    batch with no mask at all takes no step and reports zeros.
    """
    keep = [i for i, t in enumerate(targets) if t.masks.shape[0]]
    if not keep:
        return {"loss": 0.0, "bce": 0.0, "dice": 0.0, "iou_mse": 0.0}
    targets = [targets[i] for i in keep]
    images = images[keep].to(device, non_blocking=True)
    depths = depths[keep].to(device, non_blocking=True) if depths is not None else None
    with autocast(device, train.precision):
        outputs = model(images, depths, [t.prompt(device) for t in targets], multimask_output=multimask)
    losses = batch_loss(outputs, targets, train)
    loss_value = losses["loss"].item()
    if not math.isfinite(loss_value):
        return {"loss": loss_value, "bce": float("nan"), "dice": float("nan"), "iou_mse": float("nan")}
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    if train.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], train.grad_clip)
    optimizer.step()
    return {name: value.item() for name, value in losses.items()}
