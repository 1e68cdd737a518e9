"""``shuffled``: another image's depth, a control that keeps depth statistics but breaks alignment."""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F

from fusionlab.data.types import Sample
from fusionlab.depth.base import DepthSource, build_depth_source, register_depth_source
from fusionlab.errors import FusionlabError


@register_depth_source("shuffled")
class ShuffledDepth(DepthSource):
    """Image ``i`` receives the output of an inner source for image ``permutation[i]`` of the same split.

    ``prepare(dataset)`` prepares the inner source and draws the permutation: uniform over
    permutations with no fixed point (rejection sampling), seeded, so it is the same in every
    run. The borrowed map is resized (bilinear) to the image's size when the sizes differ.

    Args:
        source: the inner source's name (default ``"dataset"``).
        seed: non-negative integer seeding the permutation.
        **inner_options: options of the inner source (e.g. ``model=`` for ``depth_anything``).
    """

    wraps = "source"  # the options it does not know go to the inner source, and are checked there

    def __init__(self, source: str = "dataset", seed: int = 0, **inner_options: Any):
        super().__init__(raw=None, normalize="none")
        if source == "shuffled":
            raise FusionlabError("depth source 'shuffled': option source='shuffled' would shuffle twice; "
                                 "name a source that makes maps, e.g. 'dataset'")
        self.seed = self.check_integer("seed", seed, 0)
        self.inner = build_depth_source(source, **inner_options)
        self.dataset: Optional[Any] = None
        self.permutation = np.zeros(0, dtype=np.int64)

    def prepare(self, dataset: Any, progress: bool = True) -> Dict[str, int]:
        counts = self.inner.prepare(dataset, progress)
        self.dataset = dataset
        self.permutation = derangement(len(dataset), self.seed)
        return counts

    def run_on(self, device: torch.device) -> None:
        self.inner.run_on(device)

    def fill(self, dataset: Any, progress: bool = True) -> Dict[str, int]:
        """Fill the inner source's cache ahead of runs (the permutation is drawn by :meth:`prepare`)."""
        return self.inner.fill(dataset, progress)

    def __call__(self, sample: Sample, index: int) -> np.ndarray:
        if self.dataset is None or not 0 <= index < len(self.permutation):
            raise FusionlabError(f"depth source 'shuffled': image {sample.file_name!r} (index {index}) is not "
                                 f"in the prepared split; call prepare(dataset) on its split first")
        if self.dataset.image_ids[index] != sample.image_id:
            raise FusionlabError(f"depth source 'shuffled': image {sample.file_name!r} is not image {index} of "
                                 f"dataset {self.dataset.name!r}; call prepare(dataset) on its split first")
        other = int(self.permutation[index])
        borrowed = self.inner(self.dataset[other], other)
        return resize(borrowed, sample.image.shape[:2])

    def options(self) -> Dict[str, Any]:
        return {"seed": self.seed, "source": self.inner.config()}

    def describe(self) -> str:
        return f"shuffled {self.inner.describe()} (seed {self.seed})"


def derangement(n: int, seed: int) -> np.ndarray:
    """A seeded permutation of ``range(n)`` with ``p[i] != i`` for every ``i`` (needs ``n >= 2``)."""
    if n < 2:
        raise FusionlabError(f"depth source 'shuffled' needs at least 2 images in the split, got {n}")
    rng = np.random.default_rng(seed)
    identity = np.arange(n)
    while True:
        permutation = rng.permutation(n)
        if not (permutation == identity).any():
            return permutation


def resize(depth: np.ndarray, size: tuple) -> np.ndarray:
    """Bilinear resize of an ``(h, w)`` map to ``size = (H, W)``; float32 ``(H, W)``."""
    if depth.shape == tuple(size):
        return depth
    resized = F.interpolate(torch.from_numpy(depth)[None, None], size=tuple(size), mode="bilinear",
                            align_corners=False)
    return resized[0, 0].numpy().astype(np.float32)
