"""``fusionlab status``: one table of a sweep's cells while it runs, from what its workers write.

Read-only and safe beside running workers: it reads the study (claims, heartbeats and the
``progress`` each heartbeat renews, see :mod:`fusionlab.sweep.progress`) through the same
storage the workers use (sqlite, PostgreSQL or a journal file) and writes nothing. The cells and
their states are those of ``fusionlab sweep --dry-run``; given only a results folder, the cells
are those its study has trials of (cells not claimed yet are counted, not named).
"""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from optuna.trial import FrozenTrial, TrialState

from fusionlab.errors import FusionlabError
from fusionlab.results import SWEEP_FILE
from fusionlab.sweep import trial_attrs
from fusionlab.sweep.config import SweepConfig
from fusionlab.sweep.store import BINDING_FILE, Store, existing_study
from fusionlab.sweep.workers import cell_states


@dataclass
class CellStatus:
    """One row of the table: a cell and its deciding trial (None: pending)."""

    variant: str
    seed: int
    trial: Optional[FrozenTrial]

    @property
    def state(self) -> str:
        return self.trial.state.name if self.trial is not None else "pending"

    @property
    def attrs(self) -> Dict[str, Any]:
        return self.trial.user_attrs if self.trial is not None else {}

    @property
    def progress(self) -> Dict[str, Any]:
        return self.attrs.get(trial_attrs.PROGRESS) or {}

    def elapsed_s(self, now: float) -> Optional[float]:
        if self.trial is None:
            return None
        if self.state != "RUNNING" and trial_attrs.WALL_S in self.attrs:
            return float(self.attrs[trial_attrs.WALL_S])
        start = self.trial.datetime_start
        return now - start.timestamp() if start is not None and self.state == "RUNNING" else None

    def eta_s(self, now: float) -> Optional[float]:
        """Seconds of training left, from the speed of its last report (None: not known yet)."""
        eta = self.progress.get("eta_s")
        if self.state != "RUNNING" or eta is None:
            return None
        return max(0.0, eta - (now - self.progress.get("at", now)))


@dataclass
class SweepStatus:
    """The cells of a sweep, plus those not named (a results folder's cells not claimed yet)."""

    name: str
    cells: List[CellStatus]
    unnamed_pending: int = 0

    def counts(self) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        for cell in self.cells:
            counts[cell.state] = counts.get(cell.state, 0) + 1
        if self.unnamed_pending:
            counts["pending"] = counts.get("pending", 0) + self.unnamed_pending
        return counts

    def eta_s(self, now: float) -> Optional[float]:
        """The sweep's time left, roughly: the running cells' ETAs plus the pending cells at the mean wall time
        of the cells done, shared among as many workers as cells run now. None before anything is known."""
        running = [c for c in self.cells if c.state == "RUNNING"]
        done = [float(c.attrs[trial_attrs.WALL_S]) for c in self.cells if c.state == "COMPLETE"
                and trial_attrs.WALL_S in c.attrs]
        pending = self.counts().get("pending", 0)
        etas = [c.eta_s(now) for c in running]
        if any(eta is None for eta in etas) or (pending and not done):
            return None if pending or running else 0.0
        return (sum(etas) + pending * (statistics.mean(done) if done else 0.0)) / max(1, len(running))


def sweep_status(sweep: SweepConfig) -> SweepStatus:
    """Every cell of ``sweep`` (the YAML) with its deciding trial, as ``--dry-run`` lists them."""
    store = existing_study(sweep.storage, sweep.name)
    states = cell_states(store, sweep)
    return SweepStatus(sweep.name, [CellStatus(c.variant.name, c.seed, states.get(c.key)) for c in sweep.cells()])


