"""Names a package exports but imports on first use (PEP 562), so that light modules stay light."""
from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, List, Tuple


def lazy_exports(package: str, exports: Dict[str, str]) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``exports`` maps a name to the module defining it."""

    def getattr_(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_() -> List[str]:
        return sorted(set(importlib.import_module(package).__dict__) | set(exports))

    return getattr_, dir_
