"""One run on K processes: ``torchrun --nproc_per_node K -m fusionlab train CONFIG --out DIR``.

torchrun starts K copies of the command with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set;
:func:`join` turns them into a :class:`World` (gloo for CPU tensors, plus nccl for CUDA ones;
each process on ``cuda:LOCAL_RANK``) and a plain command, run without torchrun, into a world of
one, where every method below is the single-process code path, unchanged.

What makes K processes train as one process with the same global batch does:

- ``train.batch_size`` is the global batch; every process takes its share of each of the
  epoch's shuffled batches (:class:`RankBatches`), all of them drawing the same permutation.
- Per-image draws (masks, prompts) are seeded by the image, not by the process
  (:class:`fusionlab.data.training.PromptedImages`); per-step draws (multimask) by the step.
- BatchNorm normalises by the global batch's statistics: SyncBatchNorm on GPUs,
  :class:`GlooSyncBatchNorm` on CPUs (torch's runs on GPUs only).
- The loss is the mean over the global batch's masks: a process's mean over its own masks is
  weighted by its share of them (:meth:`World.reduce_losses`), which DistributedDataParallel's
  average over processes turns into the global mean; gradient clipping sees the reduced gradients.
- Rank 0 alone writes the run folder, logs and shows progress; evaluation is sharded over the
  processes and its per-instance results gathered (:meth:`World.gather`).

Where K processes differ from one: the interactive rounds' correction clicks come from one
generator per process (:func:`rank_seed`), so they are other draws; a process whose share of a
step holds no mask runs one image with zero weight (its BatchNorm statistics count); an epoch's
last batch with fewer images than processes is left out; on CPU, BatchNorm layers other than
``nn.BatchNorm2d`` keep per-process statistics (a warning names them).
"""
from __future__ import annotations

import atexit
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Dict, Iterator, List, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from torch import nn

from fusionlab.errors import FusionlabError

log = logging.getLogger("fusionlab.distributed")

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
# how long :meth:`World.wait_for_all` waits: torchrun stops every process when one fails, so a long
# wait costs nothing unless a process hangs
LONG_WAIT = timedelta(hours=24)
_GROUPS: Dict[str, Any] = {}


