"""Training items: a dataset's images in the model's input frame, with sampled masks and their prompts.

:class:`PromptedImages` is the ``torch`` dataset the training loop (:mod:`fusionlab.train`) loads
through a ``DataLoader`` with :func:`collate`; :class:`InputFrame` puts images, depth maps and
masks in the model's frame with :mod:`fusionlab.data.transforms`, as the predictor does.
"""
from __future__ import annotations

import itertools
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Optional, Tuple

import numpy as np
import torch

from fusionlab.data import transforms
from fusionlab.data.prompts import box_from_instance, sample_points
from fusionlab.data.types import Sample

if TYPE_CHECKING:
    from fusionlab.config import TrainSection
    from fusionlab.depth.base import DepthSource


class InputFrame:
    """The model's input frames, detached from the model (DataLoader workers must not touch a
    model whose buffers may live on the GPU): :mod:`fusionlab.data.transforms` at the model's
    ``image_size`` (encoder input side ``image_size[1]``, prompt frame ``image_size[0]``)."""

    def __init__(self, image_size: Tuple[int, int]):
        self.image_size = tuple(image_size)

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """``(H, W, 3)`` uint8 → ``(3, S, S)``; see :func:`~fusionlab.data.transforms.preprocess_image`."""
        return transforms.preprocess_image(image, self.image_size[1])

    def preprocess_depth(self, depth: np.ndarray, image_shape: Tuple[int, int]) -> torch.Tensor:
        """``(H, W)`` → ``(1, S, S)``; see :func:`~fusionlab.data.transforms.preprocess_depth`."""
        return transforms.preprocess_depth(depth, self.image_size[1], image_shape)

    def masks(self, masks: np.ndarray) -> torch.Tensor:
        """``(K, H, W)`` bool → ``(K, S, S)`` bool; see :func:`~fusionlab.data.transforms.preprocess_masks`."""
        return transforms.preprocess_masks(masks, self.image_size[1])

    def prompt_scale(self, height: int, width: int) -> np.ndarray:
        """``(2,)`` float32 factors taking original ``(x, y)`` pixels to the prompt frame (as the predictor does)."""
        return np.array(transforms.prompt_scale(height, width, self.image_size[0]), dtype=np.float32)


@dataclass
class Targets:
    """One image's sampled masks and their prompts.

    Attributes:
        masks: ``(K, S, S)`` bool in the encoder-input frame.
        boxes: ``(K, 4)`` xyxy in the prompt frame, or None when prompted by points.
        points: ``(K, P, 2)`` xy in the prompt frame, or None when prompted by boxes.
        input_size: ``(h, w)`` of the resized image inside the padded ``S × S`` frame.
    """

    masks: torch.Tensor
    boxes: Optional[torch.Tensor]
    points: Optional[torch.Tensor]
    input_size: Tuple[int, int]

    def to(self, device: torch.device) -> "Targets":
        """On ``device``, each tensor copied once and without waiting (from pinned memory, see :meth:`pin_memory`)."""
        def move(tensor: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
            return None if tensor is None else tensor.to(device, non_blocking=True)

        return Targets(move(self.masks), move(self.boxes), move(self.points), self.input_size)

    def pin_memory(self) -> "Targets":
        """In page-locked memory: what a DataLoader with ``pin_memory=True`` calls on each batch's targets."""
        def pin(tensor: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
            return None if tensor is None else tensor.pin_memory()

        return Targets(pin(self.masks), pin(self.boxes), pin(self.points), self.input_size)

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
        size = self.frame.image_size[1]
        input_size = transforms.resized_shape(height, width, size)
        if not instances:
            return Targets(torch.zeros((0, size, size), dtype=torch.bool), torch.zeros((0, 4)), None, input_size)
        masks = self.frame.masks(np.stack([inst.mask for inst in instances]))
        scale = self.frame.prompt_scale(height, width)
        if rng.random() < self.train.box_prob:
            boxes = np.stack([box_from_instance(inst) for inst in instances]) * np.tile(scale, 2)
            return Targets(masks, torch.from_numpy(boxes), None, input_size)
        count = int(rng.integers(1, self.train.max_points + 1))
        points = np.stack([sample_points(inst.mask, count, rng) for inst in instances]) * scale
        return Targets(masks, None, torch.from_numpy(points), input_size)


class EpochBatches(torch.utils.data.Sampler):
    """The batches of ``batches`` from batch :attr:`start` of the epoch on (0: all of them).

    A resumed run sets ``start`` to the batches of its epoch it trained on before it stopped: they
    are passed over without being loaded. ``batches`` draws its order all the same (the shuffling
    generator moves as in an epoch read whole), and ``len`` stays the epoch's.
    """

    def __init__(self, batches: torch.utils.data.Sampler):
        super().__init__()
        self.batches = batches
        self.start = 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return itertools.islice(iter(self.batches), self.start, None)


def leave_interrupts_to_the_loop(worker_id: int) -> None:
    """A DataLoader worker's start: Ctrl-C is the training loop's to answer (a resume point at the next
    step), not a reason for the worker to quit under it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def collate(items: List[Tuple[torch.Tensor, Optional[torch.Tensor], Targets]]
            ) -> Tuple[torch.Tensor, Optional[torch.Tensor], List[Targets]]:
    """Items → ``(images (B, 3, S, S), depths (B, 1, S, S) or None, B targets)``."""
    images = torch.stack([item[0] for item in items])
    depths = torch.stack([item[1] for item in items]) if items[0][1] is not None else None
    return images, depths, [item[2] for item in items]
