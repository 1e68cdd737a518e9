"""A real one-node SLURM for the cluster tests, started by ``start_slurm.sh`` beside this file.

The session starts it once (a no-op when it runs already) and stops it at the end if it started
it. Where it cannot start (not root, no ``slurm-wlm``/``munge``) the tests that need it are
skipped with the script's reason, except in CI (``CI`` set), where ``.ci/run`` installs the
packages and a cluster that cannot start is a failure.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

START = Path(__file__).with_name("start_slurm.sh")


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[str]:
    """``SLURM_CONF`` of the running local cluster, exported for sbatch, squeue, scontrol and the jobs."""
    try:
        done = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        _unavailable(f"{START.name} did not finish within 120 s")
    if done.returncode != 0:
        _unavailable((done.stderr.strip().splitlines() or [f"{START.name} exited with {done.returncode}"])[-1])
    conf = next(line.split("=", 1)[1] for line in done.stdout.splitlines() if line.startswith("export SLURM_CONF="))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLURM_CONF", conf)
        yield conf
    if "already running" not in done.stdout:  # this session started it: it stops it
        subprocess.run(["bash", str(START), "--stop"], capture_output=True, timeout=60)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"SLURM is needed in CI and could not be started: {reason}")
    pytest.skip(f"no local SLURM cluster to test against: {reason}")
