"""A tiny sweep: the demo preset on a few 64-px synthetic images, one or two steps per cell."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable, Dict

import pytest
import yaml

TINY_BASE: Dict[str, Any] = {
    "data": {"train": {"split": "train", "num_images": 4, "image_size": 64},
             "val": {"split": "val", "num_images": 2, "image_size": 64}},
    "train": {"epochs": 1, "batch_size": 2, "max_steps": 1, "masks_per_image": 4, "device": "cpu"},
    "eval": {"prompts": ["box", "click1"], "device": "cpu"},
}


def tiny_sweep(**keys: Any) -> Dict[str, Any]:
    """A sweep mapping on :data:`TINY_BASE`: RGB-only and ``add``, seeds 0 and 1, fast heartbeats (a cell
    silent for 10 s is stale: short for the tests, long enough for a loaded 2-core CI machine)."""
    sweep = {"name": "tiny", "seeds": [0, 1], "heartbeat": {"interval": 1, "grace": 10},
             "latency": {"runs": 2, "warmup": 1}, "base": TINY_BASE,
             "variants": [{"name": "add", "group": "fusion", "model": {"fusion": "add"}}]}
    sweep.update(keys)
    return sweep


def run_sweep(config: Path, *args: str) -> int:
    """``fusionlab sweep CONFIG ARGS...`` as a user runs it; returns the exit code."""
    from fusionlab.cli import main

    return main(["sweep", str(config), *args])


@pytest.fixture
def sweep() -> Callable[..., int]:
    """:func:`run_sweep`: ``sweep(config, "--workers", "2")`` returns the exit code."""
    return run_sweep


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory) -> Path:
    """One synthetic-data cache for every sweep test (generated on first use)."""
    return tmp_path_factory.mktemp("fusionlab_cache")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch, synthetic_cache: Path) -> Path:
    """A working directory with the shared data cache; results go to ``./results``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FUSIONLAB_CACHE", str(synthetic_cache))
    return tmp_path


@pytest.fixture
def tiny_base() -> Dict[str, Any]:
    """A copy of :data:`TINY_BASE` to modify."""
    return copy.deepcopy(TINY_BASE)


@pytest.fixture
def make_sweep(workdir: Path) -> Callable[..., Path]:
    """Write ``sweep.yaml`` in the working directory: :func:`tiny_sweep` with ``keys`` replaced."""
    def write(name: str = "sweep.yaml", **keys: Any) -> Path:
        path = workdir / name
        path.write_text(yaml.safe_dump(tiny_sweep(**keys), sort_keys=False))
        return path

    return write
