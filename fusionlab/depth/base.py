"""The depth-source contract and its registry."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from fusionlab.data.types import Sample
from fusionlab.depth.normalize import NORMALIZATIONS, RAW_KINDS, Normalization, RawKind, postprocess
from fusionlab.errors import FusionlabError
from fusionlab.registry import Registry

DEPTH_SOURCES = Registry(
    kind="depth source",
    builtin_modules=[
        "fusionlab.depth.dataset",
        "fusionlab.depth.depth_anything",
        "fusionlab.depth.file",
        "fusionlab.depth.constant",
        "fusionlab.depth.noise",
        "fusionlab.depth.shuffled",
        "fusionlab.depth.rgb",
    ],
    entry_point_group="fusionlab.depth_sources",
    register_hint=("decorate a DepthSource subclass with @fusionlab.depth.register_depth_source('name') in a "
                   "module listed under 'plugins:' in the YAML, or expose it in the 'fusionlab.depth_sources' "
                   "entry-point group"),
)


class DepthSource:
    """Base class of depth sources: what goes into the depth branch for each image.

    Lifecycle: ``prepare(dataset)`` once per dataset split (fills caches, fixes permutations),
    then ``source(sample, index)`` for each image, ``index`` being the sample's position in
    that split. ``fill(dataset)`` fills a cache ahead of runs instead (``fusionlab depth``).
    A subclass implements :meth:`raw_map` and :meth:`options`; the shared
    post-processing of :mod:`fusionlab.depth.normalize` turns its raw map into the output.

    Args:
        raw: kind of the raw map, ``"depth"`` or ``"disparity"``; None for a plain signal with no
            depth meaning (noise, grey levels), which is only normalised.
        output: kind the model receives, ``"disparity"`` (near is bright) or ``"depth"``.
        normalize: ``"minmax"``, ``"median_mad"`` or ``"none"``.
    """

    registry_name = "depth source"

    def __init__(self, raw: Optional[RawKind] = "depth", output: RawKind = "disparity",
                 normalize: Normalization = "minmax"):
        self.raw = None if raw is None else self.check_choice("raw", raw, RAW_KINDS)
        self.output = self.check_choice("output", output, RAW_KINDS)
        self.normalize = self.check_choice("normalize", normalize, NORMALIZATIONS)

    def prepare(self, dataset: Any, progress: bool = True) -> Dict[str, int]:
        """Get ready for ``dataset`` (one split); returns counts of maps it wrote to / found in a cache."""
        return {"images": len(dataset), "computed": 0, "cached": 0}

    def run_on(self, device: torch.device) -> None:
        """Compute, where a source computes with a model, on the run's ``device`` (e.g. ``cuda:1``
        for a sweep worker pinned there); a source with no model ignores it."""

    def fill(self, dataset: Any, progress: bool = True) -> Dict[str, int]:
        """Fill the cache for ``dataset`` ahead of runs; counts as :meth:`prepare`, which it is for a
        source with no cache (one with a cache overrides it to skip the note that :meth:`prepare`
        logs when it computes maps during a run)."""
        return self.prepare(dataset, progress)

    def raw_map(self, sample: Sample, index: int) -> Tuple[np.ndarray, str]:
        """The raw ``(H, W)`` map of kind ``self.raw`` and a description of its origin for errors."""
        raise NotImplementedError(f"{type(self).__name__} must implement raw_map(sample, index)")

    def __call__(self, sample: Sample, index: int) -> np.ndarray:
        """The depth-branch input of ``sample``: float32 ``(H, W)`` at the image's size, finite, normalised."""
        raw, where = self.raw_map(sample, index)
        check_size(raw, sample, where)
        return postprocess(raw, self.raw, self.output, self.normalize, where)

    def options(self) -> Dict[str, Any]:
        """The source's own options that determine its output (JSON-serialisable)."""
        return {"raw": self.raw, "output": self.output, "normalize": self.normalize}

    def config(self) -> Dict[str, Any]:
        """Everything that determines the output: recorded with each run, and the cache key's basis."""
        return {"name": self.registry_name, **self.options()}

    def describe(self) -> str:
        """One line for table captions."""
        return f"{self.registry_name} ({self.output}, {self.normalize})"

    def check_choice(self, option: str, value: Any, choices: Sequence[str]) -> str:
        if value not in choices:
            raise FusionlabError(f"depth source {self.registry_name!r}: option {option}={value!r} is not one of "
                                 f"{', '.join(repr(c) for c in choices)}")
        return value

    def check_integer(self, option: str, value: Any, low: int) -> int:
        """``value`` as an int ``>= low`` (bools refused), else a one-line error."""
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise FusionlabError(f"depth source {self.registry_name!r}: option {option}={value!r} must be an "
                                 f"integer >= {low}")
        return int(value)

    def check_number(self, option: str, value: Any, low: Optional[float] = None, high: Optional[float] = None,
                     low_open: bool = False) -> float:
        """``value`` as a finite float in ``[low, high]`` (``(low, high]`` if ``low_open``), else an error."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        too_low = low is not None and (number <= low if low_open else number < low)
        if not np.isfinite(number) or too_low or (high is not None and number > high):
            bounds = f"{'(' if low_open else '['}{'-inf' if low is None else low}, {'inf' if high is None else high}]"
            raise FusionlabError(f"depth source {self.registry_name!r}: option {option}={value!r} must be a "
                                 f"finite number in {bounds}")
        return number


def check_size(depth: np.ndarray, sample: Sample, where: str) -> None:
    """Raise if ``depth`` is not an ``(H, W)`` map of ``sample.image``'s size (both sizes in the message)."""
    height, width = sample.image.shape[:2]
    if depth.ndim != 2 or depth.shape != (height, width):
        shape = "x".join(str(s) for s in depth.shape)
        raise FusionlabError(f"{where}: depth map is {shape} (HxW) but image {sample.file_name!r} is "
                             f"{height}x{width}; depth maps must have the image's size")


def register_depth_source(name: str):
    """Register a :class:`DepthSource` subclass (or factory) under ``name``."""
    return DEPTH_SOURCES.register(name)


def list_depth_sources(pattern: str = "*") -> List[str]:
    """Names of the registered depth sources matching a glob, sorted."""
    return DEPTH_SOURCES.names(pattern)


def build_depth_source(name: str, **kwargs: Any) -> DepthSource:
    """Build the depth source ``name``; an unknown option is a one-line error listing the known ones."""
    return DEPTH_SOURCES.build_checked(name, **kwargs)
