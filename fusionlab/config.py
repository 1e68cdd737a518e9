"""Typed run configuration, built from YAML.

A run = one model trained on one dataset with one depth source, then evaluated. Every
field has a default that runs on the embedded synthetic dataset with the CPU demo preset;
an unknown key or a value of the wrong type is a one-line error with its YAML path.
The sweep's config (:mod:`fusionlab.sweep.config`) builds on :class:`RunConfig`.
"""
from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import yaml

from fusionlab.errors import FusionlabError


@dataclass
class ModelSection:
    """Which model, which fusion block where, and what it starts from.

    Attributes:
        preset: a model preset (``fusionlab list``).
        fusion: a fusion block name, or null for the RGB-only baseline (no depth branch).
        fusion_point: ``neck`` (fuse the two image embeddings), ``neck_inputs`` (every neck
            input stage) or one stage such as ``stage3``.
        fusion_kwargs: options of the fusion block (e.g. ``{alpha: channel}``).
        depth_input: ``replicate`` (depth to three channels, the paper) or ``stem1``.
        overrides: any other :class:`fusionlab.models.SamConfig` field.
        checkpoint: weights to start from: an official EfficientViT-SAM ``.pt`` or a
            fusionlab ``.safetensors``; relative paths are resolved from the config file.
        init_depth_from_rgb: start the depth encoder from the RGB encoder's weights.
    """

    preset: str = "efficientvit-sam-demo"
    fusion: Optional[str] = None
    fusion_point: str = "neck"
    fusion_kwargs: Dict[str, Any] = field(default_factory=dict)
    depth_input: str = "replicate"
    overrides: Dict[str, Any] = field(default_factory=dict)
    checkpoint: Optional[str] = None
    init_depth_from_rgb: bool = True

    def architecture(self):
        """The model this section describes, with fresh weights."""
        from fusionlab.models import build_model

        return build_model(self.preset, fusion=self.fusion, fusion_point=self.fusion_point,
                           fusion_kwargs=dict(self.fusion_kwargs), depth_input=self.depth_input, **self.overrides)

    def build(self, checkpoint: Optional[str] = None):
        """The model with ``checkpoint`` (default: this section's) loaded.

        ``init_depth_from_rgb`` copies the RGB encoder into the depth encoder: after an official
        (RGB) checkpoint is loaded, or, without a checkpoint, from the fresh RGB weights.
        """
        from fusionlab.models import load_checkpoint

        model = self.architecture()
        checkpoint = checkpoint or self.checkpoint
        if checkpoint:
            load_checkpoint(model, checkpoint, init_depth_from_rgb=self.init_depth_from_rgb)
        elif self.init_depth_from_rgb and model.has_depth:
            model.init_depth_from_rgb()
        return model


@dataclass
class DataSection:
    """Datasets for training and evaluation (``fusionlab list`` shows the names).

    ``train`` and ``val`` are the dataset options (e.g. ``{split: train, num_images: 200}``).
    """

    dataset: str = "synthetic"
    train: Dict[str, Any] = field(default_factory=lambda: {"split": "train"})
    val: Dict[str, Any] = field(default_factory=lambda: {"split": "val"})
    eval_dataset: Optional[str] = None


@dataclass
class DepthSection:
    """The depth source (``fusionlab list``) and its options; ignored by RGB-only models."""

    source: str = "dataset"
    options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainSection:
    """The official EfficientViT-SAM recipe by default, sized down for the CPU demo.

    Per image, ``box_prob`` of the steps prompt with the sampled masks' boxes, the rest with
    1…``max_points`` positive points inside each mask; ``multimask_prob`` of the steps use
    multimask output with only the best of the masks receiving gradient; loss
    ``bce_weight``·BCE + ``dice_weight``·dice (+ ``iou_weight``·MSE of the IoU head, as SAM
    trains it, so that picking the output with the best predicted IoU works); AdamW with weight decay off on norms and
    biases; cosine schedule after ``warmup_steps``; gradient clipping.
    """

    epochs: int = 4
    batch_size: int = 4
    masks_per_image: int = 64
    lr: float = 1e-4
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.1
    warmup_steps: int = 0
    grad_clip: float = 2.0
    box_prob: float = 0.5
    max_points: int = 10
    multimask_prob: float = 0.5
    bce_weight: float = 20.0
    dice_weight: float = 1.0
    iou_weight: float = 1.0
    freeze: List[str] = field(default_factory=list)
    lr_multipliers: Dict[str, float] = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    num_workers: int = 0
    max_steps: Optional[int] = None
    save_checkpoint: bool = True
    log_every: int = 1


@dataclass
class EvalSection:
    """The official zero-shot protocol: box prompts and N-click prompts, mIoU by object size.

    Attributes:
        prompts: any of ``box`` and ``clickN`` (N clicks, each at the maximum of the
            distance transform of the larger error region).
        drop_depth: evaluate with the depth replaced by a constant (depth dropped at test time).
        detections: a COCO-results JSON of detector boxes; then mask AP is reported too.
        max_detections: detections per image scored by mask AP (COCO 100; LVIS uses 300).
        max_images: evaluate only the first images (null: all).
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
        prompt_batch: at most this many prompts per decoder call (bounds memory on images
            with hundreds of objects; results do not depend on it).
    """

    prompts: List[str] = field(default_factory=lambda: ["box", "click1", "click3"])
    drop_depth: bool = False
    detections: Optional[str] = None
    max_detections: int = 100
    max_images: Optional[int] = None
    device: str = "auto"
    prompt_batch: int = 64


