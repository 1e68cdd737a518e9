"""The sweep's optuna study, through the storage's public API: open it, bind a results folder, claim, beat.

Storage URLs (``--storage`` / ``storage:`` in the sweep YAML):

- ``sqlite:///results/x/study.db`` (the default): one machine, any number of workers;
- ``postgresql://user:password@host:5432/db`` (driver ``psycopg`` 3: ``pip install
  'fusionlab[postgres]'``; ``postgresql+psycopg2://…`` uses psycopg2), ``mysql+pymysql://…``:
  several machines;
- ``journal:/shared/disk/x.log``: optuna's journal file, for a shared disk without a database.

Claims: each (variant, seed) cell is one trial with user attributes ``variant``, ``seed`` and
``cell``. Claiming a cell creates its RUNNING trial in one write; when two workers claim the
same cell at once, the trial with the lower number keeps it and the other is closed as FAIL
with ``superseded: true`` (left out of ``trials.csv``), so a cell runs at most once at a time.

Heartbeats: a worker beats every ``heartbeat.interval`` s (user attribute ``heartbeat``,
wall-clock time: machines sharing a store need clocks in sync within ``heartbeat.grace``). A
RUNNING trial silent for ``grace`` s belongs to a worker that died (``kill -9``, a lost
machine, a process paused too long): any worker fails it with ``stale: true`` and the cell is
claimed again. Optuna's own heartbeat is not used: its journal storage has none, and its RDB
heartbeat starts only after the trial exists.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional

import optuna
from optuna.exceptions import DuplicatedStudyError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState, create_trial

from fusionlab.atomic import atomic_write_text
from fusionlab.errors import FusionlabError
from fusionlab.sweep import trial_attrs

log = logging.getLogger("fusionlab.sweep")

BINDING_FILE = "store.json"
RESULTS_ID = "fusionlab_results_id"
STALE_ERROR = "the worker stopped without finishing (killed, lost or paused: no heartbeat); the cell is retried"
# The PyPI package that provides each SQLAlchemy driver a storage URL may name.
DRIVER_PACKAGES = {"psycopg": "psycopg[binary]  (or: pip install 'fusionlab[postgres]')",
                   "psycopg2": "psycopg2-binary", "pg8000": "pg8000", "asyncpg": "asyncpg",
                   "pymysql": "PyMySQL", "mysqldb": "mysqlclient", "mysqlconnector": "mysql-connector-python"}
URL_FORMS = ("sqlite:///path/study.db, postgresql://user:password@host:5432/db (psycopg 3), "
             "postgresql+psycopg2://..., mysql+pymysql://... or journal:/path/study.log")
_OPEN_ATTEMPTS = 8


# ------------------------------------------------------------------------------ opening
def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs, errors and ``store.json``)."""
    if "://" not in url:
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL: nothing to hide that we can find
        return url


def open_storage(url: str) -> BaseStorage:
    """The optuna storage ``url`` names; a bad URL or a missing database driver is a one-line error."""
    if url.startswith("journal:"):
        path = Path(url[len("journal:"):])
        _make_parent(path, url)
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise FusionlabError(f"storage {url!r}: not a storage URL; expected {URL_FORMS}")
    _check_driver(url)
    kwargs: Dict[str, Any] = {}
    lock_path = None
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        _make_parent(path, url)
        lock_path = path.with_name(path.name + ".lock")
        # several worker processes write one file: wait for the lock instead of failing
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
    with _file_lock(lock_path):
        return _retry(lambda: RDBStorage(url, **kwargs), f"storage {redact(url)}")