@dataclass(frozen=True)
class World:
    """The processes training one run; ``size`` 1 (rank 0) without torchrun.

    Attributes:
        rank: this process's place, 0..size-1; rank 0 writes the run's files.
        local_rank: its place on this machine: the CUDA device it trains on.
        size: how many processes there are.
    """

    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """This process's device: ``cuda:local_rank`` for a CUDA ``device`` under torchrun, else ``device``.

        A CUDA device becomes the current one too, so that what runs on plain ``cuda`` (a library's
        default) runs there, not on GPU 0 beside another worker's run.
        """
        if device.type != "cuda":
            return device
        if self.size > 1:
            device = torch.device("cuda", self.local_rank)
        if device.index is not None:
            torch.cuda.set_device(device)
        return device

    def check_batch(self, batch_size: int) -> None:
        """A one-line error unless the global ``batch_size`` splits evenly over the processes."""
        if batch_size % self.size:
            raise FusionlabError(f"train.batch_size: {batch_size} is the global batch and does not split evenly "
                                 f"over the {self.size} processes of torchrun; expected a multiple of {self.size}")

    def sum(self, count: int) -> int:
        """``count`` summed over the processes (on the CPU, through gloo: no GPU waits for it)."""
        if self.size == 1:
            return count
        total = torch.tensor([count], dtype=torch.int64)
        dist.all_reduce(total)
        return int(total.item())

    def any_of(self, flags: Sequence[bool]) -> List[bool]:
        """Each of ``flags`` or-ed over the processes: what one of them asks for, all of them do together
        (on the CPU, through gloo)."""
        if self.size == 1:
            return list(flags)
        values = torch.tensor([int(flag) for flag in flags], dtype=torch.int64)
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return [bool(value) for value in values.tolist()]

    def reduce_losses(self, losses: Dict[str, torch.Tensor], masks: int, total: int
                      ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """The loss to backpropagate and the step's values, those of one process on the global batch.

        Args:
            losses: this process's scalars (means over its ``masks`` masks); ``loss`` carries the graph.
            masks: this process's masks; ``total``: the global batch's (:meth:`sum`).
        Returns:
            ``loss`` scaled by ``size · masks / total`` (DistributedDataParallel averages the
            gradients over the processes, so they become those of the global mean), and every
            value's global mean over masks, a 0-d tensor still on the device (nothing here waits
            for it). In a world of one, ``loss`` and its values as they are.
        """
        if self.size == 1:
            return losses["loss"], {name: value.detach() for name, value in losses.items()}
        names = list(losses)
        values = torch.stack([losses[name].detach().float() for name in names]) * (masks / total)
        dist.all_reduce(values)
        return losses["loss"] * (self.size * masks / total), dict(zip(names, values.unbind()))

    def sync_batch_norm(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` with its BatchNorm layers normalising by the global batch (in training mode).

        On CUDA, timm's conversion to SyncBatchNorm (it keeps the activation of its own
        BatchNormAct2d layers); on CPU, :class:`GlooSyncBatchNorm` in place of every
        ``nn.BatchNorm2d``. Parameters stay the same objects. A world of one: ``model`` as it is.
        """
        if self.size == 1:
            return model
        if device.type == "cuda":
            from timm.layers import convert_sync_batchnorm

            return convert_sync_batchnorm(model)
        others = set()
        for module in model.modules():
            if type(module) is nn.BatchNorm2d:
                module.__class__ = GlooSyncBatchNorm  # in place: the module keeps its tensors and its eps
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                others.add(type(module).__name__)
        if others:
            log.warning("BatchNorm layers of type %s keep per-process statistics on CPU: training differs a "
                        "little from one process with the same global batch", ", ".join(sorted(others)))
        return model

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` in DistributedDataParallel (a world of one: as it is).

        ``find_unused_parameters``: a step uses only part of the prompt encoder (points or boxes,
        mask input or not), and which part depends on the images a process draws.
        """
        if self.size == 1:
            return module
        return nn.parallel.DistributedDataParallel(module, find_unused_parameters=True)

    def shard(self, count: int) -> range:
        """This process's contiguous share of ``range(count)``: the shards in rank order are the whole."""
        edges = np.linspace(0, count, self.size + 1).round().astype(int)
        return range(edges[self.rank], edges[self.rank + 1])

    def gather(self, value: Any) -> List[Any]:
        """Every process's ``value`` (picklable), in rank order, on every process."""
        if self.size == 1:
            return [value]
        values: List[Any] = [None] * self.size
        dist.all_gather_object(values, value)
        return values

    def wait_for_all(self, timeout: timedelta = LONG_WAIT) -> None:
        """Wait until every process gets here, however long the slowest takes up to ``timeout``.

        For work of unbounded length before it (a share of the depth maps): a plain barrier would
        fail after the process group's timeout (30 minutes). gloo's monitored barrier takes its
        own, on a gloo group (the default group's CUDA collectives are nccl's); the one process
        group of this world is made by the first call, on every process alike.
        """
        if self.size == 1:
            return
        if "gloo" not in _GROUPS:
            _GROUPS["gloo"] = dist.new_group(backend="gloo")
        dist.monitored_barrier(group=_GROUPS["gloo"], timeout=timeout, wait_all_ranks=True)

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Run the block on rank 0 first, then on the others: they find the caches it filled (data, depth)."""
        if not self.is_main:
            dist.barrier()
        yield
        if self.size > 1 and self.is_main:
            dist.barrier()


SINGLE = World()


def launched() -> bool:
    """Whether torchrun (or another launcher setting its variables) started this process."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def is_main_process() -> bool:
    """False only in a process torchrun started with a rank other than 0: one that writes no files."""
    return not launched() or int(os.environ["RANK"]) == 0


def join(device: torch.device) -> World:
    """The world of this process: under torchrun, its process group, created by the first call
    (``device`` chooses the backend: gloo, and for CUDA also nccl) and destroyed at exit;
    without torchrun, a world of one."""
    if not launched():
        return SINGLE
    world = World(rank=int(os.environ["RANK"]), local_rank=int(os.environ["LOCAL_RANK"]),
                  size=int(os.environ["WORLD_SIZE"]))
    if world.size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(world.local_rank)
            dist.init_process_group("cpu:gloo,cuda:nccl", device_id=torch.device("cuda", world.local_rank))
        else:
            dist.init_process_group("gloo")
        atexit.register(dist.destroy_process_group)
        if not world.is_main:  # rank 0 alone logs what the run does; warnings and errors come from all
            logging.getLogger("fusionlab").setLevel(logging.WARNING)
        log.info("process group of %d processes (%s)", world.size, dist.get_backend())
    return world


def rank_seed(seed: int, world: World) -> int:
    """A seed for draws each process makes on its own: ``seed`` on rank 0 (so that a run of one
    process draws what it always drew), one derived from ``(seed, rank)`` on the others."""
    if world.is_main:
        return seed
    return int(np.random.SeedSequence([seed, world.rank]).generate_state(1)[0])


class RankBatches(torch.utils.data.Sampler):
    """This process's share of every batch of ``batches``: ``batch[rank::size]``.

    Every process holds the same ``batches`` (the same shuffling generator), so the shares of one
    step make up one global batch. A last batch with fewer images than processes is left out (a
    process without images could not take part in the step).
    """

    def __init__(self, batches: torch.utils.data.BatchSampler, world: World):
        super().__init__()
        self.batches = batches
        self.world = world
        tail = len(batches.sampler) % batches.batch_size
        self.drops_tail = 0 < tail < world.size
        if self.drops_tail:
            log.warning("the last batch of each epoch (%d images) is left out: fewer images than the %d processes",
                        tail, world.size)

    def __len__(self) -> int:
        return len(self.batches) - self.drops_tail

    def __iter__(self) -> Iterator[List[int]]:
        for batch in self.batches:
            if len(batch) >= self.world.size:
                yield batch[self.world.rank::self.world.size]


class GlooSyncBatchNorm(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training-mode statistics are those of the global batch, for CPU
    processes (gloo): per-channel sums go through a differentiable all-reduce, so the backward
    pass also sums over the processes. The mean and the variance are taken in two passes, as
    one process's BatchNorm does. Outside training mode, or without a process group, it is
    ``nn.BatchNorm2d``.

    Input and output: ``(B, C, H, W)``, B may differ between the processes.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized()):
            return super().forward(x)
        values = x.float()  # statistics in fp32 under a bf16 autocast too, as BatchNorm takes them
        count = torch.tensor([values.numel() // values.shape[1]], dtype=values.dtype, device=x.device)
        sums = dist_nn.all_reduce(torch.cat([values.sum(dim=(0, 2, 3)), count]))
        total = sums[-1]
        mean = sums[:-1] / total
        centred = values - mean[None, :, None, None]
        var = dist_nn.all_reduce(centred.square().sum(dim=(0, 2, 3))) / total
        out = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        out = out.to(x.dtype)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * total / (total - 1).clamp(min=1), momentum)
        return out
