"""The training loop: the official EfficientViT-SAM recipe on an (RGB-D) EfficientViT-SAM.

One step (:func:`train_step`) takes B images (and depth maps), encodes them once and scores the
decoder's masks for up to ``masks_per_image`` prompted masks per image (the forward and the loss:
:mod:`fusionlab.rounds`). AdamW (no weight decay on 1-D parameters: norms, biases, fusion α),
cosine schedule after a linear warmup, gradient-norm clipping.

A run folder holds ``config.yaml``, ``train_log.csv``, ``checkpoint.safetensors`` and, written
last, ``train_done.json``: a folder without it is not a complete run. Everything a run reads
(options, device, checkpoint, dataset) is checked before the folder is created or touched.
While it trains, the folder also holds resume points (``resume/``, every ``train.resume_every``
minutes; see :mod:`fusionlab.resume`): training into a folder that has one continues from it,
exactly as if it had never stopped. :func:`request_stop` (or Ctrl-C) stops the loop at the next
step with a resume point.

Under torchrun one run trains on K processes with ``batch_size`` as the global batch, as one
process would (see :mod:`fusionlab.distributed`); rank 0 writes the run folder.
"""
from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import logging
import math
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import yaml
from torch import nn
from tqdm import tqdm

from fusionlab.atomic import atomic_write_text
from fusionlab.config import COMPILE_WITH_PROCESSES, RunConfig, TrainSection, resolve_device, validate
from fusionlab.data import build_dataset
from fusionlab.data.training import (EpochBatches, InputFrame, PromptedImages, Targets, collate,
                                     leave_interrupts_to_the_loop)
from fusionlab.depth import build_depth_source
from fusionlab.depth.precompute import prepare_for_run
from fusionlab.distributed import SINGLE, RankBatches, World, join, rank_seed
from fusionlab.errors import FusionlabError
from fusionlab.loggers import open_run_loggers
from fusionlab.models import EfficientViTSam, save_checkpoint
from fusionlab.models.parts import PARTS, part_modules
from fusionlab.models.speed import apply_speed_options
from fusionlab.precision import autocast, describe_precision, set_deterministic
from fusionlab.resume import Point, Progress, ResumePoints, run_key
from fusionlab.rounds import Rounds, rounds_loss

log = logging.getLogger("fusionlab.train")

DONE_FILE = "train_done.json"


class TrainingDiverged(FusionlabError):
    """The loss became NaN or infinite; the message names the step."""


class StopRequested(Exception):
    """The training loop stopped on request (:func:`request_stop`, Ctrl-C) at a step boundary.

    Not a :class:`FusionlabError`: nothing is wrong with the run, which continues from its resume
    point when trained again into the same folder (a sweep hands its cell back, see
    :mod:`fusionlab.sweep.cell`).

    Attributes:
        step: the optimiser steps taken.
        resume_point: the JSON file of the resume point the run continues from; None when it
            stopped before its first step with no point to continue from.
    """

    def __init__(self, step: int, resume_point: Optional[Path]):
        super().__init__(f"stopped on request at step {step}" +
                         (f"; resume point {resume_point}" if resume_point else "; no resume point"))
        self.step = step
        self.resume_point = resume_point


class _Stop:
    """The pending stop request of this process (one training loop runs at a time)."""

    requested = False


def request_stop() -> None:
    """Make the running training loop write a resume point at the next step boundary and raise
    :class:`StopRequested`; safe to call from a signal handler. A request made while no loop runs
    waits for the next loop (which stops before its first step) or :func:`stop_requested`'s reader.

    A second call while the first is pending stops at once: it raises ``KeyboardInterrupt`` (from a
    signal handler: in the main thread, wherever it is).
    """
    if _Stop.requested:
        raise KeyboardInterrupt("stop requested twice: stopping at once, without a resume point")
    _Stop.requested = True


def stop_requested() -> bool:
    """Whether a stop was requested and not yet answered by a loop."""
    return _Stop.requested


