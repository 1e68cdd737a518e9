"""The loggers a config may ask for, and the one check that each is installed (cheap: nothing is imported)."""
from __future__ import annotations

import importlib.util
from typing import Sequence

from fusionlab.errors import FusionlabError

# logger → the module it needs; each is the fusionlab extra of the same name
MODULES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def check_installed(kinds: Sequence[str], where: str) -> None:
    """Refuse a logger whose library is missing, at load time: a run must not train for an hour to
    fail at its first log."""
    for kind in kinds:
        if importlib.util.find_spec(MODULES[kind]) is None:
            raise FusionlabError(f"{where}: {kind} is not installed; pip install 'fusionlab[{kind}]' "
                                 f"(or 'fusionlab[loggers]' for all three)")
