"""The configuration docs, generated from the config dataclasses and the registries.

``docs/configuration.md`` is :func:`configuration_docs`'s output (a test keeps the two in
sync); ``fusionlab list --options KIND NAME`` prints one entry's part of it.
"""
from __future__ import annotations

import dataclasses
import inspect
import textwrap
import typing
from typing import Any, Dict, List, Tuple

from fusionlab.errors import FusionlabError
from fusionlab.typecheck import type_phrase

REGENERATE = "fusionlab list --config-docs > docs/configuration.md"
# What each registry's options are, the YAML keys that name an entry and take its options, and an example.
KINDS: Dict[str, Tuple[str, str, str, str]] = {
    "models": ("fusionlab.models.presets:MODELS", "model.preset", "model: {{preset: {name}, fusion: add}}", ""),
    "fusions": ("fusionlab.fusion:FUSIONS", "model.fusion (options: model.fusion_kwargs)",
                "model: {{fusion: {name}{options}}}", ", fusion_kwargs: "),
    "depth_encoders": ("fusionlab.models.depth_encoders:DEPTH_ENCODERS",
                       "model.depth_encoder (options: model.depth_encoder_kwargs)",
                       "model: {{fusion: add, depth_encoder: {name}{options}}}", ", depth_encoder_kwargs: "),
    "depth": ("fusionlab.depth:DEPTH_SOURCES", "depth.source (options: depth.options)",
              "depth: {{source: {name}{options}}}", ", options: "),
    "datasets": ("fusionlab.data:DATASETS", "data.dataset (options: data.train, data.val)",
                 "data: {{dataset: {name}{options}}}", ", val: "),
}


def registry(kind: str) -> Any:
    """The registry of ``kind`` (``models``, ``fusions``, ``depth_encoders``, ``depth``, ``datasets``)."""
    import importlib

    if kind not in KINDS:
        raise FusionlabError(f"--options {kind!r}: expected one of {', '.join(KINDS)}")
    module, name = KINDS[kind][0].split(":")
    return getattr(importlib.import_module(module), name)


def entry_docs(kind: str, name: str) -> str:
    """Markdown for one registry entry: its summary, its options with defaults, an example."""
    table = registry(kind)
    factory = table.get(name)
    options = table.options(name)
    hints = table.option_hints(name)
    rows = [[f"`{key}`", type_phrase(hints[key]) if key in hints else "", _default(p)] for key, p in options.items()]
    example_options = {k: _example_value(p) for k, p in options.items() if p.default is p.empty}
    template, options_key = KINDS[kind][2:]
    suffix = getattr(factory, "suffix_option", None)  # e.g. timm:<model_name>
    if suffix:
        example_options.pop(suffix, None)
    example = template.format(name=f"{name}:<{suffix}>" if suffix else name,
                              options=options_key + _flow(example_options) if example_options else "")
    parts = [f"### `{name}`", _doc(factory)]
    if kind == "models":
        parts.append(_model_summary(factory))
        if not hasattr(factory(), "width_list"):  # a SAM ViT: a reference row, evaluated as released
            example = (f"variants: [{{name: {name.replace('-', '_')}, group: reference, model: {{preset: {name}, "
                       "checkpoint: <weights .pth>}}]")
    else:
        parts.append(_table(["option", "type and allowed values", "default"], rows) if rows else "No options.")
    parts.append(f"Example: `{example}`")
    return "\n\n".join(p for p in parts if p)


