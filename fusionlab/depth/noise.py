"""``noise``: random maps, seeded per image, a control with no depth information."""
from __future__ import annotations

import typing
from typing import Any, Dict, Literal, Tuple

import numpy as np

from fusionlab.data.types import Sample
from fusionlab.depth.base import DepthSource, register_depth_source
from fusionlab.depth.normalize import Normalization

Distribution = Literal["uniform", "gaussian"]
DISTRIBUTIONS = typing.get_args(Distribution)


@register_depth_source("noise")
class NoiseDepth(DepthSource):
    """I.i.d. noise per pixel: uniform on [0, 1) or standard normal, then normalised
    (it is a plain signal: no invalid pixels, no depth <-> disparity inversion).

    The generator is seeded by ``(seed, image_id)``, so an image gets the same map in every
    epoch and every run, and two images get different maps.

    Args:
        distribution: ``"uniform"`` or ``"gaussian"``.
        seed: non-negative integer.
        normalize: ``"minmax"``, ``"median_mad"`` or ``"none"``.
    """

    def __init__(self, distribution: Distribution = "uniform", seed: int = 0, normalize: Normalization = "minmax"):
        super().__init__(raw=None, normalize=normalize)
        self.distribution = self.check_choice("distribution", distribution, DISTRIBUTIONS)
        self.seed = self.check_integer("seed", seed, 0)

    def raw_map(self, sample: Sample, index: int) -> Tuple[np.ndarray, str]:
        rng = np.random.default_rng([self.seed, sample.image_id % 2**63])
        shape = sample.image.shape[:2]
        values = rng.random(shape) if self.distribution == "uniform" else rng.standard_normal(shape)
        return values.astype(np.float32), f"noise of image {sample.file_name!r}"

    def options(self) -> Dict[str, Any]:
        return {"distribution": self.distribution, "seed": self.seed, "normalize": self.normalize}

    def describe(self) -> str:
        return f"{self.distribution} noise (seed {self.seed}, {self.normalize})"
