"""How far a running cell is: what its worker writes into the trial (attribute ``progress``) with each
heartbeat, for ``fusionlab status`` (:mod:`fusionlab.sweep.status`).

Written at the heartbeat's pace, not at every logged step: one small write per interval whatever
``train.log_every`` is, through the store the worker holds anyway. A cell trained on several
processes (``train.devices_per_cell``) trains in other processes and reports no progress.
"""
from __future__ import annotations

import time
from typing import Any, Dict, Optional


class CellProgress:
    """The training's latest logged step, fed by :func:`fusionlab.train.train`'s ``on_log``, read by the
    heartbeat thread (:meth:`attrs`; one dict replaced whole, so a read never sees half an update)."""

    def __init__(self, resumed_from: int = 0) -> None:
        self.resumed_from = resumed_from  # the step of the resume point the training continues from
        self.latest: Dict[str, Any] = {}
        self.first: Optional[tuple] = None  # (step, time) of this session's first logged step: its speed

    def update(self, step: int, steps: int, scalars: Dict[str, float]) -> None:
        now = time.time()
        if self.first is None:
            self.first = (step, now)
        first_step, first_time = self.first
        rate = (step - first_step) / (now - first_time) if step > first_step else None
        self.latest = {"step": step, "steps": steps, "loss": round(scalars["train/loss"], 6),
                       "img_s": round(scalars["train/img_s"], 3),
                       "eta_s": round((steps - step) / rate, 1) if rate else None, "at": round(now, 3),
                       "resumed_from": self.resumed_from}

    def attrs(self) -> Dict[str, Any]:
        return self.latest
