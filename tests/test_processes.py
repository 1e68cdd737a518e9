"""Worker processes forked from the preloaded server see what a spawned one would: cwd, sys.path, environment."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from fusionlab import processes


def _describe(path: str) -> None:
    """In the worker: what it sees, written to ``path``."""
    Path(path).write_text(json.dumps({"cwd": os.getcwd(), "marker": os.environ.get("FUSIONLAB_TEST_MARKER"),
                                      "path": sys.path, "torch": "torch" in sys.modules}))


def test_a_worker_sees_the_launcher_s_cwd_environment_and_path_at_its_start(tmp_path, monkeypatch):
    processes.start_early()  # a server started before the settings below change, as in `fusionlab sweep`
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FUSIONLAB_TEST_MARKER", "set after the server started")
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    out = tmp_path / "seen.json"
    worker = processes.start(_describe, (str(out),), name="worker-test")
    worker.join(timeout=120)
    assert worker.exitcode == 0
    seen = json.loads(out.read_text())
    assert seen["cwd"] == str(tmp_path) and seen["marker"] == "set after the server started"
    assert str(tmp_path / "plugins") in seen["path"]
    if processes.context().get_start_method() == "forkserver":
        assert seen["torch"]  # imported once by the server, not by each worker
