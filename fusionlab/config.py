"""Typed run configuration, built from YAML.

A run = one model trained on one dataset with one depth source, then evaluated. Every
field has a default that runs on the embedded synthetic dataset with the CPU demo preset;
an unknown key or a value of the wrong type is a one-line error with its YAML path.
The sweep's config (:mod:`fusionlab.sweep.config`) builds on :class:`RunConfig`.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import yaml

from fusionlab.errors import FusionlabError, yaml_kind
from fusionlab.models.config import SamConfig


class _ModelMethods:
    """What a ``model:`` section does: resolve its architecture against the preset, build, load."""

    def architecture_fields(self) -> Dict[str, Any]:
        """The :class:`SamConfig` fields this section sets (``fusion`` always; the others when given)."""
        fields = {name: getattr(self, name) for name in SAM_FIELDS if getattr(self, name) is not None}
        fields["fusion"] = self.fusion
        return fields

    def sam_config(self):
        """The preset's :class:`~fusionlab.models.SamConfig` with this section's fields applied."""
        from fusionlab.models import model_config

        return model_config(self.preset, **self.architecture_fields())

    def architecture(self):
        """The model this section describes, with fresh weights."""
        from fusionlab.models import build_model

        return build_model(self.preset, **self.architecture_fields())

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


# Every architecture field of SamConfig is a key of ``model:`` under its own name; left out (null),
# it takes the preset's value. ``fusion`` is the exception: left out, the model is RGB-only.
SAM_FIELDS = tuple(f.name for f in dataclasses.fields(SamConfig) if f.name != "fusion")
_SAM_HINTS = typing.get_type_hints(SamConfig)
ModelSection = dataclasses.make_dataclass(
    "ModelSection",
    [("preset", str, field(default="efficientvit-sam-demo")),
     ("checkpoint", Optional[str], field(default=None)),
     ("init_depth_from_rgb", bool, field(default=True)),
     ("fusion", Optional[str], field(default=None))]
    + [(name, Optional[_SAM_HINTS[name]], field(default=None)) for name in SAM_FIELDS],
    bases=(_ModelMethods,),
    namespace={"__doc__": """Which model, which fusion block where, and what it starts from.

    Attributes:
        preset: a model preset (``fusionlab list models``); it gives every architecture field.
        checkpoint: weights to start from: an official EfficientViT-SAM ``.pt`` or a
            fusionlab ``.safetensors``; relative paths are resolved from the config file.
        init_depth_from_rgb: start the depth encoder from the RGB encoder's weights.
        fusion: a fusion block name, or null (the default) for the RGB-only baseline.
        every other :class:`fusionlab.models.SamConfig` field (``fusion_point``,
            ``fusion_kwargs``, ``depth_input``, ``depth_encoder``, ``grid``, ``image_size``, ...),
            under its own name: null takes the preset's value (docs/configuration.md lists them
            with the demo preset's values).
    """})
ModelSection.__module__ = __name__


@dataclass
class DataSection:
    """Datasets for training and evaluation (``fusionlab list`` shows the names).

    ``train`` and ``val`` are the dataset options (e.g. ``{split: train, num_images: 200}``).
    ``train`` left out (null) means "not given": an eval-only run needs none, and training
    then uses the dataset's defaults if it has an option-free form (``synthetic``: its train
    split), else it is an error (see :meth:`train_options`).
    """

    dataset: str = "synthetic"
    train: Optional[Dict[str, Any]] = None
    val: Dict[str, Any] = field(default_factory=lambda: {"split": "val"})
    eval_dataset: Optional[str] = None

    def train_options(self) -> Dict[str, Any]:
        """The options of the training split: ``train``, or ``{}`` when the dataset needs no option.

        A dataset with required options (``coco``: annotations, images) and no ``train`` is a
        one-line error naming them.
        """
        if self.train is not None:
            return dict(self.train)
        from fusionlab.data import DATASETS

        required = [name for name, p in DATASETS.options(self.dataset).items() if p.default is p.empty]
        if required:
            example = ", ".join(f"{name}: ..." for name in required)
            raise FusionlabError(f"data.train: missing; training needs the training split's options, e.g. "
                                 f"data.train: {{{example}}} for dataset {self.dataset!r}")
        return {}


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

    How long: ``epochs`` passes over the training split, cut short after ``max_steps`` steps
    when given (a cap: a warning says when it is larger than what the epochs give); or
    exactly ``steps`` optimiser steps, the loader cycling through as many epochs as that
    takes, ``epochs`` then ignored. Give ``steps`` or ``max_steps``, not both. The cosine
    schedule spans the steps that are taken.

    Interactive training (SAM's): with ``interactive_rounds`` N > 0, each step predicts from
    the first prompt, then N more times, each round adding one click per mask drawn uniformly
    from the error region of the previous round's mask (the output with the highest
    predicted IoU): positive on a missed pixel, negative on a wrongly covered one. With
    ``interactive_mask_input`` the previous round's low-res logits are also given as
    ``mask_input`` (SAM does; the click evaluation does not). The step's loss is the mean of
    the 1 + N rounds' losses. 0 rounds trains on the first prompt only.

    Attributes:
        channels_last: convolution weights, and so activations, in channels-last layout, which
            GPU convolutions under bf16 prefer (see :mod:`fusionlab.models.speed`).
        compile: ``torch.compile`` the encoders (RGB backbone and neck, depth encoder), at the
            first step. Neither option changes the checkpoint's keys or, beyond float rounding,
            the losses.
        devices_per_cell: in a sweep, the processes one cell trains on, through torchrun (DDP,
            ``batch_size`` the global batch); its evaluation runs in the worker. On GPUs, a
            worker on ``cuda:N`` trains on ``cuda:N`` … ``cuda:N+K-1``: by default a sweep starts
            one worker per K GPUs; with ``--devices``, list every K-th GPU. On the CPU the K
            processes share the worker's threads. A single run: ``torchrun --nproc_per_node K
            -m fusionlab train CONFIG``.
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
    steps: Optional[int] = None
    max_steps: Optional[int] = None
    interactive_rounds: int = 0
    interactive_mask_input: bool = False
    save_checkpoint: bool = True
    log_every: int = 1
    channels_last: bool = False
    compile: bool = False
    devices_per_cell: int = 1


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
        save_predictions: write the predicted masks as COCO results JSON, one file per prompt
            kind (``predictions_box.json`` ...), with ``images.json`` and a small preview of each
            image's depth input (see :mod:`fusionlab.report.loading`); off for huge evaluations.
    """

    prompts: List[str] = field(default_factory=lambda: ["box", "click1", "click3"])
    drop_depth: bool = False
    detections: Optional[str] = None
    max_detections: int = 100
    max_images: Optional[int] = None
    device: str = "auto"
    prompt_batch: int = 64
    save_predictions: bool = True


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
        device = torch.device(name)
    except RuntimeError as exc:
        raise FusionlabError(f"{key}: {name!r} is not a torch device; expected auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda":  # checked here, before anything is built or written, not by the driver later
        count = torch.cuda.device_count()
        if count == 0:
            raise FusionlabError(f"{key}: {name!r}: this machine has no CUDA device")
        if device.index is not None and device.index >= count:
            devices = "1 CUDA device (cuda:0)" if count == 1 else f"{count} CUDA devices (cuda:0..cuda:{count - 1})"
            raise FusionlabError(f"{key}: {name!r}: this machine has {devices}")
    return device


def cpu_threads(requested: Optional[str] = None) -> Tuple[int, str]:
    """How many CPU threads torch should use, and why (for the log).

    ``requested`` is ``--threads``: a positive integer or ``auto``; None falls back to
    ``$FUSIONLAB_THREADS``, then ``auto``. ``auto`` takes the cores other processes leave idle
    (cores minus the 1-minute load average, at least 1): threads on a busy core wait for it,
    and on a 2-core machine with one other job an evaluation ran 77x slower with 2 threads.
    """
    source = "--threads" if requested is not None else "FUSIONLAB_THREADS"
    value = str(requested if requested is not None else os.environ.get("FUSIONLAB_THREADS", "auto")).strip()
    cores = os.cpu_count() or 1
    if value == "auto":
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        return max(1, min(cores, cores - round(load))), f"auto: {cores} cores, 1-minute load {load:.1f}"
    if not value.isdigit() or int(value) < 1:
        raise FusionlabError(f"{source}={value!r}: expected a positive number of threads or 'auto'")
    return int(value), source


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Dict[Any, Any]:
        seen: Dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (first at line {seen[key].line + 1}); "
                    f"merge the two into one", key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Union[str, Path]) -> Dict[str, Any]:
    """A YAML file's top-level mapping; a missing or malformed file, or a key given twice, is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise FusionlabError(f"config file {path} does not exist")
    try:
        loader = _StrictLoader(path.read_text())  # a SafeLoader: it builds no arbitrary objects
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
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
        raise FusionlabError(f"{where}: expected a mapping, got {yaml_kind(data)} {data!r}")
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
    if origin in (tuple, Tuple) and args and args[-1] is not Ellipsis:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise FusionlabError(f"{where}: expected a list of {len(args)} values, got {yaml_kind(value)} {value!r}")
        return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin in (list, List):
        if not isinstance(value, list):
            raise FusionlabError(f"{where}: expected a list, got {yaml_kind(value)} {value!r}")
        return [_coerce(args[0] if args else Any, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise FusionlabError(f"{where}: expected a mapping, got {yaml_kind(value)} {value!r}")
        return {k: _coerce(args[1] if args else Any, v, f"{where}.{k}") for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise FusionlabError(f"{where}: expected true or false, got {yaml_kind(value)} {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FusionlabError(f"{where}: expected an integer, got {yaml_kind(value)} {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FusionlabError(f"{where}: expected a number, got {yaml_kind(value)} {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise FusionlabError(f"{where}: expected a string, got {yaml_kind(value)} {value!r}")
        return value
    return value


def validate_names(config: RunConfig, source: str) -> None:
    """Check every registry name and its options in ``config`` (after plugins are imported), and the
    model's architecture against its preset; errors carry the YAML path."""
    from fusionlab.data import DATASETS
    from fusionlab.depth import DEPTH_SOURCES
    from fusionlab.fusion import FUSIONS
    from fusionlab.models import MODELS

    MODELS.check_options(config.model.preset, {}, f"{source}: model.preset")
    try:
        architecture = config.model.sam_config()
    except FusionlabError as exc:
        raise FusionlabError(f"{source}: model: {exc}") from None
    if config.model.fusion is not None:
        from fusionlab.models.depth_encoders import check_depth_encoder

        FUSIONS.check_options(config.model.fusion, architecture.fusion_kwargs, f"{source}: model.fusion_kwargs",
                              f"{source}: model.fusion")
        check_depth_encoder(architecture, f"{source}: model")
    for split in ("train", "val"):
        options = getattr(config.data, split)
        if options is None:
            continue
        key = "eval_dataset" if split == "val" and config.data.eval_dataset else "dataset"
        DATASETS.check_options(getattr(config.data, key), options, f"{source}: data.{split}", f"{source}: data.{key}")
    DEPTH_SOURCES.check_options(config.depth.source, config.depth.options, f"{source}: depth.options",
                                f"{source}: depth.source")


def load_run_config(path: Union[str, Path], overrides: Optional[List[str]] = None) -> RunConfig:
    """Read, type-check and validate a run config YAML; ``overrides`` are ``a.b=value`` strings."""
    from fusionlab.registry import import_plugins

    data = read_yaml(path)
    for item in overrides or []:
        apply_override(data, item)
    config = from_dict(RunConfig, data, str(path))
    import_plugins(config.plugins, f"{path}: plugins")
    resolve_model_paths(config.model, Path(path).parent)
    validate_names(config, str(path))
    return config


def resolve_model_paths(model: Any, folder: Path) -> None:
    """Make the files a ``model:`` section names (``checkpoint``, a depth encoder's ``pretrained``
    weights file) absolute, reading relative paths from ``folder`` (the config file's)."""
    if model.checkpoint and not Path(model.checkpoint).is_absolute():
        model.checkpoint = str((folder / model.checkpoint).resolve())
    pretrained = (model.depth_encoder_kwargs or {}).get("pretrained")
    if isinstance(pretrained, str) and not Path(pretrained).is_absolute():
        model.depth_encoder_kwargs = {**model.depth_encoder_kwargs, "pretrained": str((folder / pretrained).resolve())}


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
