"""Two sweep launches on a real PostgreSQL server, one killed with kill -9: every cell runs exactly once.

The server is a throwaway cluster this module starts (Debian's ``postgresql`` package:
``initdb`` / ``pg_ctl``), listening on 127.0.0.1 only; ``FUSIONLAB_TEST_POSTGRES=postgresql://...``
uses a server of yours instead. Without either the test is skipped, except in CI (``CI`` set),
where ``.ci/run`` installs the package and a missing server is a failure.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, List

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState


class Unavailable(Exception):
    """No PostgreSQL server can be started here."""


def _binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))[-1:]), None)
    if found is None:
        raise Unavailable(f"no {name}: install Debian's postgresql package")
    return found


def _as_server_user(command: List[str]) -> List[str]:
    """PostgreSQL refuses to run as root: as root, run it as the ``postgres`` account the package made."""
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser") is None:
        raise Unavailable("running as root without runuser to switch to the postgres account")
    return ["runuser", "-u", "postgres", "--", *command]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    if os.environ.get("FUSIONLAB_TEST_POSTGRES"):
        yield os.environ["FUSIONLAB_TEST_POSTGRES"]
        return
    if importlib.util.find_spec("psycopg") is None:  # the driver SQLAlchemy uses for postgresql://
        _unavailable("psycopg is not installed: pip install 'fusionlab[postgres]'")
    folder = Path(tempfile.mkdtemp(prefix="fusionlab-pg-"))
    data, port = folder / "data", _free_port()
    try:
        initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        _run(_as_server_user([initdb, "-D", str(data), "-U", "fusionlab", "--auth=trust", "-E", "UTF8"]))
        _run(_as_server_user([pg_ctl, "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60", "-o",
                              f"-c listen_addresses=127.0.0.1 -p {port} -k {folder}", "start"]))
    except (Unavailable, KeyError, LookupError) as exc:  # KeyError/LookupError: no postgres account
        shutil.rmtree(folder, ignore_errors=True)
        _unavailable(str(exc))
    try:
        yield f"postgresql://fusionlab@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_server_user([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _run(command: List[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise Unavailable(f"{Path(command[-1]).name if command else ''} failed: {(done.stderr or done.stdout)[-300:]}")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is needed in CI and could not be started: {reason}")
    pytest.skip(f"no PostgreSQL server to test against: {reason}")


def _launch(config: Path, url: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fusionlab.cli", "sweep", str(config), "--storage", url],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def test_two_launches_on_postgres_one_killed_run_every_cell_exactly_once(make_sweep, tiny_base, workdir,
                                                                          postgres_url):
    tiny_base["train"]["max_steps"] = 3
    config = make_sweep(base=tiny_base)
    study = optuna.create_study(study_name="tiny", storage=postgres_url, load_if_exists=True, direction="maximize")
    first, second = _launch(config, postgres_url), _launch(config, postgres_url)
    try:
        deadline, seen = time.time() + 180, {}
        while time.time() < deadline:  # kill the first launch while it runs a cell
            # a claim still RUNNING half a second after it was seen won its cell (a lost claim fails at once)
            running = {t.number for t in study.get_trials(states=(TrialState.RUNNING,))
                       if t.user_attrs.get("pid") == first.pid}
            seen = {n: seen.get(n, time.time()) for n in running}
            if any(time.time() - since >= 0.5 for since in seen.values()):
                break
            time.sleep(0.1)
        else:
            os.killpg(first.pid, signal.SIGKILL)
            raise AssertionError(f"the first launch never ran a cell: {first.communicate()[0][-3000:]}")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        output, _ = second.communicate(timeout=300)
    finally:
        for launch in (first, second):
            if launch.poll() is None:
                os.killpg(launch.pid, signal.SIGKILL)
    assert second.returncode == 0, output
    trials = [t for t in study.get_trials() if not t.user_attrs.get("superseded")]
    complete = [t.user_attrs["cell"] for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4 and len(set(complete)) == 4
    killed = [t for t in trials if t.user_attrs.get("pid") == first.pid and t.state != TrialState.COMPLETE]
    assert len(killed) == 1 and killed[0].state == TrialState.FAIL and killed[0].user_attrs["stale"] is True
    table = pd.read_csv(workdir / "results" / "tiny" / "trials.csv")
    assert table[table["state"] == "COMPLETE"].groupby(["variant", "seed"]).size().tolist() == [1, 1, 1, 1]
