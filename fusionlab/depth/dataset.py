"""``dataset``: the depth that comes with the dataset (sensor or rendered, metres)."""
from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np

from fusionlab.data.types import Sample
from fusionlab.depth.base import DepthSource, register_depth_source
from fusionlab.depth.normalize import Normalization, RawKind
from fusionlab.errors import FusionlabError


@register_depth_source("dataset")
class DatasetDepth(DepthSource):
    """The dataset's own ``sample.depth`` (metric depth; 0 or NaN marks a pixel with no measurement).

    Args:
        output: ``"disparity"`` (near is bright) or ``"depth"``.
        normalize: ``"minmax"``, ``"median_mad"`` or ``"none"``.
    """

    def __init__(self, output: RawKind = "disparity", normalize: Normalization = "minmax"):
        super().__init__(raw="depth", output=output, normalize=normalize)
        self.dataset_name = "?"

    def prepare(self, dataset: Any, progress: bool = True) -> Dict[str, int]:
        self.dataset_name = dataset.name
        if len(dataset) and dataset[0].depth is None:
            raise FusionlabError(f"dataset {dataset.name!r} has no depth; use depth_anything or file")
        return super().prepare(dataset, progress)

    def raw_map(self, sample: Sample, index: int) -> Tuple[np.ndarray, str]:
        where = f"dataset {self.dataset_name!r} image {sample.file_name!r}"
        if sample.depth is None:
            raise FusionlabError(f"{where} has no depth; use depth_anything or file")
        return sample.depth, where

    def options(self) -> Dict[str, Any]:
        return {"output": self.output, "normalize": self.normalize}

    def describe(self) -> str:
        return f"dataset depth ({self.output}, {self.normalize})"
