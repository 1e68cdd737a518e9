"""Fixtures of the depth-source tests: a tiny list-backed dataset and a tiny Depth Anything folder."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: tests never reach the hub

from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import pytest
import torch

from fusionlab.data.types import Sample

torch.set_num_threads(1)


class ListDataset:
    """The dataset interface the depth sources rely on, over a list of samples."""

    def __init__(self, samples: List[Sample], name: str = "tiny"):
        self.samples = samples
        self.name = name

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    @property
    def image_ids(self) -> List[int]:
        return [s.image_id for s in self.samples]

    def describe(self) -> str:
        return f"{self.name}: {len(self)} images"


def make_samples(sizes: Sequence[Tuple[int, int]], with_depth: bool = True, seed: int = 0) -> List[Sample]:
    """Random images of the given ``(H, W)`` sizes; image ``i``'s depth is a ramp from ``i + 1`` metres."""
    rng = np.random.default_rng(seed)
    samples = []
    for i, (height, width) in enumerate(sizes):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        depth: Optional[np.ndarray] = None
        if with_depth:
            depth = (i + 1 + np.linspace(0, 1, height * width).reshape(height, width) * (i + 1)).astype(np.float32)
        samples.append(Sample(image_id=100 + i, file_name=f"sub/img_{i}.jpg", image=image, instances=[], depth=depth))
    return samples


@pytest.fixture
def make_dataset() -> Callable[..., ListDataset]:
    """``make_dataset(sizes, with_depth=True, seed=0)``: a :class:`ListDataset` of :func:`make_samples`."""
    return lambda sizes, with_depth=True, seed=0: ListDataset(make_samples(sizes, with_depth, seed))


@pytest.fixture
def dataset() -> ListDataset:
    """Four 6x8 images with depth."""
    return ListDataset(make_samples([(6, 8)] * 4))
