"""The one check of a YAML value against a type annotation, for config fields and registry options alike.

:func:`conform` is used by the config sections (:func:`from_dict`), by the registries (an entry's
options against its factory's annotations) and by :class:`~fusionlab.models.SamConfig` (fields
given in Python), so a value of the wrong type reads the same wherever it is given. It knows
YAML's kinds, ``Optional``/``Union``, ``Literal`` (an enumerated value: the message lists the
allowed ones), lists, tuples of fixed length, mappings (with ``Literal`` keys checked too) and
dataclasses; a class it does not know is left to the code that uses the value.

:data:`InputPath` and :data:`OutputPath` annotate the paths a config names: the config's
one path resolver reads them relative to the YAML file that names them
(:func:`fusionlab.config.resolve_paths`), and an input path must exist when the file loads.
"""
from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import numbers
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Optional, Type, TypeVar, Union

from fusionlab.errors import FusionlabError, yaml_kind


@dataclass(frozen=True)
class PathRole:
    """What a path-valued field is to a run: a file or folder it reads (which must exist), one it
    writes, or a Hugging Face hub id that may instead be a local folder."""

    reads: bool
    hub_id: bool = False


InputPath = Annotated[Union[str, Path], PathRole(reads=True)]
OutputPath = Annotated[Union[str, Path], PathRole(reads=False)]
HubIdOrPath = Annotated[str, PathRole(reads=False, hub_id=True)]

T = TypeVar("T")


def yaml_key(where: str, key: str) -> str:
    """The YAML path of ``key`` under ``where``: ``fusion.yaml: train``, ``fusion.yaml: variants[2].train``
    under a key, ``fusion.yaml: grid (model.fusion=add): train`` under a description, ``train`` alone."""
    if not where:
        return key
    return f"{where}.{key}" if ": " in where and not where.endswith(")") else f"{where}: {key}"


