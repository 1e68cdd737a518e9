"""Fill depth sources' caches ahead of training and evaluation (``fusionlab depth CONFIG``)."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Sequence

from fusionlab.depth.base import DepthSource


@dataclass(frozen=True)
class DepthJob:
    """One depth source to prepare on one dataset split (options as canonical JSON, so jobs compare)."""

    source: str
    source_options: str
    dataset: str
    dataset_options: str
    split: str

    def build(self) -> tuple:
        """``(source, dataset)`` objects of this job."""
        from fusionlab.data import build_dataset
        from fusionlab.depth.base import build_depth_source

        return (build_depth_source(self.source, **json.loads(self.source_options)),
                build_dataset(self.dataset, **json.loads(self.dataset_options)))


def plan_depth(configs: Iterable[Any], splits: Sequence[str] = ("train", "val")) -> List[DepthJob]:
    """The depth each run config needs, once each: its depth source on its train and val sets.

    ``configs`` are :class:`fusionlab.config.RunConfig` objects (a run, or every variant of a sweep).
    RGB-only runs need none; a run evaluated with ``eval.drop_depth`` needs none for ``val``; an
    eval-only config (no ``data.train`` where its dataset needs options) none for ``train``.
    """
    jobs: Dict[DepthJob, None] = {}
    for config in configs:
        if config.model.fusion is None:
            continue
        for split in splits:
            if split == "val" and config.eval.drop_depth:
                continue
            options = _train_options(config) if split == "train" else config.data.val
            if options is None:
                continue
            dataset = config.data.eval_dataset if split == "val" and config.data.eval_dataset else config.data.dataset
            jobs[DepthJob(config.depth.source, json.dumps(config.depth.options, sort_keys=True), dataset,
                          json.dumps(options, sort_keys=True), split)] = None
    return list(jobs)


def _train_options(config: Any) -> Any:
    """The training split's options, or None for an eval-only config."""
    from fusionlab.errors import FusionlabError

    try:
        return config.data.train_options()
    except FusionlabError:
        return None


def precompute(source: DepthSource, dataset: Any, progress: bool = True) -> Dict[str, Any]:
    """Run ``source.prepare(dataset)`` and report what it did.

    Returns ``{"source", "dataset", "images", "computed", "cached", "seconds", "config"}``:
    ``computed`` maps were predicted and written to the cache now, ``cached`` were already
    there (both 0 for sources that compute on the fly).
    """
    start = time.perf_counter()
    counts = source.prepare(dataset, progress=progress)
    return {"source": source.describe(), "dataset": dataset.name, **counts,
            "seconds": round(time.perf_counter() - start, 3), "config": source.config()}
