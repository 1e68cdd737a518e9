"""Worker processes that start in a fraction of a second: forked from a server that has imported torch.

A spawned worker starts a fresh interpreter and imports torch, torchvision and fusionlab
(about 3 s on a CPU core) before it can claim a cell. Where the platform has it, workers are
instead forked from multiprocessing's *forkserver*: one clean process that imports those modules
once and never runs a torch operation (so forking it is safe for OpenMP and CUDA), and that
``fusionlab sweep --workers N`` starts before the launching process imports torch itself, so
that both imports share the cores. This module imports nothing heavy, for that reason.

A forked worker gets the launching process's working directory and ``sys.path`` from
multiprocessing, and its environment at the time the worker starts from :func:`start`, as a
spawned one would; only settings read at import time (e.g. ``OMP_NUM_THREADS``) are those of the
moment the server started.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
from typing import Any, Callable, Dict

# what a worker imports anyway; the server imports it once for every worker it forks
PRELOAD = ["torch", "fusionlab.sweep.workers", "fusionlab.sweep.search", "fusionlab.models.presets",
           "fusionlab.train", "fusionlab.evaluate"]


def context() -> Any:
    """The multiprocessing context of worker processes: ``forkserver`` with :data:`PRELOAD`, else ``spawn``."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def start_early() -> None:
    """Start the forkserver now, so that its imports overlap the caller's; a no-op without forkserver."""
    if context().get_start_method() == "forkserver":
        multiprocessing.forkserver.ensure_running()


def start(target: Callable[..., None], args: tuple, name: str) -> Any:
    """Start ``target(*args)`` in a worker process named ``name``; returns the started process."""
    process = context().Process(target=_run, name=name, args=(dict(os.environ), target, args))
    process.start()
    return process


def _run(environ: Dict[str, str], target: Callable[..., None], args: tuple) -> None:
    """In the worker: the launching process's environment, then ``target``."""
    os.environ.clear()
    os.environ.update(environ)
    target(*args)
