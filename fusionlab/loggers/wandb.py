"""Weights & Biases: one run per training run, offline unless the user's settings say otherwise.

Offline runs are files under ``<root>/wandb/`` (``wandb sync <root>/wandb/offline-run-*`` uploads
them; ``wandb leet inspect`` reads them). Online when ``WANDB_MODE`` says so, or when the user is
logged in (:func:`mode`); ``WANDB_PROJECT`` names the project (default ``fusionlab``).
"""
from __future__ import annotations

import netrc
import os
import uuid
from urllib.parse import urlparse
from typing import Any, Dict, Optional

from fusionlab.loggers import RunIdentity


def mode() -> str:
    """``WANDB_MODE`` if set; else online when the user is logged in (an API key in the environment, or
    ``wandb login``'s entry in ``~/.netrc``), offline otherwise."""
    return os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") or _netrc_key() else "offline")


def _netrc_key() -> bool:
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


class WandbLogger:
    """A W&B run: config = the run's hyper-parameters, group = the sweep, name = ``variant/seed``.

    ``run_id``: an earlier run to continue (a resumed training, or a cell's evaluation after it trained).
    """

    def __init__(self, identity: RunIdentity, hparams: Dict[str, Any], run_id: Optional[str]):
        import wandb

        self.run_id = run_id or uuid.uuid4().hex[:12]  # not wandb's generator: no global random state is drawn
        self.run = wandb.init(
            dir=identity.root, project=os.environ.get("WANDB_PROJECT", "fusionlab"), group=identity.group,
            name=identity.name, id=self.run_id, resume="allow" if run_id else None, config=hparams, mode=mode(),
            reinit="create_new", settings=wandb.Settings(silent=True, console="off", x_disable_stats=True))

    def log(self, step: int, scalars: Dict[str, float]) -> None:
        self.run.log(scalars, step=step)

    def results(self, step: int, values: Dict[str, float]) -> None:
        # the summary, not the history: a continued online run refuses a step it has logged already
        self.run.summary.update(values)

    def close(self) -> None:
        self.run.finish()