def clear_stop() -> None:
    """Forget a pending stop request."""
    _Stop.requested = False


@contextlib.contextmanager
def stop_on_interrupt():
    """While the block runs, Ctrl-C (SIGINT) is :func:`request_stop`: the first stops the loop at the
    next step with a resume point, a second stops at once. Only in the main thread, where Python
    delivers signals; elsewhere the block runs with the handlers as they are.

    Under torchrun each process runs in a session of its own: a terminal's Ctrl-C reaches torchrun
    alone, which passes one SIGINT on to each process.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupted(signum: int, frame: object) -> None:
        if not _Stop.requested:
            log.warning("Ctrl-C: stopping after this step with a resume point (Ctrl-C again to stop at once)")
        request_stop()

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass
class TrainResult:
    """What :func:`train` hands back.

    Attributes:
        model: the trained model (on the training device).
        steps: optimiser steps taken.
        final_loss: the last step's loss.
        wall_s: seconds from the first step to the end of training (of every session, for a
            resumed run).
        checkpoint: the saved weights, or None when ``save_checkpoint`` is off.
        resumed_from_step: the step of the resume point the run continued from; 0 when it
            started from scratch.
    """

    model: EfficientViTSam
    steps: int
    final_loss: float
    wall_s: float
    checkpoint: Optional[Path]
    resumed_from_step: int = 0


# ------------------------------------------------------------------------------ model
def build_run_model(config: RunConfig) -> EfficientViTSam:
    """The model of ``config.model``, with its checkpoint loaded (see :meth:`ModelSection.build`)."""
    return config.model.build()


def plan_steps(train: TrainSection, batches: int) -> Tuple[int, int]:
    """``(steps, epochs)``: the optimiser steps to take with ``batches`` per epoch, and the
    epochs they span (the last one cut short when the steps end inside it)."""
    if train.steps is not None:
        return train.steps, math.ceil(train.steps / batches)
    total = train.epochs * batches
    if train.max_steps is not None and train.max_steps > total:
        log.warning("train.max_steps: %d is only a cap; train.epochs: %d of %d batches gives %d steps, and only "
                    "these are trained (set train.steps: %d instead for exactly %d)",
                    train.max_steps, train.epochs, batches, total, train.max_steps, train.max_steps)
    if train.max_steps is not None:
        total = min(total, train.max_steps)
    return total, math.ceil(total / batches)


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


# ------------------------------------------------------------------------------ loop
class StepLog:
    """``train_log.csv``: one row per logged step, flushed at once so a crash keeps it.

    ``after``: the step a resumed run continues from: the rows up to it are kept, and the later
    ones, of steps the run takes again, dropped; None: a new log.
    """

    FIELDS = ("step", "epoch", "loss", "bce", "dice", "iou_mse", "lr", "seconds")

    def __init__(self, path: Path, after: Optional[int] = None):
        kept = self.rows_up_to(path, after) if after is not None else []
        text = io.StringIO()
        csv.writer(text).writerows([self.FIELDS, *kept])
        atomic_write_text(path, text.getvalue())
        self.handle = open(path, "a", newline="")
        self.writer = csv.writer(self.handle)

    @classmethod
    def rows_up_to(cls, path: Path, step: int) -> List[List[str]]:
        """The whole rows of an existing log up to ``step`` (a row cut by a kill is not whole)."""
        if not path.is_file():
            return []
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
        if not rows or tuple(rows[0]) != cls.FIELDS:
            return []
        return [row for row in rows[1:] if len(row) == len(cls.FIELDS) and row[0].isdigit() and int(row[0]) <= step]

    def write(self, **row: float) -> None:
        self.writer.writerow([row[name] for name in self.FIELDS])
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def make_loader(config: RunConfig, model: EfficientViTSam, device: torch.device, progress: bool,
                world: World = SINGLE) -> Tuple[PromptedImages, torch.utils.data.DataLoader]:
    """The training split, its depth source (RGB-D models only) and the shuffling loader; with
    several processes, this one's share of each batch (:class:`~fusionlab.distributed.RankBatches`).

    The loader's ``generator`` draws each epoch's order as the epoch starts, and its
    ``batch_sampler`` (:class:`~fusionlab.data.training.EpochBatches`) can start an epoch at any
    batch: a resumed run's position in the data order."""
    train = config.train
    options = config.data.train_options()
    depth_source = None
    with world.main_first():
        dataset = build_dataset(config.data.dataset, **options)
    if len(dataset) == 0:
        raise FusionlabError(f"data.train: dataset {config.data.dataset!r} with options {options} has no images")
    if model.has_depth:
        depth_source = build_depth_source(config.depth.source, **config.depth.options)
        counts = prepare_for_run(depth_source, dataset, device, world, progress=progress)
        log.info("depth source %s ready: %s", depth_source.describe(), counts)
    items = PromptedImages(dataset, InputFrame(model.image_size), train, depth_source)
    shuffle = torch.Generator().manual_seed(train.seed)
    # what DataLoader(shuffle=True) builds, made here to start an epoch at a batch; with several
    # processes every one draws the same batches from the same generator and takes its share
    batches = torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(items, generator=shuffle),
                                            train.batch_size, drop_last=False)
    if world.size > 1:
        batches = RankBatches(batches, world)
    return items, torch.utils.data.DataLoader(
        items, batch_sampler=EpochBatches(batches), num_workers=train.num_workers, collate_fn=collate,
        generator=shuffle, pin_memory=device.type == "cuda",
        worker_init_fn=leave_interrupts_to_the_loop if train.num_workers else None)


