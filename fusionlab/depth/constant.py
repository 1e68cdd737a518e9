"""``constant``: the same value at every pixel, a control with no depth information."""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from fusionlab.data.types import Sample
from fusionlab.depth.base import DepthSource, register_depth_source


@register_depth_source("constant")
class ConstantDepth(DepthSource):
    """A flat map of ``value``.

    A flat map has no range to normalise (min-max would divide by zero), so ``value`` is the
    output as is: it is already on the [0, 1] scale the normalised sources produce.

    Args:
        value: the output at every pixel, in [0, 1].
    """

    def __init__(self, value: float = 0.5):
        super().__init__(raw=None, normalize="none")
        self.value = self.check_number("value", value, 0.0, 1.0)

    def __call__(self, sample: Sample, index: int) -> np.ndarray:
        height, width = sample.image.shape[:2]
        return np.full((height, width), self.value, dtype=np.float32)

    def options(self) -> Dict[str, Any]:
        return {"value": self.value}

    def describe(self) -> str:
        return f"constant {self.value:g}"