def _make_parent(path: Path, url: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise FusionlabError(f"storage {url}: cannot create the folder {path.parent}: a file is in the way") from None
    except PermissionError:
        raise FusionlabError(f"storage {url}: no permission to create the folder {path.parent}") from None


def _check_driver(url: str) -> None:
    """Import the URL's database driver now, to say which package to install if it is missing."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        dialect = make_url(url).get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise FusionlabError(f"storage {redact(url)}: {str(exc).splitlines()[0]}; expected {URL_FORMS}") from None
    try:
        dialect.import_dbapi()
    except ImportError:
        package = DRIVER_PACKAGES.get(dialect.driver, dialect.driver)
        raise FusionlabError(f"storage {redact(url)}: the {dialect.name} driver '{dialect.driver}' is not installed; "
                             f"pip install {package}") from None


@contextlib.contextmanager
def _file_lock(path: Optional[Path]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (nothing when None or where flock does not exist)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: concurrent first launches are retried instead
        fcntl = None
    if path is None or fcntl is None:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _retry(make: Any, what: str) -> Any:
    """``make()``, retried when concurrent launches race to create the same tables or study."""
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(_OPEN_ATTEMPTS):
        try:
            return make()
        except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
            if attempt == _OPEN_ATTEMPTS - 1:
                raise FusionlabError(f"{what}: cannot open it: {str(exc).splitlines()[0]}") from exc
            time.sleep(random.uniform(0.2, 1.0) * (attempt + 1))
        except ValueError as exc:  # optuna's word for a URL it cannot use
            raise FusionlabError(f"{what}: {str(exc).splitlines()[0]}; expected {URL_FORMS}") from exc
    raise AssertionError("unreachable")


# ------------------------------------------------------------------------------ the store
class Store:
    """One optuna study on one storage; every write goes through the storage's public methods."""

    def __init__(self, url: str, study_name: str):
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.url = url
        self.storage = open_storage(url)
        self.study = _retry(lambda: _create_study(self.storage, study_name),
                            f"study {study_name!r} in {redact(url)}")
        self.study_id = self.storage.get_study_id_from_name(study_name)

    @property
    def name(self) -> str:
        return self.study.study_name

    def trials(self, states: Optional[Iterable[TrialState]] = None) -> List[FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=tuple(states) if states is not None else None)

    def trial(self, number: int) -> FrozenTrial:
        return self.storage.get_trial(self._id_of(number))

    def _id_of(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def set_attrs(self, number: int, attrs: Dict[str, Any]) -> None:
        """Set user attributes of a RUNNING trial (optuna refuses finished ones: UpdateFinishedTrialError)."""
        trial_id = self._id_of(number)
        for key, value in attrs.items():
            self.storage.set_trial_user_attr(trial_id, key, value)

    def finish(self, number: int, value: Optional[float], state: TrialState) -> bool:
        """Close a RUNNING trial as ``state`` (with ``value`` when COMPLETE); False if it was closed already."""
        try:
            self.study.tell(number, value if state == TrialState.COMPLETE else None, state=state)
        except (RuntimeError, ValueError):  # finished meanwhile by another worker (UpdateFinishedTrialError, ...)
            return False
        return True

    def add_running(self, attrs: Dict[str, Any]) -> FrozenTrial:
        """A new RUNNING trial with ``attrs``; returns it as stored (its number assigned)."""
        token = uuid.uuid4().hex
        self.study.add_trial(create_trial(state=TrialState.RUNNING, user_attrs={**attrs, trial_attrs.CLAIM: token}))
        return next(t for t in reversed(self.trials()) if t.user_attrs.get(trial_attrs.CLAIM) == token)


def _create_study(storage: BaseStorage, name: str) -> optuna.Study:
    try:
        return optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True)
    except DuplicatedStudyError:  # created by another launch between optuna's check and its insert
        return optuna.load_study(study_name=name, storage=storage)


def existing_study(url: str, study_name: str) -> Optional[Store]:
    """The study if its storage and study exist already (creates nothing; for ``--dry-run``)."""
    for prefix in ("sqlite:///", "journal:"):
        if url.startswith(prefix) and not Path(url[len(prefix):]).is_file():
            return None
    storage = open_storage(url)
    if study_name not in {s.study_name for s in storage.get_all_studies()}:
        return None
    return Store(url, study_name)


# ------------------------------------------------------------------------------ results folder
def bind_results(folder: Path, store: Store) -> None:
    """Tie ``folder`` to ``store``'s study (``store.json``), or refuse a folder that belongs to another.

    The study carries a random id (user attribute ``fusionlab_results_id``) and ``store.json``
    the same id: a launch with another storage, a deleted and recreated database, or a study of
    another name finds a different id (or none) and stops before it writes anything.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise FusionlabError(f"results folder {folder}: a file is in the way; expected a folder") from None
    path = folder / BINDING_FILE
    with _file_lock(folder / ".store.lock"):
        study_id = store.study.user_attrs.get(RESULTS_ID)
        if path.is_file():
            bound = _read_binding(path)
            if bound.get("id") != study_id:
                raise FusionlabError(
                    f"{folder}: these results belong to study {bound.get('study')!r} in {bound.get('storage')}, "
                    f"not to study {store.name!r} in {redact(store.url)}; run with that storage (--storage), "
                    f"or set results_dir (--set results_dir=...) to another folder")
            return
        has_results = (folder / "trials.csv").is_file() or any((folder / "trials").glob("*"))
        if has_results and not store.trials():
            raise FusionlabError(f"{folder}: holds results of a sweep whose study is not in {redact(store.url)} "
                                 f"(study {store.name!r} is empty); run with that sweep's storage (--storage), or "
                                 f"move {folder} away")
        if study_id is None:
            study_id = uuid.uuid4().hex
            store.study.set_user_attr(RESULTS_ID, study_id)
        atomic_write_text(path, json.dumps({"storage": redact(store.url), "study": store.name, "id": study_id},
                                           indent=2) + "\n")


def _read_binding(path: Path) -> Dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise FusionlabError(f"{path}: unreadable ({exc}); it records which study the results belong to") from None
    if not isinstance(data, dict):
        raise FusionlabError(f"{path}: expected a JSON object with storage, study and id")
    return data


# ------------------------------------------------------------------------------ claims
def cell_trials(store: Store, keys: Iterable[str]) -> List[FrozenTrial]:
    """The trials of these cell keys, in number order, claim losers left out."""
    keys = set(keys)
    return [t for t in store.trials()
            if t.user_attrs.get(trial_attrs.CELL) in keys and not t.user_attrs.get(trial_attrs.SUPERSEDED)]


def claim(store: Store, key: str, attrs: Dict[str, Any]) -> Optional[FrozenTrial]:
    """Create the RUNNING trial of cell ``key``; None if another worker holds or finished the cell."""
    mine = store.add_running({**attrs, trial_attrs.CELL: key, trial_attrs.HEARTBEAT: time.time(),
                              trial_attrs.HOST: os.uname().nodename, trial_attrs.PID: os.getpid()})
    rivals = [t for t in cell_trials(store, [key]) if t.number != mine.number and (
        t.state == TrialState.COMPLETE or (t.state == TrialState.RUNNING and t.number < mine.number))]
    if rivals:
        store.set_attrs(mine.number, {trial_attrs.SUPERSEDED: True})
        store.finish(mine.number, None, TrialState.FAIL)
        log.debug("cell %s: claim %d lost to trial %d", key, mine.number, rivals[0].number)
        return None
    return mine


def fail_stale(store: Store, grace: float) -> List[FrozenTrial]:
    """Fail RUNNING trials whose last heartbeat is older than ``grace`` s (``stale: true``); returns them."""
    now = time.time()
    failed = []
    for trial in store.trials(states=(TrialState.RUNNING,)):
        beat = trial.user_attrs.get(trial_attrs.HEARTBEAT)
        if beat is None or now - float(beat) <= grace:
            continue
        try:
            store.set_attrs(trial.number, {trial_attrs.STALE: True, trial_attrs.ERROR: STALE_ERROR})
        except RuntimeError:  # finished meanwhile (UpdateFinishedTrialError)
            continue
        if store.finish(trial.number, None, TrialState.FAIL):
            failed.append(trial)
            log.warning("trial %d (%s, worker %s:%s) had no heartbeat for %.0f s: marked FAIL, its cell is retried",
                        trial.number, trial.user_attrs.get(trial_attrs.CELL), trial.user_attrs.get(trial_attrs.HOST),
                        trial.user_attrs.get(trial_attrs.PID), now - float(beat))
    return failed


@contextlib.contextmanager
def heartbeat(store: Store, number: int, interval: float,
              progress: Callable[[], Dict[str, Any]] = dict) -> Iterator[None]:
    """Beat for trial ``number`` every ``interval`` s while the block runs; each beat also writes
    ``progress()`` (attribute ``progress``, see :mod:`fusionlab.sweep.progress`) when it changed.

    A beat that finds the trial closed (another worker declared it dead) ends the beats quietly:
    the cell's owner sees that when it records its result.
    """
    stop = threading.Event()
    written: Dict[str, Any] = {}

    def beat() -> None:
        nonlocal written
        while not stop.wait(interval):
            attrs: Dict[str, Any] = {trial_attrs.HEARTBEAT: time.time()}
            now = progress()
            if now and now != written:
                attrs[trial_attrs.PROGRESS] = now
            try:
                store.set_attrs(number, attrs)
                written = now
            except optuna.exceptions.UpdateFinishedTrialError:
                log.warning("trial %d was closed by another worker while this one ran it (no heartbeat for too "
                            "long); its result will be discarded", number)
                return
            except Exception as exc:  # a failed beat is retried at the next interval; grace covers a few misses
                log.warning("heartbeat of trial %d failed (%s); retrying in %s s", number, exc, interval)

    thread = threading.Thread(target=beat, name=f"heartbeat-{number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