def configuration_docs() -> str:
    """The whole of ``docs/configuration.md``: run-config sections, sweep keys, then every built-in entry of each registry."""
    from fusionlab.config import DataSection, DepthSection, EvalSection, ModelSection, RunConfig, TrainSection
    from fusionlab.sweep.config import (HeartbeatSection, LatencySection, SearchSection, SlurmSection, SweepFile,
                                        VariantSpec)

    parts = ["# Configuration reference", f"Generated from the code by `{REGENERATE}`; do not edit by hand.",
             "A run config (`fusionlab train` / `eval` / `depth`) has the sections below; every key has a "
             "default that runs on the embedded data. A sweep file (`fusionlab sweep`) holds a run config "
             "under `base:` and variants that override it. Every value is checked when the file loads (by "
             "`train`, `eval`, `depth`, `sweep`, `sweep --dry-run`), before anything trains or writes: an unknown "
             "key, a value of the wrong type or outside its allowed values, a registry name or option, a fusion "
             "point the depth encoder cannot serve, a file that does not exist — each is a one-line error naming "
             "its YAML path, e.g. `fusion.yaml: base.eval.prompts[0]: 'bx' is not a prompt; expected box or "
             "clickN with N >= 1 (e.g. click1, click3)`.",
             "Paths: a relative path in a config (`model.checkpoint`, `eval.detections`, dataset and depth-source "
             "options that name files or folders) is read from the folder of the YAML file that names it, for every "
             "command; a `--set` value counts as written in that file; `~` is expanded. Depth Anything's `model` "
             "is a hub id unless a folder of that name is there. Output locations given to a command (`--out`, a "
             "sweep's `results_dir` and `storage`) are relative to the working directory.", "## Run config"]
    from fusionlab.models import MODELS

    demo = MODELS.get(ModelSection().preset)()
    for key, cls in (("model", ModelSection), ("data", DataSection), ("depth", DepthSection),
                     ("train", TrainSection), ("eval", EvalSection)):
        parts += [f"### `{key}:`", _doc(cls), _fields_table(cls, preset=demo if cls is ModelSection else None,
                                                           section=key)]
    parts += ["### top level", _fields_table(RunConfig, skip=("model", "data", "depth", "train", "eval"))]
    parts += ["## Sweep file", _doc(SweepFile), _fields_table(SweepFile)]
    for key, cls in (("variants[i]", VariantSpec), ("search", SearchSection), ("latency", LatencySection),
                     ("heartbeat", HeartbeatSection), ("slurm", SlurmSection)):
        parts += [f"### `{key}:`", _doc(cls), _fields_table(cls, section=key)]
    for kind, title in (("models", "Model presets"), ("fusions", "Fusion blocks"),
                        ("depth_encoders", "Depth encoders"), ("depth", "Depth sources"), ("datasets", "Datasets")):
        parts += [f"## {title} (`{KINDS[kind][1]}`)"]
        parts += [entry_docs(kind, name) for name in registry(kind).builtin_names()]
    return "\n\n".join(p for p in parts if p) + "\n"


def _fields_table(cls: type, skip: Tuple[str, ...] = (), preset: Any = None, section: str = "") -> str:
    """Key, type (allowed values) and default of each field; with ``preset``, its architecture fields default
    to the preset's; ``section`` (``train``) finds a field's entry in :data:`ALLOWED`."""
    from fusionlab.config import SAM_FIELDS

    hints = typing.get_type_hints(cls, include_extras=True)
    rows = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        if preset is not None and f.name in SAM_FIELDS:
            default = f"the preset's (demo: {_literal(getattr(preset, f.name))})"
        elif f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "(required)"
        rows.append([f"`{f.name}`", _type_name(hints[f.name], f"{section}.{f.name}"), _literal(default)])
    return _table(["key", "type and allowed values", "default"], rows)


def _model_summary(factory: Any) -> str:
    config = factory()
    keys = ("width_list", "depth_list", "neck_width", "embed_dim", "grid", "image_size")
    if not hasattr(config, "width_list"):  # a SAM ViT reference preset
        keys = ("vit_embed_dim", "vit_depth", "vit_heads", "embed_dim", "grid", "image_size")
    return "; ".join(f"`{k}` {_literal(getattr(config, k))}" for k in keys)


def _doc(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    base = inspect.getdoc(obj.__mro__[1]) if isinstance(obj, type) and len(obj.__mro__) > 1 else None
    return "" if doc == base else textwrap.dedent(doc).strip()


def _default(parameter: inspect.Parameter) -> str:
    return "(required)" if parameter.default is parameter.empty else _literal(parameter.default)


def _example_value(parameter: inspect.Parameter) -> str:
    return f"<{parameter.name}>"


def _flow(options: Dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in options.items()) + "}"


def _literal(value: Any) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str) and (value == "(required)" or value.startswith("the preset's")):
        return value
    return f"`{list(value) if isinstance(value, tuple) else value}`"


# What a field may hold where its type does not say it (a pattern, a registry name, the model's own stages).
ALLOWED: Dict[str, str] = {
    "model.preset": "a model preset (below)",
    "model.fusion": "a fusion block (below), or null for RGB-only",
    "model.fusion_point": "neck, neck_inputs, or one of the preset's neck_stages (L: stage2-stage4, XL: stage3-stage5)",
    "model.depth_encoder": "a depth encoder (below); timm:<model> for a timm backbone",
    "data.dataset": "a dataset (below)",
    "data.eval_dataset": "a dataset (below), or null for data.dataset",
    "depth.source": "a depth source (below)",
    "train.device": "auto, cpu, mps, cuda or cuda:N",
    "eval.device": "auto, cpu, mps, cuda or cuda:N",
    "eval.prompts": "each box or clickN (N >= 1: N clicks), e.g. [box, click1, click3]",
    "slurm.time": "H:MM:SS, D-HH:MM:SS or minutes, e.g. 4:00:00, 1-12:00:00, 240",
    "slurm.mem": "a size in K, M, G or T, e.g. 64G",
}


def _type_name(hint: Any, key: str = "") -> str:
    """The type column: what the value may be, with the allowed values where a field has a fixed set."""
    phrase = type_phrase(hint)
    return f"{phrase}: {ALLOWED[key]}" if key in ALLOWED else phrase


def _table(header: List[str], rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)
