"""One registry mechanism, used for fusion blocks, models, depth sources and datasets.

A ``Registry`` maps lowercase names to factories (classes or functions). Entries come
from three places, in this order: the built-in modules of the package (imported the
first time the registry is queried), Python entry points of the registry's group
(loaded only when a name is not found among the built-ins, or when listing), and
modules a config names under ``plugins:`` (see :func:`import_plugins`).
"""
from __future__ import annotations

import contextlib
import difflib
import fnmatch
import importlib
import inspect
import os
import sys
import typing
from importlib import metadata
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

from fusionlab.errors import FusionlabError
from fusionlab.typecheck import conform


class Registry:
    """A named table of factories.

    Args:
        kind: what the entries are, for messages ("fusion block", "model", ...).
        supplied: arguments fusionlab passes itself (a fusion block's ``channels``), not options.
        builtin_modules: modules of the package whose import registers the built-ins.
        entry_point_group: the Python entry-point group third-party packages use.
        register_hint: how a user adds an entry, quoted in the unknown-name error.
    """

    def __init__(self, kind: str, builtin_modules: Iterable[str], entry_point_group: str,
                 register_hint: str, supplied: Sequence[str] = ()):
        self.kind = kind
        self.supplied = tuple(supplied)
        self.entry_point_group = entry_point_group
        self.register_hint = register_hint
        self._builtin_modules = list(builtin_modules)
        self._entries: Dict[str, Callable] = {}
        self._builtins_loaded = False
        self._entry_points_loaded = False

    def register(self, name: str) -> Callable[[Callable], Callable]:
        """Decorator that registers a factory under ``name`` (lowercase, unique)."""
        if not isinstance(name, str) or not name or name != name.lower():
            raise ValueError(f"{self.kind} names must be non-empty lowercase strings, got {name!r}")

        def decorator(factory: Callable) -> Callable:
            existing = self._entries.get(name)
            if existing is not None and existing is not factory and _qualname(existing) != _qualname(factory):
                raise FusionlabError(
                    f"{self.kind} {name!r} is registered twice: by {_qualname(existing)} and by "
                    f"{_qualname(factory)}; pick another name")
            self._entries[name] = factory
            with contextlib.suppress(AttributeError, TypeError):  # e.g. a builtin has no attributes
                factory.registry_name = name
            return factory

        return decorator

    def _load_builtins(self) -> None:
        if not self._builtins_loaded:
            self._builtins_loaded = True
            for module in self._builtin_modules:
                importlib.import_module(module)

    def builtin_names(self) -> List[str]:
        """Sorted names of the package's own entries (no entry points, no plugins)."""
        self._load_builtins()
        return sorted(n for n, f in self._entries.items() if getattr(f, "__module__", None) in self._builtin_modules)

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for entry_point in metadata.entry_points(group=self.entry_point_group):
            try:
                loaded = entry_point.load()
            except Exception as exc:  # a broken plugin must not hide the built-ins
                raise FusionlabError(
                    f"entry point {entry_point.name!r} of group {self.entry_point_group!r} "
                    f"({entry_point.value}) failed to import: {type(exc).__name__}: {exc}") from exc
            if entry_point.name not in self._entries and callable(loaded):
                self.register(entry_point.name)(loaded)

    def names(self, pattern: str = "*") -> List[str]:
        """Sorted names of every entry (built-ins, entry points, imported plugins) matching a glob."""
        self._load_builtins()
        self._load_entry_points()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def get(self, name: str) -> Callable:
        """The factory registered under ``name``; an unknown name is a one-line error."""
        self._load_builtins()
        if name not in self._entries:
            self._load_entry_points()
        if name not in self._entries:
            raise FusionlabError(self.unknown_message(name))
        return self._entries[name]

    def unknown_message(self, name: object) -> str:
        known = sorted(self._entries)
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        return (f"unknown {self.kind} {name!r}: {hint}known: {', '.join(known) or '(none)'}; "
                f"to add one, {self.register_hint}")

    def __contains__(self, name: str) -> bool:
        self._load_builtins()
        if name not in self._entries:
            self._load_entry_points()
        return name in self._entries

    def build(self, name: str, *args, **kwargs):
        return self.get(name)(*args, **kwargs)

    def options(self, name: str) -> Dict[str, inspect.Parameter]:
        """The options an entry takes (its keyword arguments, less those fusionlab supplies)."""
        parameters = inspect.signature(self.get(name)).parameters
        return {n: p for n, p in parameters.items() if n not in self.supplied
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    def check_options(self, name: str, options: Mapping[str, Any], where: str, name_where: Optional[str] = None
                      ) -> None:
        """Raise a one-line error for an unknown name (prefixed ``name_where``, default ``where``), an
        unknown option or a missing one (prefixed ``where``, the options' YAML path).

        An entry whose factory has ``wraps = "source"`` (e.g. the ``shuffled`` depth control) passes
        the options it does not know to the entry its ``source`` option names; they are checked there.
        """
        if not isinstance(options, Mapping):
            raise FusionlabError(f"{where}: expected a mapping of options, got {options!r}")
        if name not in self:
            prefix = name_where or where
            raise FusionlabError(f"{prefix + ': ' if prefix else ''}{self.unknown_message(name)}")
        known = self.options(name)
        parameters = inspect.signature(self.get(name)).parameters.values()
        extra = {k: v for k, v in options.items() if k not in known}
        wrapped = getattr(self.get(name), "wraps", None)
        if extra and wrapped in known:
            inner = options.get(wrapped, known[wrapped].default)
            self.check_options(inner, extra, f"{where} (options of {self.kind} {inner!r})")
        elif extra and not any(p.kind is p.VAR_KEYWORD for p in parameters):
            key = sorted(extra)[0]
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise FusionlabError(f"{where + '.' if where else ''}{key}: unknown option of {self.kind} {name!r}; "
                                 f"{hint}allowed: {', '.join(known) or '(none)'}")
        missing = [n for n, p in known.items() if p.default is p.empty and n not in options]
        if missing:
            raise FusionlabError(f"{where + ': ' if where else ''}{self.kind} {name!r} needs option {missing[0]!r}; "
                                 f"its options: {', '.join(known)}")
        hints = self.option_hints(name)
        for key, value in options.items():
            if key in known and key in hints:
                conform(hints[key], value, f"{where + '.' if where else ''}{key}", f" (option of {self.kind} {name!r})")

    def option_hints(self, name: str) -> Dict[str, Any]:
        """The annotations of an entry's options (:mod:`fusionlab.typecheck` reads them); {} if unresolvable."""
        return _type_hints(self.get(name))

    def build_checked(self, name: str, *supplied: Any, **options: Any) -> Any:
        """``build`` after :meth:`check_options` (no YAML path: the caller's error names the config)."""
        self.check_options(name, options, "")
        return self.get(name)(*supplied, **options)


def import_plugins(modules: Optional[Iterable[str]], where: str = "plugins") -> None:
    """Import the modules a config lists under ``plugins:`` so their decorators run.

    Args:
        modules: dotted module names (importable from ``sys.path`` or the working directory).
        where: the config path quoted in errors, e.g. ``"ablations/x.yaml: plugins[0]"``.
    """
    modules = list(modules or [])
    if modules and os.getcwd() not in sys.path and "" not in sys.path:
        # A console script's sys.path lacks the working directory, where a user's plugin module sits.
        sys.path.insert(0, os.getcwd())
    for i, module in enumerate(modules):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise FusionlabError(f"{where}[{i}]: cannot import plugin module {module!r}: {exc}") from exc


def _type_hints(factory: Callable[..., Any]) -> Dict[str, Any]:
    """The annotated types of a factory's parameters (a class: its ``__init__``'s), path roles kept;
    {} when they cannot be resolved."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:  # an annotation naming something not importable here: its values go unchecked
        return {}


def _qualname(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
