"""TensorBoard: event files in the run folder's ``tensorboard/``, so that ``tensorboard --logdir
results/<sweep>`` shows every cell of a sweep (one run per trial folder)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

FOLDER = "tensorboard"


class TensorBoardLogger:
    """Scalars per step, and at the end the final values with the run's hyper-parameters (the HPARAMS tab).

    ``purge_after``: a resumed run's start step; events of later steps, which it takes again, are
    dropped (``purge_step``).
    """

    def __init__(self, run_dir: Path, hparams: Dict[str, Any], purge_after: Optional[int]):
        from torch.utils.tensorboard import SummaryWriter

        purge = purge_after + 1 if purge_after else None
        self.writer = SummaryWriter(log_dir=str(run_dir / FOLDER), purge_step=purge, flush_secs=30)
        self.hparams = hparams

    def log(self, step: int, scalars: Dict[str, float]) -> None:
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, step)

    def results(self, step: int, values: Dict[str, float]) -> None:
        from torch.utils.tensorboard.summary import hparams

        self.log(step, values)
        # written into this run's own file (SummaryWriter.add_hparams would start another run)
        for summary in hparams(self.hparams, dict(values)):
            self.writer.file_writer.add_summary(summary)

    def close(self) -> None:
        self.writer.close()