def folder_status(results: Path, storage: Optional[str] = None) -> SweepStatus:
    """The cells of the study a results folder is bound to (``store.json``; ``storage`` replaces its URL,
    which holds no password)."""
    binding_path = results / BINDING_FILE
    if not binding_path.is_file():
        raise FusionlabError(f"{results}: no {BINDING_FILE}; expected a sweep's results folder (or give the "
                             f"sweep's YAML)")
    binding = json.loads(binding_path.read_text())
    url = storage or binding["storage"]
    if "***" in url:
        raise FusionlabError(f"{binding_path}: its storage {url} hides a password; pass the full URL with --storage")
    store = existing_study(url, binding["study"])
    if store is None:
        raise FusionlabError(f"{results}: study {binding['study']!r} not found in {url}")
    cells = _latest_by_cell(store)
    plan = results / SWEEP_FILE
    total = json.loads(plan.read_text()).get("total_cells", len(cells)) if plan.is_file() else len(cells)
    return SweepStatus(binding["study"], cells, max(0, total - len(cells)))


def _latest_by_cell(store: Store) -> List[CellStatus]:
    """Each cell key's deciding trial (its COMPLETE one, else its latest), in order of first claim."""
    deciding: Dict[str, FrozenTrial] = {}
    for trial in store.trials():
        key = trial.user_attrs.get(trial_attrs.CELL)
        if key is None or trial.user_attrs.get(trial_attrs.SUPERSEDED):
            continue
        if deciding.get(key) is None or deciding[key].state != TrialState.COMPLETE:
            deciding[key] = trial
    return [CellStatus(t.user_attrs[trial_attrs.VARIANT], t.user_attrs[trial_attrs.SEED], t)
            for t in deciding.values()]


# ------------------------------------------------------------------------------ the table
def duration(seconds: Optional[float]) -> str:
    """``1h02m``, ``3m05s``, ``12s``; ``-`` when not known."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def render(status: SweepStatus, now: Optional[float] = None) -> str:
    """The table: a line per cell (state, trial, where it runs, step/steps, last loss, images/s, elapsed,
    ETA, the step it resumed from, its error), then the totals and the sweep's ETA."""
    now = time.time() if now is None else now
    header = ("variant", "seed", "state", "trial", "worker", "device", "step", "loss", "img/s", "elapsed", "eta",
              "resumed", "error")
    rows = [header] + [_row(cell, now) for cell in status.cells]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths)) + "  " + row[-1] for row in rows]
    counts = status.counts()
    total = sum(counts.values())
    summary = ", ".join(f"{counts[s]} {s}" for s in ("COMPLETE", "RUNNING", "FAIL", "pending") if counts.get(s))
    lines.append(f"sweep {status.name}: {counts.get('COMPLETE', 0)}/{total} cells complete ({summary}); "
                 f"ETA {duration(status.eta_s(now))}")
    return "\n".join(line.rstrip() for line in lines)


def _row(cell: CellStatus, now: float) -> tuple:
    attrs, progress = cell.attrs, cell.progress
    worker = f"{attrs[trial_attrs.HOST]}:{attrs.get(trial_attrs.PID, '')}" if trial_attrs.HOST in attrs else "-"
    step = attrs.get(trial_attrs.TRAIN_STEPS) if cell.state == "COMPLETE" else progress.get("step")
    steps = attrs.get(trial_attrs.TRAIN_STEPS) if cell.state == "COMPLETE" else progress.get("steps")
    loss = attrs.get(trial_attrs.FINAL_LOSS) if cell.state == "COMPLETE" else progress.get("loss")
    resumed = attrs.get(trial_attrs.RESUMED_FROM_STEP, progress.get("resumed_from"))
    error = str(attrs.get(trial_attrs.ERROR, ""))
    return (cell.variant, str(cell.seed), cell.state, str(cell.trial.number) if cell.trial else "-", worker,
            str(attrs.get(trial_attrs.DEVICE, "-")), f"{step}/{steps}" if step is not None else "-",
            f"{loss:.4f}" if isinstance(loss, (int, float)) else "-",
            f"{progress['img_s']:.1f}" if progress.get("img_s") is not None else "-",
            duration(cell.elapsed_s(now)), duration(cell.eta_s(now)), str(resumed) if resumed else "-",
            error[:60] + ("…" if len(error) > 60 else ""))
