"""``precompute``: fill a depth source's cache for one dataset split (``fusionlab depth precompute``)."""
from __future__ import annotations

import time
from typing import Any, Dict

from fusionlab.depth.base import DepthSource


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
