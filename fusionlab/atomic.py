"""Atomic file writes: a reader, or a crash, never sees half a file.

Every result, cache entry and checkpoint fusionlab writes goes through :func:`atomic_write`:
the content is written to a hidden sibling, then moved over the target with ``os.replace``
(atomic on POSIX and Windows within one file system). The sibling is opened normally, so the
file gets the usual umask permissions (``mkstemp``'s 0600 would survive the rename).
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import Callable, Union

# ``.<name>.<pid>@<host>.<8 hex>.tmp``: who wrote a leftover, so that only a dead writer's is removed.
_TMP = re.compile(r"^\..+\.(\d+)@(.+)\.[0-9a-f]{8}\.tmp$")
_HOST = socket.gethostname()


def atomic_write(path: Union[str, Path], write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` to fill a temporary sibling, then move it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}@{_HOST}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_bytes(path: Union[str, Path], data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: Union[str, Path], text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def remove_leftovers(folder: Union[str, Path], max_age_s: float = 86400.0) -> int:
    """Delete temporary siblings under ``folder`` left by writers that were killed; returns how many.

    A leftover of a process on this host that no longer runs goes at once; one of another host
    (a shared disk) only once it is older than ``max_age_s``. Live writers' files are kept.
    """
    removed = 0
    for tmp in Path(folder).rglob(".*.tmp"):
        match = _TMP.match(tmp.name)
        if match is None:
            continue
        pid, host = int(match.group(1)), match.group(2)
        try:
            old = time.time() - tmp.stat().st_mtime > max_age_s
        except FileNotFoundError:  # finished meanwhile
            continue
        if old or (host == _HOST and not _alive(pid)):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def staging_folder(folder: Union[str, Path]) -> Path:
    """The hidden sibling a folder's replacement is written into (see :func:`swap_in`); any earlier,
    unfinished replacement there is removed."""
    folder = Path(folder)
    staging = folder.with_name(f".{folder.name}.replacing")
    shutil.rmtree(staging, ignore_errors=True)
    return staging


def swap_in(staging: Union[str, Path], folder: Union[str, Path]) -> None:
    """Put a complete ``staging`` folder in the place of ``folder``: the old one stays whole until the
    new one is complete, and is deleted only once the new one is in its place."""
    staging, folder = Path(staging), Path(folder)
    old = folder.with_name(f".{folder.name}.replaced")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(staging, folder)
    shutil.rmtree(old, ignore_errors=True)