@dataclass
class Setup:
    """What a run trains with, built (and so checked) before its folder is touched.

    Attributes:
        steps: optimiser steps to take (see :func:`plan_steps`); epochs: how many they span.
        forward: the step's forward pass, :class:`Rounds` of ``model`` (in DistributedDataParallel
            with several processes).
        world: the processes training the run.
    """

    model: EfficientViTSam
    device: torch.device
    items: PromptedImages
    loader: torch.utils.data.DataLoader
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    steps: int
    epochs: int
    forward: nn.Module
    world: World = SINGLE


def set_up(config: RunConfig, progress: bool) -> Setup:
    """Check the config (:func:`~fusionlab.config.validate`) and the device, build the model (its
    checkpoint loaded), the data and the optimiser: every error a run's inputs can cause, before
    anything is written."""
    train_cfg = config.train
    validate(config)
    device = resolve_device(train_cfg.device, "train.device")
    world = join(device)
    world.check_batch(train_cfg.batch_size)
    if train_cfg.compile and world.size > 1:
        raise FusionlabError(f"train.compile: true with {world.size} processes is refused: {COMPILE_WITH_PROCESSES}")
    device = world.device(device)
    set_deterministic(train_cfg.deterministic)
    torch.manual_seed(train_cfg.seed)  # the same initial weights in every process
    model = build_run_model(config)
    items, loader = make_loader(config, model, device, progress, world)
    steps, epochs = plan_steps(train_cfg, len(loader))
    model.to(device)
    apply_speed_options(model, channels_last=train_cfg.channels_last, compiled=train_cfg.compile)
    model = world.sync_batch_norm(model, device)
    groups = param_groups(model, train_cfg)
    if not groups:
        raise FusionlabError(f"train.freeze: {train_cfg.freeze} freezes every part of this model; nothing to train")
    optimizer = torch.optim.AdamW(groups, lr=train_cfg.lr, betas=tuple(train_cfg.betas))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, steps, train_cfg.warmup_steps))
    trainable = sum(p.numel() for g in groups for p in g["params"])
    log.info("training %s on %d images of %s (%s depth) for %d steps (%d epochs of %d batches) on %s in %s; "
             "%.2f M parameters, %.2f M trainable", config.model.preset, len(items), config.data.dataset,
             config.depth.source if model.has_depth else "no", steps, epochs, len(loader), device,
             describe_precision(train_cfg.precision, device), sum(p.numel() for p in model.parameters()) / 1e6,
             trainable / 1e6)
    return Setup(model, device, items, loader, optimizer, scheduler, steps, epochs, world.wrap(Rounds(model)), world)


