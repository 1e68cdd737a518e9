"""Atomic file writes: a reader, or a crash, never sees half a file.

Every result, cache entry and checkpoint fusionlab writes goes through :func:`atomic_write`:
the content is written to a hidden sibling, then moved over the target with ``os.replace``
(atomic on POSIX and Windows within one file system). The sibling is opened normally, so the
file gets the usual umask permissions (``mkstemp``'s 0600 would survive the rename).
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable, Union


def atomic_write(path: Union[str, Path], write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` to fill a temporary sibling, then move it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
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