@dataclass
class RunConfig:
    """One training + evaluation run."""

    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    depth: DepthSection = field(default_factory=DepthSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)
    plugins: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def resolve_device(name: str, key: str):
    """The torch device a config's ``device`` value names: ``auto`` is CUDA when there is one.

    ``key`` is the config key quoted in the error (``train.device``).
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise FusionlabError(f"{key}: {name!r} is not a torch device; expected auto, cpu, cuda or cuda:N") from exc


def read_yaml(path: Union[str, Path]) -> Dict[str, Any]:
    """A YAML file's top-level mapping; a missing or malformed file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise FusionlabError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FusionlabError(f"{path}: invalid YAML{where}: {problem}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FusionlabError(f"{path}: expected a mapping of sections at the top level, got {type(data).__name__}")
    return data


T = typing.TypeVar("T")


def from_dict(cls: typing.Type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from a mapping, checking every key and type.

    ``where`` is the YAML path prefix quoted in errors (``"fusion.yaml: train"``).
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FusionlabError(f"{where}: expected a mapping, got {_type_name(data)} {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise FusionlabError(f"{where}.{unknown[0]}: unknown key; allowed keys: {', '.join(fields)}")
    values = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    return cls(**values)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if hint is Any:
        return value
    if origin in (list, List):
        if not isinstance(value, list):
            raise FusionlabError(f"{where}: expected a list, got {_type_name(value)} {value!r}")
        return [_coerce(args[0] if args else Any, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise FusionlabError(f"{where}: expected a mapping, got {_type_name(value)} {value!r}")
        return {k: _coerce(args[1] if args else Any, v, f"{where}.{k}") for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise FusionlabError(f"{where}: expected true or false, got {_type_name(value)} {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FusionlabError(f"{where}: expected an integer, got {_type_name(value)} {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FusionlabError(f"{where}: expected a number, got {_type_name(value)} {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise FusionlabError(f"{where}: expected a string, got {_type_name(value)} {value!r}")
        return value
    return value


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def check_options(factory: Callable, options: Dict[str, Any], where: str, what: str) -> None:
    """Raise a one-line error if ``options`` are not keyword arguments ``factory`` accepts."""
    params = inspect.signature(factory).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in options:
        if key not in allowed:
            raise FusionlabError(f"{where}.{key}: unknown option of {what}; allowed: {', '.join(allowed) or '(none)'}")


def validate_names(config: RunConfig, source: str) -> None:
    """Check every registry name and its options in ``config`` (after plugins are imported)."""
    from fusionlab.data import DATASETS
    from fusionlab.depth import DEPTH_SOURCES
    from fusionlab.fusion import FUSIONS
    from fusionlab.models import MODELS, SamConfig

    def known(registry, name: str, where: str):
        if name not in registry:
            raise FusionlabError(f"{source}: {where}: {registry.unknown_message(name)}")
        return registry.get(name)

    known(MODELS, config.model.preset, "model.preset")
    if config.model.fusion is not None:
        block = known(FUSIONS, config.model.fusion, "model.fusion")
        check_options(block, config.model.fusion_kwargs, f"{source}: model.fusion_kwargs",
                      f"fusion block {config.model.fusion!r}")
    sam_fields = {f.name for f in dataclasses.fields(SamConfig)}
    for key in config.model.overrides:
        if key not in sam_fields:
            raise FusionlabError(f"{source}: model.overrides.{key}: unknown model field; allowed: "
                                 f"{', '.join(sorted(sam_fields))}")
    for split in ("train", "val"):
        dataset_name = config.data.eval_dataset if split == "val" and config.data.eval_dataset else config.data.dataset
        dataset = known(DATASETS, dataset_name, "data.dataset")
        check_options(dataset, getattr(config.data, split), f"{source}: data.{split}", f"dataset {dataset_name!r}")
    depth = known(DEPTH_SOURCES, config.depth.source, "depth.source")
    check_options(depth, config.depth.options, f"{source}: depth.options", f"depth source {config.depth.source!r}")


def load_run_config(path: Union[str, Path], overrides: Optional[List[str]] = None) -> RunConfig:
    """Read, type-check and validate a run config YAML; ``overrides`` are ``a.b=value`` strings."""
    from fusionlab.registry import import_plugins

    data = read_yaml(path)
    for item in overrides or []:
        apply_override(data, item)
    config = from_dict(RunConfig, data, str(path))
    import_plugins(config.plugins, f"{path}: plugins")
    validate_names(config, str(path))
    if config.model.checkpoint and not Path(config.model.checkpoint).is_absolute():
        config.model.checkpoint = str((Path(path).parent / config.model.checkpoint).resolve())
    return config


def apply_override(data: Dict[str, Any], item: str) -> None:
    """Apply ``section.key=value`` (value parsed as YAML) to a nested mapping."""
    if "=" not in item:
        raise FusionlabError(f"override {item!r}: expected section.key=value")
    dotted, raw = item.split("=", 1)
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise FusionlabError(f"override {item!r}: {key} is not a section")
    node[keys[-1]] = yaml.safe_load(raw)
