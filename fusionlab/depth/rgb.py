"""``rgb``: the image's own grey levels in the depth branch, a control for "more RGB" vs depth."""
from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np

from fusionlab.data.types import Sample
from fusionlab.depth.base import DepthSource, register_depth_source
from fusionlab.depth.normalize import Normalization

# ITU-R BT.601 luma weights, as PIL's "L" conversion uses
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@register_depth_source("rgb")
class RgbDepth(DepthSource):
    """The image's luma ``0.299 R + 0.587 G + 0.114 B`` in [0, 1], then normalised
    (a plain signal: bright stays bright, no depth <-> disparity inversion).

    Args:
        normalize: ``"minmax"``, ``"median_mad"`` or ``"none"`` (grey levels in [0, 1]).
    """

    def __init__(self, normalize: Normalization = "minmax"):
        super().__init__(raw=None, normalize=normalize)

    def raw_map(self, sample: Sample, index: int) -> Tuple[np.ndarray, str]:
        grey = sample.image[..., :3].astype(np.float32) @ LUMA / 255.0
        return grey, f"grey levels of image {sample.file_name!r}"

    def options(self) -> Dict[str, Any]:
        return {"normalize": self.normalize}

    def describe(self) -> str:
        return f"RGB grey levels ({self.normalize})"
