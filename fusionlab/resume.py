"""Resume points: what a training run needs to continue exactly where it stood.

A run folder's ``resume/`` holds the last two points. A point is two files, written in this
order, each atomically (:mod:`fusionlab.atomic`):

``step-00000120.safetensors``
    The tensors: the model's state (``model/<key>``, buffers such as BatchNorm statistics
    included); the optimiser's per-parameter state (``optimizer/<index>/<name>``: AdamW's step
    and moments); the shuffling generator's state when the current epoch's order was drawn
    (``random/order``); and each process's torch generators (``random/rank<r>/torch``, and
    ``.../cuda``, ``.../clicks`` where there are some: the global ones and the correction-click draws).
``step-00000120.json``
    The rest, and the sha256 of the tensors file: written last, it is what makes the point
    exist. The step, the epoch and the batches of it done (the position in the data order), the
    last loss and the seconds trained; the run it belongs to (:func:`run_key`: the config's
    result key, the seed, the checkpoint's digest), the number of processes and the device type
    it was written with; the optimiser's param groups and the schedule's state; the multimask
    draws' generator and each process's numpy and Python global generators.

Nothing is pickled: a point is read with safetensors and ``json``. There is no AMP scaler to
keep: bf16 autocast needs no loss scaling. Writing a point reads every state and changes none
(no generator draws), so a run that writes points trains exactly as one that does not.

Reading (:meth:`ResumePoints.find`) takes the newest point that is whole: its JSON parses and
its tensors file has the digest the JSON records and fits the model and optimiser. A damaged
point is skipped with a warning, for the one before it or step 0; a point of another run (config,
seed, checkpoint), of another number of processes or of another device type is refused in one
line, before anything in the folder is touched.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import numpy as np
import torch
from safetensors.torch import load, save

from fusionlab.atomic import atomic_write_bytes, atomic_write_text, remove_leftovers
from fusionlab.config import RunConfig, file_digest, result_key
from fusionlab.errors import FusionlabError

if TYPE_CHECKING:
    from fusionlab.train import Setup

log = logging.getLogger("fusionlab.train")

FOLDER = "resume"
FORMAT = 1
KEEP = 2  # points kept: the newest, and the one before it should the newest be damaged
_NAME = re.compile(r"step-(\d+)\.json")


def run_key(config: RunConfig) -> Dict[str, Any]:
    """What a point must match to be continued: the config's result key, the seed, the checkpoint's digest."""
    checkpoint = config.model.checkpoint
    return {"config": result_key(config), "seed": config.train.seed,
            "checkpoint": file_digest(Path(checkpoint)) if checkpoint else None}


@dataclass
class Progress:
    """Where the training loop stands after a step, and the generators that decide what comes next.

    Attributes:
        step_rng: the multimask draws, one per step (alike in every process).
        clicks: this process's correction-click draws (interactive rounds only).
        step: optimiser steps taken; epoch: the current epoch; batch: its batches done.
        loss: the last step's loss; seconds: training seconds before this session.
        order: the shuffling generator's state when the current epoch's order was drawn (None
            until the first epoch starts): with ``batch``, the position in the data order.
    """

    step_rng: np.random.Generator
    clicks: Optional[torch.Generator] = None
    step: int = 0
    epoch: int = 0
    batch: int = 0
    loss: float = math.nan
    seconds: float = 0.0
    order: Optional[torch.Tensor] = None


@dataclass
class Point:
    """A whole, verified resume point: its JSON record and its tensors."""

    path: Path
    record: Dict[str, Any]
    tensors: Dict[str, torch.Tensor] = field(repr=False)

    @property
    def step(self) -> int:
        return int(self.record["step"])


class Damaged(Exception):
    """A point that cannot be read whole; the message says why."""


class ResumePoints:
    """The resume points of one run folder: found and restored at the start, written during the run.

    Args:
        run_dir: the run folder; the points live in ``run_dir/resume``.
        setup: the run's model, optimiser, schedule, shuffling generator, processes and device.
        key: :func:`run_key` of the run's config.
        every_minutes: ``train.resume_every`` (0: only when a stop is requested).
    """

    def __init__(self, run_dir: Path, setup: "Setup", key: Dict[str, Any], every_minutes: float):
        self.folder = Path(run_dir) / FOLDER
        self.setup = setup
        self.key = key
        self.every_s = every_minutes * 60.0
        self.last = time.monotonic()
        self.written_step: Optional[int] = None  # the step of the newest point (restored or written)

    # -------------------------------------------------------------------------- finding
    def candidates(self) -> List[Path]:
        """The points' JSON files, newest first."""
        return point_files(self.folder)

    def find(self) -> Optional[Point]:
        """The newest whole point of this run, or None (no point, or none whole: a warning says so).

        Raises:
            FusionlabError: the newest readable point belongs to another run, another number of
                processes or another device type (one line; nothing is touched).
        """
        candidates = self.candidates()
        for path in candidates:
            try:
                record = read_record(path)
                self.check_identity(path, record)
                point = Point(path, record, self.read_tensors(path, record))
                self.check_fit(point)
                return point
            except (Damaged, KeyError, TypeError, ValueError) as exc:  # the last three: a record of wrong shape
                log.warning("resume point %s is damaged (%s); trying the one before it", path, exc)
        if candidates:
            log.warning("no whole resume point in %s: training starts from step 0", self.folder)
        return None

    def check_identity(self, path: Path, record: Dict[str, Any]) -> None:
        """Refuse, in one line, a point this run must not continue."""
        world, device = self.setup.world, self.setup.device
        away = f"train into another --out folder, or move {self.folder} away to start this run from step 0"
        if record.get("format") != FORMAT:
            raise FusionlabError(f"{path}: resume point format {record.get('format')!r}; this fusionlab reads "
                                 f"format {FORMAT}; {away}")
        theirs, ours = record.get("key", {}), self.key
        for name, what in (("seed", "seed"), ("checkpoint", "checkpoint"), ("config", "config (result key)")):
            if theirs.get(name) != ours[name]:
                raise FusionlabError(f"{path}: resume point of another run: its {what} is {theirs.get(name)}, this "
                                     f"run's is {ours[name]}; a run continues only its own point: {away}")
        if record.get("world_size") != world.size:
            raise FusionlabError(
                f"{path}: resume point written by {record.get('world_size')} process(es); this run has "
                f"{world.size}: resume it with as many (torchrun --nproc_per_node {record.get('world_size')}), "
                f"since each process's share of a batch and its click draws depend on their number, or {away}")
        if record.get("device") != device.type:
            raise FusionlabError(f"{path}: resume point written on {record.get('device')}; this run trains on "
                                 f"{device.type}, whose generators are of another kind: resume it on "
                                 f"{record.get('device')}, or {away}")

    def read_tensors(self, path: Path, record: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """The point's tensors, once their file's digest is the one the JSON records."""
        tensors_path = path.with_name(str(record["tensors"]["file"]))
        try:
            data = tensors_path.read_bytes()
        except OSError as exc:
            raise Damaged(f"cannot read {tensors_path.name}: {exc.strerror or exc}") from None
        if hashlib.sha256(data).hexdigest() != record["tensors"]["sha256"]:
            raise Damaged(f"{tensors_path.name} is not the file it wrote (truncated or changed)")
        try:
            return load(data)
        except Exception as exc:  # safetensors raises its own error types for a malformed file
            raise Damaged(f"{tensors_path.name} is not a safetensors file ({exc})") from None

    def check_fit(self, point: Point) -> None:
        """Every tensor and group of the point fits the model and optimiser, so that restoring
        it cannot stop halfway."""
        tensors, model = point.tensors, self.setup.model
        own = {f"model/{k}": v for k, v in model.state_dict().items()}
        saved = {k: v for k, v in tensors.items() if k.startswith("model/")}
        if set(saved) != set(own):
            raise Damaged(f"its model has {len(saved)} tensors, this one {len(own)}")
        bad = next((k for k in own if own[k].shape != saved[k].shape or own[k].dtype != saved[k].dtype), None)
        if bad is not None:
            raise Damaged(f"{bad} is {list(saved[bad].shape)} {saved[bad].dtype}, the model's "
                          f"{list(own[bad].shape)} {own[bad].dtype}")
        groups = point.record["optimizer"]["param_groups"]
        live = self.setup.optimizer.param_groups
        if [len(g["params"]) for g in groups] != [len(g["params"]) for g in live]:
            raise Damaged("its optimiser's parameter groups are not this run's")
        if len(point.record["random"]["ranks"]) != self.setup.world.size:
            raise Damaged("it lacks the generators of some processes")
        rank = self.setup.world.rank
        for name, like in (("random/order", torch.Generator().get_state()),
                           (f"random/rank{rank}/torch", torch.get_rng_state())):
            if name not in tensors or tensors[name].shape != like.shape:
                raise Damaged(f"it lacks {name} or holds one of another size")

    # -------------------------------------------------------------------------- restoring
    def restore(self, point: Point, progress: Progress) -> None:
        """Put the model, optimiser, schedule, every generator and the loop's position where the point has them."""
        setup, record, tensors = self.setup, point.record, point.tensors
        setup.model.load_state_dict({k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")})
        setup.optimizer.load_state_dict(optimizer_state(record["optimizer"], tensors, setup.optimizer))
        setup.scheduler.load_state_dict(record["scheduler"])
        progress.step_rng.bit_generator.state = record["random"]["step_rng"]
        rank = setup.world.rank
        set_process_generators(record["random"]["ranks"][rank], tensors, f"random/rank{rank}", setup.device,
                               progress.clicks)
        progress.order = tensors["random/order"]
        for name in ("step", "epoch", "batch"):
            setattr(progress, name, int(record[name]))
        progress.loss = math.nan if record["loss"] is None else float(record["loss"])
        progress.seconds = float(record["seconds"])
        self.last = time.monotonic()
        self.written_step = point.step

    def drop_newer(self, point: Optional[Point]) -> None:
        """Remove the points after ``point`` (every point when None), which were damaged: this run
        writes its own from there on. Also what killed writers left."""
        keep = point.step if point is not None else -1
        for path in self.candidates():
            if step_of(path) > keep:
                path.unlink(missing_ok=True)
        self.drop_orphans()
        if self.folder.is_dir():
            remove_leftovers(self.folder)

    def drop_orphans(self) -> None:
        """Remove tensors files without their JSON: points whose writer was killed between the two."""
        if not self.folder.is_dir():
            return
        for tensors in self.folder.glob("step-*.safetensors"):
            if not tensors.with_suffix(".json").exists():
                tensors.unlink(missing_ok=True)

    # -------------------------------------------------------------------------- writing
    def due(self) -> bool:
        """Whether ``train.resume_every`` has passed since the last point (or the start)."""
        return self.every_s > 0 and time.monotonic() - self.last >= self.every_s

    def write(self, progress: Progress, seconds: float) -> Path:
        """Write a point of the run as it stands after ``progress.step`` (every process calls this
        together: rank 0 gathers their generators and writes); returns its JSON path.

        ``seconds``: training seconds so far, all sessions together.
        """
        setup = self.setup
        started = time.perf_counter()
        states = setup.world.gather(process_generators(setup.device, progress.clicks))
        path = self.folder / f"step-{progress.step:08d}.json"
        if setup.world.is_main:
            tensors = {f"model/{k}": v for k, v in setup.model.state_dict().items()}
            optimizer = setup.optimizer.state_dict()
            plain: Dict[str, Dict[str, Any]] = {}
            for index, values in optimizer["state"].items():
                for name, value in values.items():
                    if isinstance(value, torch.Tensor):
                        tensors[f"optimizer/{index}/{name}"] = value
                    else:
                        plain.setdefault(str(index), {})[name] = value
            tensors["random/order"] = progress.order
            ranks = []
            for rank, state in enumerate(states):
                for name in ("torch", "cuda", "clicks"):
                    if state[name] is not None:
                        tensors[f"random/rank{rank}/{name}"] = torch.frombuffer(bytearray(state[name]),
                                                                                dtype=torch.uint8)
                ranks.append({"numpy": state["numpy"], "python": state["python"]})
            data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
            tensors_path = path.with_suffix(".safetensors")
            atomic_write_bytes(tensors_path, data)
            record = {
                "format": FORMAT, "step": progress.step, "epoch": progress.epoch, "batch": progress.batch,
                "loss": progress.loss if math.isfinite(progress.loss) else None, "seconds": round(seconds, 3),
                "key": self.key, "world_size": setup.world.size, "device": setup.device.type,
                "tensors": {"file": tensors_path.name, "sha256": hashlib.sha256(data).hexdigest()},
                "optimizer": {"param_groups": optimizer["param_groups"], "state": plain},
                "scheduler": setup.scheduler.state_dict(),
                "random": {"step_rng": progress.step_rng.bit_generator.state, "ranks": ranks},
                "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            atomic_write_text(path, json.dumps(record, indent=1) + "\n")
            self.prune()
            log.info("resume point at step %d: %s (%.1f MB in %.2f s)", progress.step, path,
                     len(data) / 1e6, time.perf_counter() - started)
        self.last = time.monotonic()
        self.written_step = progress.step
        return path

    def prune(self) -> None:
        """Keep the newest :data:`KEEP` points."""
        for path in self.candidates()[KEEP:]:
            path.unlink(missing_ok=True)  # the JSON first: a point without it does not exist
        self.drop_orphans()

    def remove(self) -> None:
        """Delete every point: the run is complete, nothing is left to resume."""
        remove_points(self.folder.parent)


def remove_points(run_dir: Path) -> None:
    """Delete the resume points of ``run_dir`` (its ``resume/`` folder)."""
    shutil.rmtree(Path(run_dir) / FOLDER, ignore_errors=True)


def newest_point(run_dir: Path) -> Optional[Path]:
    """The JSON file of the newest point in ``run_dir`` by its name, not yet read or verified; None without one."""
    found = point_files(Path(run_dir) / FOLDER)
    return found[0] if found else None


def point_files(folder: Path) -> List[Path]:
    """The points' JSON files in ``folder``, newest first."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if _NAME.fullmatch(p.name)), key=step_of, reverse=True)


def step_of(path: Path) -> int:
    """The step of a point's JSON file ``step-00000120.json``."""
    return int(_NAME.fullmatch(path.name).group(1))


def read_record(path: Path) -> Dict[str, Any]:
    """A point's JSON, with the entries every reader needs."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Damaged(f"its JSON cannot be read: {exc}") from None
    needed = ("step", "epoch", "batch", "loss", "seconds", "tensors", "optimizer", "scheduler", "random")
    if not isinstance(record, dict) or any(name not in record for name in needed):
        raise Damaged(f"its JSON lacks some of {', '.join(needed)}")
    return record


def optimizer_state(saved: Dict[str, Any], tensors: Dict[str, torch.Tensor],
                    optimizer: torch.optim.Optimizer) -> Dict[str, Any]:
    """The optimiser's state dict from a point: its groups (tuples where the live ones have tuples:
    JSON keeps lists) and per-parameter state."""
    groups = []
    for group, live in zip(saved["param_groups"], optimizer.param_groups):
        groups.append({k: tuple(v) if isinstance(live.get(k), tuple) else v for k, v in group.items()})
    state: Dict[int, Dict[str, Any]] = {int(i): dict(values) for i, values in saved.get("state", {}).items()}
    for name, value in tensors.items():
        if name.startswith("optimizer/"):
            _, index, entry = name.split("/", 2)
            state.setdefault(int(index), {})[entry] = value
    return {"state": state, "param_groups": groups}


def process_generators(device: torch.device, clicks: Optional[torch.Generator]) -> Dict[str, Any]:
    """This process's generator states: torch's global ones (CPU, and the CUDA device's), the click
    generator's, numpy's and Python's global ones. Reading them draws nothing."""
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    return {"torch": torch.get_rng_state().numpy().tobytes(),
            "cuda": torch.cuda.get_rng_state(device).numpy().tobytes() if device.type == "cuda" else None,
            "clicks": clicks.get_state().numpy().tobytes() if clicks is not None else None,
            "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
            "python": [python_state[0], list(python_state[1]), python_state[2]]}


def set_process_generators(saved: Dict[str, Any], tensors: Dict[str, torch.Tensor], prefix: str,
                           device: torch.device, clicks: Optional[torch.Generator]) -> None:
    """Put this process's generators back as :func:`process_generators` read them."""
    torch.set_rng_state(tensors[f"{prefix}/torch"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(tensors[f"{prefix}/cuda"], device)
    if clicks is not None:
        clicks.set_state(tensors[f"{prefix}/clicks"])
    name, keys, *rest = saved["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    version, values, gauss = saved["python"]
    random.setstate((version, tuple(values), gauss))