def open_run_folder(run_dir: Path, config: RunConfig) -> None:
    """Create ``run_dir`` and write its ``config.yaml``; an earlier run's done marker goes first,
    so that the folder does not look complete until this run is."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / DONE_FILE).unlink(missing_ok=True)
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))


def train(config: RunConfig, run_dir: Path, progress: bool = True,
          on_epoch_end: Optional[Callable[[int, EfficientViTSam], None]] = None,
          keep_resume_points: bool = False,
          on_log: Optional[Callable[[int, int, Dict[str, float]], None]] = None) -> TrainResult:
    """Train the model of ``config`` and write the run folder ``run_dir``, continuing the run a resume point
    there holds.

    Args:
        config: the run (its ``train`` section holds the recipe's options).
        run_dir: created if needed, once the run's inputs are checked (an error in them leaves an
            existing folder, a finished run's included, as it was); files: ``config.yaml``,
            ``train_log.csv`` (columns step, epoch, loss, bce, dice, iou_mse, lr, seconds since
            the first step), ``checkpoint.safetensors``, ``resume/`` while it trains and, last,
            ``train_done.json`` (steps, final_loss, wall_s, resumed_from_step).
        progress: show tqdm bars.
        on_epoch_end: called as ``(epoch, model)`` after every epoch that ran (also the last
            one, cut short by ``steps`` or ``max_steps``, and again for the epoch a resumed run
            stopped at its end); what it raises (e.g. ``optuna.TrialPruned``) propagates.
        keep_resume_points: write a resume point after the last step too and keep the points when
            the run is complete, for a caller with more to do that must not train again if it
            is stopped (a sweep cell, which removes them once its results are recorded); by
            default they are deleted once ``train_done.json`` is written.
        on_log: called as ``(step, steps, scalars)`` at every logged step (:func:`step_scalars`),
            in the process that writes the run folder: a sweep cell's progress. ``train.loggers``
            get the same scalars (:mod:`fusionlab.loggers`; a resumed run continues their runs).
    Raises:
        TrainingDiverged: the loss became NaN or infinite.
        StopRequested: :func:`request_stop` or Ctrl-C stopped the run; its resume point is written.
        FusionlabError: a resume point in ``run_dir`` of another run, another number of
            processes or another device type (nothing in the folder is touched).
    """
    setup = set_up(config, progress)
    run_dir = Path(run_dir)
    main = setup.world.is_main  # under torchrun, rank 0 alone writes the run folder
    points = ResumePoints(run_dir, setup, run_key(config), config.train.resume_every)
    start = points.find()
    steps_found = setup.world.gather(start.step if start is not None else 0)
    if len(set(steps_found)) > 1:
        raise FusionlabError(f"{points.folder}: the processes found resume points of different steps "
                             f"{steps_found}; every process must see the same run folder (a shared disk)")
    if main:
        points.drop_newer(start)
        open_run_folder(run_dir, config)
    if start is not None:
        log.info("resuming %s from step %d of %d (epoch %d, %d batches of it done; %s)", run_dir, start.step,
                 setup.steps, start.record["epoch"], start.record["batch"], start.path.name)
    step_log = StepLog(run_dir / "train_log.csv", after=start.step if start is not None else None) if main else None
    loggers = open_run_loggers(config, run_dir, start.step if start is not None else None) if main else None
    watch = None
    if main and (config.train.loggers or on_log is not None):
        def watch(step: int, scalars: Dict[str, float]) -> None:
            loggers.log(step, scalars)
            if on_log is not None:
                on_log(step, setup.steps, scalars)
    try:
        steps, loss_value, wall_s = run_steps(setup, config.train, step_log, progress and main, on_epoch_end,
                                              points, start, final_point=keep_resume_points, watch=watch)
    finally:
        if step_log is not None:
            step_log.close()
        if loggers is not None:
            loggers.close()
    checkpoint = run_dir / "checkpoint.safetensors" if config.train.save_checkpoint else None
    if main and checkpoint is not None:
        save_checkpoint(setup.model, checkpoint, depth_source=setup.items.depth_source)
    resumed_from = start.step if start is not None else 0
    if main:
        atomic_write_text(run_dir / DONE_FILE, json.dumps(
            {"steps": steps, "final_loss": loss_value, "wall_s": round(wall_s, 3), "resumed_from_step": resumed_from},
            indent=2))
        if not keep_resume_points:
            points.remove()
    log.info("trained %d steps in %.1f s; final loss %.4f", steps, wall_s, loss_value)
    return TrainResult(model=setup.model, steps=steps, final_loss=loss_value, wall_s=wall_s, checkpoint=checkpoint,
                       resumed_from_step=resumed_from)


def run_steps(setup: Setup, train: TrainSection, step_log: Optional[StepLog], progress: bool,
              on_epoch_end: Optional[Callable[[int, EfficientViTSam], None]], points: Optional[ResumePoints] = None,
              start: Optional[Point] = None, final_point: bool = False,
              watch: Optional[Callable[[int, Dict[str, float]], None]] = None) -> Tuple[int, float, float]:
    """The loop over epochs and batches until ``setup.steps``; returns ``(steps taken, last loss,
    seconds)``, the loss of the global batch. Raises :class:`TrainingDiverged` on a NaN or infinite
    loss (on a GPU once the next step is queued: losses are read one step late, see
    :class:`StepValues`). ``step_log``: None in the processes that do not write the run folder.
    ``watch(step, scalars)``: called at the steps ``train_log.csv`` logs, with :func:`step_scalars`.

    ``points`` writes resume points when due, and when a stop is requested (then
    :class:`StopRequested` is raised); ``start``: the point to continue from (restored first);
    ``final_point``: also write one after the last step. Without ``points``, a stop request
    stops the loop with no point.
    """
    state = Progress(step_rng=np.random.default_rng([train.seed, 1]))  # multimask draws: alike in every process
    if train.interactive_rounds:
        state.clicks = torch.Generator(setup.device).manual_seed(rank_seed(train.seed, setup.world))
    if start is not None:
        points.restore(start, state)
    latest = start.path if start is not None else None  # the point the run would continue from now
    bar = tqdm(total=setup.steps, initial=state.step, desc="train", unit="step", disable=not progress,
               dynamic_ncols=True)
    images_seen, began = 0, time.perf_counter()

    def seconds() -> float:
        return state.seconds + time.perf_counter() - began

    def settle(lag: int = 0) -> None:
        """Read the steps launched but not read, all but the last ``lag``: check, log and show their losses."""
        while len(launched) > lag:
            done = launched.popleft()
            values = done.read()
            if not math.isfinite(values["loss"]):
                raise TrainingDiverged(
                    f"training diverged at step {done.step} (epoch {done.epoch}): loss is {values['loss']}; "
                    f"try a lower train.lr (now {train.lr}) or train.grad_clip")
            state.loss = values["loss"]
            images_per_s = images_seen / (time.perf_counter() - began)
            if done.step % train.log_every == 0 or done.step == setup.steps:
                if step_log is not None:
                    step_log.write(step=done.step, epoch=done.epoch, lr=train.lr * done.factor,
                                   seconds=round(seconds(), 4), **values)
                if watch is not None:
                    watch(done.step, step_scalars(setup, values, done.epoch, done.factor, images_per_s))
            bar.set_postfix(loss=f"{state.loss:.4f}", img_s=f"{images_per_s:.1f}")

    def at_step_boundary() -> None:
        nonlocal latest
        due, stop = setup.world.any_of([points is not None and points.due(), stop_requested()])
        if due or stop:
            settle()  # the point holds the last step's loss, and its log row is written
        # a point at this step exists already when the run resumed here and has not stepped since
        if (due or stop) and points is not None and state.order is not None and points.written_step != state.step:
            latest = points.write(state, seconds())
        if stop:
            clear_stop()
            raise StopRequested(state.step, latest)

    loader = setup.loader
    launched: Deque[StepValues] = deque()
    try:
        with stop_on_interrupt():
            at_step_boundary()  # a stop asked before the loop began (in any process) stops it before its first step
            for epoch in range(state.epoch, setup.epochs):
                start_epoch(setup, state, epoch, train.freeze)
                for images, depths, targets in itertools.islice(loader, setup.steps - state.step):
                    multimask = bool(state.step_rng.random() < train.multimask_prob)
                    values = train_step(setup.model, setup.optimizer, images, depths, targets, multimask, train,
                                        setup.device, state.clicks, world=setup.world, forward=setup.forward)
                    factor = lr_factor(state.step, setup.steps, train.warmup_steps)
                    setup.scheduler.step()
                    state.step, state.batch = state.step + 1, state.batch + 1
                    launched.append(StepValues.start(values, state.step, epoch, factor))
                    images_seen += len(targets) * setup.world.size
                    settle(lag=launched[-1].lag)
                    bar.update(1)
                    at_step_boundary()
                settle()
                if on_epoch_end is not None:
                    on_epoch_end(epoch, setup.model)
        if final_point and points is not None and points.every_s > 0 and points.written_step != state.step:
            points.write(state, seconds())
    finally:
        bar.close()
    return state.step, state.loss, seconds()


@dataclass
class StepValues:
    """A step's loss values on their way to the host without stalling the device.

    On a GPU they are copied into pinned memory behind the step's kernels and read one step
    later (``lag`` 1): by then the copy is done, and the next step is already queued, so the
    GPU never waits for the host to launch it. On the CPU they are read at once.
    """

    step: int
    epoch: int
    factor: float  # the learning-rate schedule's, at the step
    names: List[str]
    host: torch.Tensor
    copied: Optional["torch.cuda.Event"] = None

    @classmethod
    def start(cls, values: Dict[str, torch.Tensor], step: int, epoch: int, factor: float) -> "StepValues":
        names = list(values)
        stacked = torch.stack([values[name].detach().float() for name in names])
        if not stacked.is_cuda:
            return cls(step, epoch, factor, names, stacked)
        host = torch.empty(stacked.shape, dtype=stacked.dtype, pin_memory=True)
        host.copy_(stacked, non_blocking=True)
        copied = torch.cuda.Event()
        copied.record()
        return cls(step, epoch, factor, names, host, copied)

    @property
    def lag(self) -> int:
        return 0 if self.copied is None else 1

    def read(self) -> Dict[str, float]:
        if self.copied is not None:
            self.copied.synchronize()
        return dict(zip(self.names, self.host.tolist()))


def step_scalars(setup: Setup, losses: Dict[str, float], epoch: int, factor: float,
                 images_per_s: float) -> Dict[str, float]:
    """What the loggers follow at a logged step: the loss and its parts (``train/loss`` …,
    ``train/grad_norm`` with clipping), ``train/epoch``, ``train/img_s`` (this session's mean), the
    learning rate of each part (``lr/<part>``: its base rate times the schedule's ``factor`` of the
    step) and each fusion block's gates (``gate/<point>/<name>``, :meth:`~fusionlab.fusion.base.FusionBlock.gates`)."""
    scalars = {f"train/{name}": float(value) for name, value in losses.items()}
    scalars.update({"train/epoch": float(epoch), "train/img_s": images_per_s})
    scalars.update({f"lr/{group['part']}": group["initial_lr"] * factor for group in setup.optimizer.param_groups})
    for point, block in setup.model.fusions.items():
        scalars.update({f"gate/{point}/{name}": value for name, value in block.gates().items()})
    return scalars


def start_epoch(setup: Setup, state: Progress, epoch: int, frozen: Sequence[str]) -> None:
    """Set up one epoch: a resumed epoch draws its order again and starts at its next batch; a new one
    records the order it is about to draw (what a resume point keeps)."""
    shuffle = setup.loader.generator
    if state.order is not None and epoch == state.epoch:
        shuffle.set_state(state.order)
    else:
        state.epoch, state.batch, state.order = epoch, 0, shuffle.get_state()
    setup.loader.batch_sampler.start = state.batch
    setup.items.set_epoch(epoch)
    set_train_mode(setup.model, frozen)


def train_step(model: EfficientViTSam, optimizer: torch.optim.Optimizer, images: torch.Tensor,
               depths: Optional[torch.Tensor], targets: List[Targets], multimask: bool, train: TrainSection,
               device: torch.device, clicks: Optional[torch.Generator], *, world: World = SINGLE,
               forward: Optional[nn.Module] = None) -> Dict[str, float]:
    """One optimiser step on a batch (this process's share of it with several processes); returns
    the step's ``loss``, ``bce``, ``dice`` and ``iou_mse`` over the global batch (means over the
    interactive rounds, see :func:`~fusionlab.rounds.predict_rounds`; ``clicks`` draws their clicks) and, with
    ``train.grad_clip``, ``grad_norm``: the gradients' norm before clipping; all as 0-d tensors on
    ``device``: nothing in the step waits for the device (read them with :class:`StepValues`), so
    a GPU always has the step's work queued.

    ``forward`` runs the step's forward pass: :attr:`Setup.forward` (in DistributedDataParallel with
    several processes); default :class:`Rounds` of ``model``. Images without any mask are left
    out of the forward: they would carry no loss. A global batch with no mask at all takes
    no step and reports zeros. A process whose share holds no mask while others' do still runs
    one image, with a blank target and a zero weight: every process takes part in every step.
    """
    forward = forward if forward is not None else Rounds(model)
    keep = [i for i, t in enumerate(targets) if t.masks.shape[0]]
    masks = sum(targets[i].masks.shape[0] for i in keep)
    total = world.sum(masks)
    if not total:
        return {name: torch.zeros((), device=device) for name in ("loss", "bce", "dice", "iou_mse")}
    if keep:
        targets = [targets[i] for i in keep]
    else:  # its BatchNorm statistics still count in this step, where one process would leave the image out
        keep, targets = [0], [blank_target(targets[0])]
    # the loader's pinned batch goes over whole, without waiting; images without masks are left out there
    images = on_device(images, keep, device)
    depths = on_device(depths, keep, device) if depths is not None else None
    targets = [target.to(device) for target in targets]
    with autocast(device, train.precision):
        rounds = forward(images, depths, targets, multimask, train, device, clicks)
    loss, values = world.reduce_losses(rounds_loss(rounds, targets, train), masks, total)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = None
    if train.grad_clip > 0:  # on the gradients reduced over the processes: the global batch's norm
        norm = torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]],
                                              train.grad_clip)
    optimizer.step()
    return values if norm is None else {**values, "grad_norm": norm.detach()}


def on_device(batch: torch.Tensor, keep: List[int], device: torch.device) -> torch.Tensor:
    """The rows ``keep`` of a ``(B, ...)`` batch on ``device``: moved whole (a pinned batch without
    waiting), then indexed there, since indexing first would make an unpinned copy."""
    batch = batch.to(device, non_blocking=True)
    return batch if len(keep) == len(batch) else batch[torch.tensor(keep, device=device)]


def blank_target(target: Targets) -> Targets:
    """A target of one empty mask prompted by a box, for an image that has none (see :func:`train_step`)."""
    size = target.masks.shape[-1]
    return Targets(torch.zeros((1, size, size), dtype=torch.bool), torch.tensor([[0.0, 0.0, 1.0, 1.0]]), None,
                   target.input_size)
