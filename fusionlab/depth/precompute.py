"""Fill depth sources' caches ahead of training and evaluation (``fusionlab depth CONFIG``).

A split can be shared out: :class:`DatasetShard` ``i/n`` holds images ``i, i + n, i + 2n, ...``,
so ``n`` processes (one per GPU or machine) given ``0/n`` ... ``n-1/n`` and one cache folder fill
it together, each image once. Maps already cached are skipped, so a rerun resumes.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Sequence, Tuple

from fusionlab.data.base import image_sample
from fusionlab.data.types import Sample
from fusionlab.depth.base import DEPTH_SOURCES, DepthSource
from fusionlab.errors import FusionlabError

log = logging.getLogger("fusionlab.depth")


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
    eval-only config (no ``data.train`` where its dataset needs options) none for ``train``. A
    wrapping source (``shuffled``) needs its inner source's maps: the job is the inner source's.
    """
    jobs: Dict[DepthJob, None] = {}
    for config in configs:
        if config.model.fusion is None:
            continue
        source, source_options = innermost_source(config.depth.source, config.depth.options)
        for split in splits:
            if split == "val" and config.eval.drop_depth:
                continue
            options = _train_options(config) if split == "train" else config.data.val
            if options is None:
                continue
            dataset = config.data.eval_dataset if split == "val" and config.data.eval_dataset else config.data.dataset
            jobs[DepthJob(source, json.dumps(source_options, sort_keys=True), dataset,
                          json.dumps(options, sort_keys=True), split)] = None
    return list(jobs)


def innermost_source(name: str, options: Dict[str, Any]) -> Tuple[str, Dict[str, Any]]:
    """``(name, options)`` of the source whose maps ``name`` passes on: itself, or for a source whose
    class sets ``wraps`` (``shuffled``), the source its ``wraps`` option names, with the options the
    wrapper does not know (as the registry checks them). A wrapper only rearranges maps at run time,
    so preparing it would scan the split again, and fail on a shard too small to shuffle."""
    known = DEPTH_SOURCES.options(name)
    wrapped = getattr(DEPTH_SOURCES.get(name), "wraps", None)
    if wrapped not in known:
        return name, options
    inner = options.get(wrapped, known[wrapped].default)
    return innermost_source(inner, {k: v for k, v in options.items() if k not in known})


def _train_options(config: Any) -> Any:
    """The training split's options, or None for an eval-only config."""
    try:
        return config.data.train_options()
    except FusionlabError:
        return None


class DatasetShard:
    """Images ``index, index + count, index + 2 count, ...`` of ``dataset``: one of ``count`` disjoint
    shares that together hold every image, with the interface depth sources prepare on."""

    def __init__(self, dataset: Any, index: int, count: int):
        if not 0 <= index < count:
            raise FusionlabError(f"shard {index}/{count}: expected index/count with 0 <= index < count")
        self.dataset = dataset
        self.name = dataset.name
        self.label = f"{index}/{count}"
        self.positions = range(index, len(dataset), count)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index: int) -> Sample:
        return self.dataset[self.positions[index]]

    def image_sample(self, index: int) -> Sample:
        """The image alone (see :meth:`fusionlab.data.base.InstanceDataset.image_sample`), where the dataset can."""
        return image_sample(self.dataset, self.positions[index])

    def describe(self) -> str:
        return f"{self.dataset.describe()}, shard {self.label}"


def prepare_for_run(source: DepthSource, dataset: Any, device: Any, world: Any, progress: bool = True
                    ) -> Dict[str, int]:
    """Prepare ``source`` on ``dataset`` for a run on ``device`` (:meth:`DepthSource.run_on`).

    With several processes (a :class:`fusionlab.distributed.World` larger than one), each first
    fills its :class:`DatasetShard` of the cache on its own device and waits for the others
    (:meth:`~fusionlab.distributed.World.wait_for_all`, no process-group timeout), so that
    missing maps are predicted by every process at once, not by the first while the others wait
    in a barrier that times out. ``prepare`` then finds every map cached.
    """
    source.run_on(device)
    if world.size > 1:
        shard = DatasetShard(dataset, world.rank, world.size)
        counts = source.fill(shard, progress=progress)
        if counts["computed"]:
            log.info("depth maps of shard %s predicted: %s", shard.label, counts)
        world.wait_for_all()
    return source.prepare(dataset, progress=progress)


def precompute(source: DepthSource, dataset: Any, progress: bool = True, shard: Tuple[int, int] = (0, 1)
               ) -> Dict[str, Any]:
    """Run ``source.fill`` on ``dataset``, or on its :class:`DatasetShard` ``shard = (index, count)``,
    and report what it did.

    Returns ``{"source", "dataset", "images", "computed", "cached", "seconds", "images_per_s",
    "shard", "config"}``: ``images`` are those of the shard (all when ``count`` is 1), ``computed``
    maps were predicted and written to the cache now at ``images_per_s`` (over ``seconds``, model
    loading included), ``cached`` were already there (both 0 for sources that compute on the fly);
    ``shard`` is ``"index/count"``.
    """
    index, count = shard
    part = dataset if (index, count) == (0, 1) else DatasetShard(dataset, index, count)
    start = time.perf_counter()
    counts = source.fill(part, progress=progress)
    seconds = time.perf_counter() - start
    return {"source": source.describe(), "dataset": dataset.name, **counts, "seconds": round(seconds, 3),
            "images_per_s": round(counts["computed"] / seconds, 3) if seconds > 0 else 0.0,
            "shard": f"{index}/{count}", "config": source.config()}
