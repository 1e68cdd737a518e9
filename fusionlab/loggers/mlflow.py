"""MLflow: experiment = the sweep, run = the cell, params = the run's flattened hyper-parameters.

The store is ``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<root>/mlflow.db`` (``mlflow ui
--backend-store-uri sqlite:///results/<sweep>/mlflow.db`` shows it). Metrics are gathered and sent
every ``FLUSH_S`` seconds, asynchronously: one database transaction per batch rather than per logged
step, and the training step never waits for the database.
"""
from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from fusionlab.loggers import RunIdentity

DATABASE = "mlflow.db"
BATCH = 100  # MLflow takes at most 100 params per call
METRICS_BATCH = 1000  # and at most 1000 metrics
FLUSH_S = 10.0


def tracking_uri(root: str) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(root).resolve() / DATABASE}"


@contextmanager
def _creating(root: str) -> Iterator[None]:
    """Serialise opening the store: two workers creating the sqlite tables at once would collide."""
    Path(root).mkdir(parents=True, exist_ok=True)
    with open(Path(root) / f".{DATABASE}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class MlflowLogger:
    """An MLflow run; ``run_id``: an earlier run to continue (its params are kept as they are)."""

    def __init__(self, identity: RunIdentity, hparams: Dict[str, Any], run_id: Optional[str]):
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        with _creating(identity.root):
            self.client = MlflowClient(tracking_uri(identity.root))
            experiment = identity.group or "fusionlab"
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        if run_id:
            self.run_id = run_id
            self.client.update_run(run_id, status="RUNNING")
        else:
            self.run_id = self.client.create_run(experiment_id, run_name=identity.name).info.run_id
            params = [Param(name, str(value)[:6000]) for name, value in hparams.items()]
            for start in range(0, len(params), BATCH):
                self.client.log_batch(self.run_id, params=params[start:start + BATCH])
        self.gathered: List[Any] = []  # metrics not sent yet
        self.sent = time.monotonic()
        self.pending: List[Any] = []  # batches sent, perhaps not yet written

    def log(self, step: int, scalars: Dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.gathered += [Metric(name, float(value), now, step) for name, value in scalars.items()]
        if time.monotonic() - self.sent >= FLUSH_S or len(self.gathered) >= METRICS_BATCH:
            self.flush()

    def flush(self) -> None:
        for start in range(0, len(self.gathered), METRICS_BATCH):
            batch = self.gathered[start:start + METRICS_BATCH]
            self.pending.append(self.client.log_batch(self.run_id, metrics=batch, synchronous=False))
        self.gathered, self.sent = [], time.monotonic()

    def results(self, step: int, values: Dict[str, float]) -> None:
        self.log(step, values)

    def close(self) -> None:
        self.flush()
        for operation in self.pending:
            operation.wait()
        self.pending = []
        self.client.set_terminated(self.run_id)