def from_dict(cls: Type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from a YAML mapping, every key known and every value conformed.

    ``where`` is the YAML path quoted in errors (``"fusion.yaml: train"``); an unknown key is
    ``fusion.yaml: train.lrr: unknown key; did you mean 'lr'? allowed keys: ...``.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise FusionlabError(f"{where}: expected a mapping, got {describe_value(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), list(fields), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise FusionlabError(f"{yaml_key(where, unknown[0])}: unknown key; {hint}allowed keys: {', '.join(fields)}")
    hints = typing.get_type_hints(cls, include_extras=True)
    return cls(**{name: conform(hints[name], value, yaml_key(where, name)) for name, value in data.items()})


def check_fields(obj: Any, where: str) -> None:
    """Conform every field of a dataclass instance to its annotation (values set in Python included)."""
    hints = typing.get_type_hints(type(obj), include_extras=True)
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            check_fields(value, f"{where}.{f.name}")
        else:
            conform(hints[f.name], value, f"{where}.{f.name}")


def conform(hint: Any, value: Any, where: str, what: str = "") -> Any:
    """``value`` checked against ``hint``, in the hint's form: an integer for a float becomes a
    float, a list for a tuple a tuple, a mapping for a dataclass the dataclass.

    Raises a one-line :class:`FusionlabError`: ``{where}: expected {kind}{what}, got {value}``;
    ``what`` says whose value it is (`` (option of dataset 'coco')``).
    """
    hint = strip_annotated(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object or isinstance(hint, TypeVar):
        return value
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else from_dict(hint, value, where)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        members = [arg for arg in args if arg is not type(None)]
        if len(members) == 1:  # Optional[X]: a mapping's or list's own message, or a value not allowed
            try:
                return conform(members[0], value, where, what)
            except FusionlabError:
                if isinstance(value, (dict, list)) or typing.get_origin(strip_annotated(members[0])) is Literal:
                    raise
                raise _mismatch(hint, value, where, what) from None
        for arg in members:
            try:
                return conform(arg, value, where, what)
            except FusionlabError:
                continue
        raise _mismatch(hint, value, where, what)
    if origin is Literal:
        if value in args and not (isinstance(value, bool) and not any(isinstance(a, bool) for a in args)):
            return value
        close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
        hint_text = f"did you mean {close[0]!r}? " if close else ""
        raise FusionlabError(f"{where}: {value!r} is not allowed{what}; {hint_text}expected one of "
                             f"{', '.join(str(a) for a in args)}")
    if origin in (list, tuple, collections.abc.Sequence) or hint in (list, tuple):
        return _conform_sequence(hint, origin, args, value, where, what)
    if origin in (dict, collections.abc.Mapping) or hint is dict:
        if not isinstance(value, Mapping):
            raise _mismatch(hint, value, where, what)
        key_hint, value_hint = args if args else (Any, Any)
        return {conform(key_hint, k, f"{where}.{k}", what) if typing.get_origin(strip_annotated(key_hint)) is Literal
                else k: conform(value_hint, v, f"{where}.{k}", what) for k, v in value.items()}
    if hint is type(None):
        if value is None:
            return None
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint is Path or hint is os.PathLike:
        if isinstance(value, (str, os.PathLike)):
            return value
    else:
        return value  # a class this check does not know: the code that uses the value checks it
    raise _mismatch(hint, value, where, what)


def _conform_sequence(hint: Any, origin: Any, args: tuple, value: Any, where: str, what: str) -> Any:
    if not isinstance(value, (list, tuple)):
        raise _mismatch(hint, value, where, what)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise FusionlabError(f"{where}: expected a list of {len(args)} values{what}, got {describe_value(value)}")
        return tuple(conform(a, v, f"{where}[{i}]", what) for i, (a, v) in enumerate(zip(args, value)))
    items = [conform(args[0] if args else Any, v, f"{where}[{i}]", what) for i, v in enumerate(value)]
    return tuple(items) if origin is tuple or hint is tuple else items


def _mismatch(hint: Any, value: Any, where: str, what: str) -> FusionlabError:
    return FusionlabError(f"{where}: expected {type_phrase(hint)}{what}, got {describe_value(value)}")


def strip_annotated(hint: Any) -> Any:
    """``Annotated[X, ...]`` → ``X``; anything else unchanged."""
    return typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint


def path_role(hint: Any) -> Optional[PathRole]:
    """The :class:`PathRole` of a path annotation (inside ``Optional``/``Union`` too); None for others."""
    if typing.get_origin(hint) is Annotated:
        return next((m for m in hint.__metadata__ if isinstance(m, PathRole)), None)
    if typing.get_origin(hint) in (Union, types.UnionType):
        return next((role for role in map(path_role, typing.get_args(hint)) if role is not None), None)
    return None


def type_phrase(hint: Any) -> str:
    """``an integer``, ``a number or null``, ``one of a, b``, ``a list of integers``, ``a path`` ... for a
    message or the docs."""
    if typing.get_origin(hint) is Annotated and path_role(hint) is not None:
        return "a path"
    hint = strip_annotated(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(dict.fromkeys(type_phrase(a) for a in args))
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (list, tuple, collections.abc.Sequence):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} values"
        item = type_phrase(args[0]) if args else ""
        plural = {"an integer": "integers", "a number": "numbers", "a string": "strings",
                  "true or false": "booleans"}.get(item)
        if item.startswith("one of "):
            plural = f"values, each {item}"
        return "a list" + (f" of {plural}" if plural else "")
    if origin in (dict, collections.abc.Mapping) and args and typing.get_origin(strip_annotated(args[0])) is Literal:
        return f"a mapping from {type_phrase(args[0])[len('one of '):]} to {type_phrase(args[1])}"
    if origin in (dict, collections.abc.Mapping) or dataclasses.is_dataclass(hint):
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null",
            Path: "a path"}.get(hint, getattr(hint, "__name__", str(hint)))


def describe_value(value: Any) -> str:
    """``a string 'x'``: a value's YAML kind and its text, for an error message."""
    kind = yaml_kind(value)
    return kind if value is None else f"{kind} {value!r}"

