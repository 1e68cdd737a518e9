"""Typed run configuration, built from YAML, and its one check.

A run = one model trained on one dataset with one depth source, then evaluated. Every
field has a default that runs on the embedded synthetic dataset with the CPU demo preset.
Each section checks its own values (``check(where)``); :func:`validate` runs them all, with
the registries' names and options and the files the config reads, and is what every entry
point uses (``fusionlab train``/``eval``/``depth``, :func:`fusionlab.sweep.load_sweep` for the
base and every variant, :func:`fusionlab.train.train`), so a value that a run would reject is
refused when the file loads, with its YAML path, before anything trains or writes.

Paths a config names are read relative to the YAML file that names them (:func:`resolve_paths`;
``--set`` values count as written in that file); output locations that the commands take
(``--out``, a sweep's ``results_dir`` and ``storage``) are relative to the working directory.
The sweep's config (:mod:`fusionlab.sweep.config`) builds on :class:`RunConfig`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Literal, Optional, Tuple, Union

import yaml

from fusionlab.errors import FusionlabError
from fusionlab.loggers.kinds import check_installed
from fusionlab.models.config import SamConfig
from fusionlab.models.parts import Part
from fusionlab.typecheck import InputPath, check_fields, from_dict, path_role, yaml_key

__all__ = ["DataSection", "DepthSection", "EvalSection", "ModelSection", "RunConfig", "TrainSection", "apply_override",
           "cpu_threads", "effective_config", "file_digest", "from_dict", "load_run_config", "parse_prompts", "read_yaml", "resolve_device",
           "resolve_paths", "result_key", "set_dotted", "validate"]


class _ModelMethods:
    """What a ``model:`` section does: check itself, resolve its architecture against the preset, build, load."""

    def check(self, where: str = "model") -> None:
        """One-line errors (prefixed ``where``, e.g. ``x.yaml: model``) for a value the model cannot
        be built with: types, the preset, the architecture's fields (a fusion point the model lacks,
        a depth size that is no multiple of its stride ...), the fusion block and its options, a
        depth encoder that cannot serve the fusion point, a checkpoint that does not exist."""
        from fusionlab.fusion import FUSIONS
        from fusionlab.models import MODELS

        check_fields(self, where)
        MODELS.check_options(self.preset, {}, f"{where}.preset")
        try:
            architecture = self.sam_config()
        except FusionlabError as exc:
            raise FusionlabError(f"{where}: {exc}") from None
        if self.fusion is not None:
            from fusionlab.models.depth_encoders import check_depth_encoder

            FUSIONS.check_options(self.fusion, architecture.fusion_kwargs, f"{where}.fusion_kwargs",
                                  f"{where}.fusion")
            check_depth_encoder(architecture, where)

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
_SAM_HINTS = typing.get_type_hints(SamConfig, include_extras=True)
ModelSection = dataclasses.make_dataclass(
    "ModelSection",
    [("preset", str, field(default="efficientvit-sam-demo")),
     ("checkpoint", Optional[InputPath], field(default=None)),
     ("init_depth_from_rgb", bool, field(default=True)),
     ("fusion", Optional[str], field(default=None))]
    + [(name, Optional[_SAM_HINTS[name]], field(default=None)) for name in SAM_FIELDS],
    bases=(_ModelMethods,),
    namespace={"__doc__": """Which model, which fusion block where, and what it starts from.

    Attributes:
        preset: a model preset (``fusionlab list models``); it gives every architecture field.
        checkpoint: weights to start from: an official EfficientViT-SAM ``.pt`` or a
            fusionlab ``.safetensors``.
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

    def check(self, where: str = "data", training: bool = True) -> None:
        """One-line errors for an unknown dataset, an unknown, missing or mistyped option, and, when
        ``training``, a training split the dataset cannot make without options."""
        from fusionlab.data import DATASETS

        check_fields(self, where)
        for split in ("train", "val"):
            options = getattr(self, split)
            if options is None:
                continue
            key = "eval_dataset" if split == "val" and self.eval_dataset else "dataset"
            DATASETS.check_options(getattr(self, key), options, f"{where}.{split}", f"{where}.{key}")
        if training:
            self.train_options(where)

    def train_options(self, where: str = "data") -> Dict[str, Any]:
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
            raise FusionlabError(f"{where}.train: missing; training needs the training split's options, e.g. "
                                 f"data.train: {{{example}}} for dataset {self.dataset!r}")
        return {}


@dataclass
class DepthSection:
    """The depth source (``fusionlab list``) and its options; ignored by RGB-only models."""

    source: str = "dataset"
    options: Dict[str, Any] = field(default_factory=dict)

    def check(self, where: str = "depth") -> None:
        """One-line errors for an unknown source and an unknown, missing or mistyped option."""
        from fusionlab.depth import DEPTH_SOURCES

        check_fields(self, where)
        DEPTH_SOURCES.check_options(self.source, self.options, f"{where}.options", f"{where}.source")


Precision = Literal["auto", "fp32", "bf16"]
LoggerKind = Literal["tensorboard", "wandb", "mlflow"]
# A device a config may name; whether this machine has it is checked when a run starts (resolve_device).
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")
# What each number of the train section must be; NaN fails every comparison, so it is refused too.
_POSITIVE = (lambda v: 0 < v < math.inf, "a finite number > 0")
_NON_NEGATIVE = (lambda v: 0 <= v < math.inf, "a finite number >= 0")
_PROBABILITY = (lambda v: 0 <= v <= 1, "a number in [0, 1]")
_AT_LEAST_ONE = (lambda v: v >= 1, "an integer >= 1")
_AT_LEAST_ZERO = (lambda v: v >= 0, "an integer >= 0")
_OPTIONAL_AT_LEAST_ONE = (lambda v: v is None or v >= 1, "an integer >= 1 or null")
NUMBER_RULES: Dict[str, Tuple[Callable[[Any], bool], str]] = {
    "lr": _POSITIVE, "weight_decay": _NON_NEGATIVE, "grad_clip": (_NON_NEGATIVE[0], "a finite number >= 0 (0: off)"),
    "bce_weight": _NON_NEGATIVE, "dice_weight": _NON_NEGATIVE, "iou_weight": _NON_NEGATIVE,
    "box_prob": _PROBABILITY, "multimask_prob": _PROBABILITY,
    "epochs": _AT_LEAST_ONE, "batch_size": _AT_LEAST_ONE, "masks_per_image": _AT_LEAST_ONE,
    "max_points": _AT_LEAST_ONE, "log_every": _AT_LEAST_ONE, "warmup_steps": _AT_LEAST_ZERO,
    "num_workers": _AT_LEAST_ZERO, "interactive_rounds": _AT_LEAST_ZERO, "devices_per_cell": _AT_LEAST_ONE,
    "seed": _AT_LEAST_ZERO,  # numpy's generators refuse negative seeds
    "steps": _OPTIONAL_AT_LEAST_ONE, "max_steps": _OPTIONAL_AT_LEAST_ONE,
    "resume_every": (_NON_NEGATIVE[0], "a finite number of minutes >= 0 (0: off)"),
}


def check_number_rules(section: Any, rules: Dict[str, Tuple[Callable[[Any], bool], str]], where: str) -> None:
    """``{where}.{name}: {value} must be {expected}`` for the first field of ``section`` breaking its rule."""
    for name, (valid, expected) in rules.items():
        if not valid(getattr(section, name)):
            raise FusionlabError(f"{where}.{name}: {getattr(section, name)} must be {expected}")


def check_device(name: str, where: str) -> None:
    """Refuse a device name no machine has (``gpu``, ``cuda0``); whether this one has it is checked at run time."""
    if not _DEVICE.fullmatch(name):
        raise FusionlabError(f"{where}: {name!r} is not a device; expected auto, cpu, mps, cuda or cuda:N")


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
        freeze, lr_multipliers: parts of the model (:data:`fusionlab.models.parts.PARTS`) kept
            fixed, and learning-rate factors per part.
        device: ``auto`` (CUDA when available), ``cpu``, ``mps``, ``cuda`` or ``cuda:N``.
        precision: ``auto`` (bf16 autocast on a GPU that computes bf16 natively, else fp32; logged),
            ``fp32`` or ``bf16``.
        channels_last: convolution weights, and so activations, in channels-last layout, which
            GPU convolutions under bf16 prefer (see :mod:`fusionlab.models.speed`).
        compile: ``torch.compile`` the encoders (RGB backbone and neck, depth encoder), at the
            first step. Neither option changes the checkpoint's keys or, beyond float rounding,
            the losses. Refused with several processes (``devices_per_cell`` > 1, torchrun): there
            BatchNorm becomes SyncBatchNorm, where dynamo breaks the graph at every layer.
        deterministic: the flags torch documents for reproducible runs: deterministic algorithms
            (a warning for an op that has none, such as bilinear upsampling's backward on CUDA),
            cuDNN deterministic and not benchmarking, no TF32, and cuBLAS's fixed workspace. On
            the CPU every run is bitwise reproducible without it (see docs/resuming.md).
        devices_per_cell: in a sweep, the processes one cell trains on, through torchrun (DDP,
            ``batch_size`` the global batch); its evaluation runs in the worker. On GPUs, a
            worker on ``cuda:N`` trains on ``cuda:N`` … ``cuda:N+K-1``: by default a sweep starts
            one worker per K GPUs; with ``--devices``, list every K-th GPU. On the CPU the K
            processes share the worker's threads. A single run: ``torchrun --nproc_per_node K
            -m fusionlab train CONFIG``.
        resume_every: minutes of training between two resume points (0: none). A resume point
            holds everything the run needs to continue exactly where it stood (see
            :mod:`fusionlab.resume`): ``fusionlab train`` on the same ``--out`` folder, and a
            sweep cell whose worker stopped, continue from the last one. Minutes rather than
            steps, so that the cost stays a small share of any model's training; a stop request
            (Ctrl-C, a scheduler's signal) writes one at once.
        loggers: experiment trackers that follow the run besides ``train_log.csv``, any of
            ``tensorboard``, ``wandb`` and ``mlflow`` (each an extra: ``pip install
            'fusionlab[loggers]'``), every ``log_every`` steps and with the final metrics and costs
            (see :mod:`fusionlab.loggers` and docs/watching.md). W&B runs offline unless
            ``WANDB_MODE`` or a W&B login says otherwise; MLflow writes ``mlflow.db`` beside
            the run (a sweep's: in its results folder) unless ``MLFLOW_TRACKING_URI`` is set.
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
    freeze: List[Part] = field(default_factory=list)
    lr_multipliers: Dict[Part, float] = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    precision: Precision = "auto"
    num_workers: int = 0
    steps: Optional[int] = None
    max_steps: Optional[int] = None
    interactive_rounds: int = 0
    interactive_mask_input: bool = False
    save_checkpoint: bool = True
    log_every: int = 1
    channels_last: bool = False
    compile: bool = False
    deterministic: bool = False
    devices_per_cell: int = 1
    resume_every: float = 10.0
    loggers: List[LoggerKind] = field(default_factory=list)

    def check(self, where: str = "train") -> None:
        """One-line errors for option values the loop cannot run with, or that make no sense."""
        check_fields(self, where)
        check_number_rules(self, NUMBER_RULES, where)
        for name, value in self.lr_multipliers.items():
            if not _NON_NEGATIVE[0](value):
                raise FusionlabError(f"{where}.lr_multipliers.{name}: {value} must be {_NON_NEGATIVE[1]}")
        if self.steps is not None and self.max_steps is not None:
            raise FusionlabError(f"{where}.steps: {self.steps} and max_steps: {self.max_steps} both given; "
                                 "expected one: steps (exactly that many) or max_steps (a cap on the epochs)")
        if len(self.betas) != 2 or not all(0 <= beta < 1 for beta in self.betas):
            raise FusionlabError(f"{where}.betas: {self.betas} must be two numbers in [0, 1)")
        check_device(self.device, f"{where}.device")
        if self.compile and self.devices_per_cell > 1:
            raise FusionlabError(f"{where}.compile: true with devices_per_cell: {self.devices_per_cell} is refused: "
                                 f"{COMPILE_WITH_PROCESSES}")
        check_installed(self.loggers, f"{where}.loggers")


# why train.compile is refused with several processes (config check and torchrun alike)
COMPILE_WITH_PROCESSES = ("with several processes BatchNorm becomes SyncBatchNorm, where torch.compile breaks the "
                          "graph at every layer (many small graphs, long compiles, little speed); set compile: false")

_CLICK_PROMPT = re.compile(r"click([1-9][0-9]*)")


def parse_prompts(prompts: List[str], where: str = "eval.prompts") -> Tuple[bool, List[int]]:
    """``["box", "click1", "click3"]`` → (box wanted, sorted click counts); anything else is an error."""
    if not prompts:
        raise FusionlabError(f"{where}: empty; expected any of box and clickN (e.g. click1, click3)")
    clicks = []
    for i, prompt in enumerate(prompts):
        match = _CLICK_PROMPT.fullmatch(str(prompt))
        if prompt != "box" and not match:
            raise FusionlabError(f"{where}[{i}]: {prompt!r} is not a prompt; expected box or clickN with N >= 1 "
                                 f"(e.g. click1, click3)")
        if match:
            clicks.append(int(match.group(1)))
    return "box" in prompts, sorted(set(clicks))


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
        device: ``auto`` (CUDA when available), ``cpu``, ``mps``, ``cuda`` or ``cuda:N``.
        prompt_batch: at most this many prompts per decoder call (bounds memory on images
            with hundreds of objects; results do not depend on it).
        save_predictions: write the predicted masks as COCO results JSON, one file per prompt
            kind (``predictions_box.json`` ...), with ``images.json`` and a small preview of each
            image's depth input (see :mod:`fusionlab.report.loading`); off for huge evaluations.
    """

    prompts: List[str] = field(default_factory=lambda: ["box", "click1", "click3"])
    drop_depth: bool = False
    detections: Optional[InputPath] = None
    max_detections: int = 100
    max_images: Optional[int] = None
    device: str = "auto"
    prompt_batch: int = 64
    save_predictions: bool = True

    def check(self, where: str = "eval") -> None:
        """One-line errors for a prompt that is not one, counts below 1 and a device no machine has."""
        check_fields(self, where)
        parse_prompts(self.prompts, f"{where}.prompts")
        check_number_rules(self, {"max_detections": _AT_LEAST_ONE, "prompt_batch": _AT_LEAST_ONE,
                                  "max_images": _OPTIONAL_AT_LEAST_ONE}, where)
        check_device(self.device, f"{where}.device")


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


SECTIONS = ("model", "data", "depth", "train", "eval")


def validate(config: RunConfig, source: str = "", training: bool = True) -> None:
    """Check every value of ``config``, as every entry point does before anything is built or written.

    Imports the config's plugins, runs each section's ``check`` (types, values, registry names and
    options, the model's architecture) and checks that every file the config reads exists.
    ``source`` prefixes the YAML paths in errors (``fusion.yaml: variants[2]``); ``training``:
    the run trains, so its training split must be given or need no options.
    """
    from fusionlab.registry import import_plugins

    import_plugins(config.plugins, yaml_key(source, "plugins"))
    config.model.check(yaml_key(source, "model"))
    config.data.check(yaml_key(source, "data"), training=training)
    config.depth.check(yaml_key(source, "depth"))
    config.train.check(yaml_key(source, "train"))
    config.eval.check(yaml_key(source, "eval"))
    for key, role, holder, name in path_slots(config):
        value = holder[name] if isinstance(holder, dict) else getattr(holder, name)
        if role.reads and isinstance(value, (str, Path)) and not Path(value).exists():
            raise FusionlabError(f"{yaml_key(source, key)}: {value} does not exist (a relative path is read from the "
                                 f"folder of the YAML file that names it)")


# ------------------------------------------------------------------------------ the result key
# Fields that change where or how fast a run goes, or how it can be resumed, not its result: left
# out of the result key (and so of a sweep's cell keys).
RUNTIME_FIELDS = {"train": ("device", "num_workers", "save_checkpoint", "log_every", "channels_last", "compile",
                            "devices_per_cell", "resume_every", "deterministic", "loggers"),
                  "eval": ("device", "prompt_batch")}
# Architecture fields only the depth branch reads; with ``model.init_depth_from_rgb`` and
# ``eval.drop_depth``, an RGB-only model never reads them: left out of its result key, so that
# changing them keeps its results.
DEPTH_BRANCH_FIELDS = ("fusion_point", "fusion_kwargs", "depth_encoder", "depth_encoder_kwargs", "depth_input",
                       "depth_size")


def result_key(config: RunConfig) -> str:
    """8 hex digits over what decides a run's result but its seed: :func:`effective_config`."""
    return hashlib.sha256(json.dumps(effective_config(config), sort_keys=True, default=str).encode()).hexdigest()[:8]


def effective_config(config: RunConfig) -> Dict[str, Any]:
    """What decides a run's result but its seed: its effective config and the files it reads (by digest).

    A sweep's cell key is made of it (:class:`fusionlab.sweep.config.Cell`), and a resume point
    records it (:mod:`fusionlab.resume`). Left out: the seed, where and how fast the run goes
    (:data:`RUNTIME_FIELDS`), plugins (their names; the code is not hashed) and, for an RGB-only
    model, everything only the depth branch uses (:data:`DEPTH_BRANCH_FIELDS`,
    ``init_depth_from_rgb``, the depth section, ``eval.drop_depth``, lr multipliers and freezes
    of depth-only parts). The model counts as the architecture it builds; the checkpoint and the
    detections file count by their contents.
    """
    from fusionlab.models.parts import DEPTH_ONLY_PARTS

    data = config.to_dict()
    data["train"].pop("seed")
    for section, names in RUNTIME_FIELDS.items():
        for name in names:
            data[section].pop(name)
    data.pop("plugins")
    # the architecture as built (preset + fields), so that spelling out a preset's value changes nothing
    architecture = config.model.sam_config().to_dict()
    data["model"] = {"preset": config.model.preset, "checkpoint": config.model.checkpoint,
                     "init_depth_from_rgb": config.model.init_depth_from_rgb, "architecture": architecture}
    if config.model.fusion is None:
        data.pop("depth")
        data["model"].pop("init_depth_from_rgb")
        data["eval"].pop("drop_depth")
        for name in DEPTH_BRANCH_FIELDS:
            architecture.pop(name, None)  # a SAM ViT reference model has no depth fields
        train = data["train"]
        train["lr_multipliers"] = {k: v for k, v in train["lr_multipliers"].items() if k not in DEPTH_ONLY_PARTS}
        train["freeze"] = [part for part in train["freeze"] if part not in DEPTH_ONLY_PARTS]
    if config.model.checkpoint:
        data["model"]["checkpoint"] = file_digest(Path(config.model.checkpoint))
    pretrained = architecture.get("depth_encoder_kwargs", {}).get("pretrained")
    if isinstance(pretrained, str) and Path(pretrained).is_file():
        architecture["depth_encoder_kwargs"]["pretrained"] = file_digest(Path(pretrained))
    if config.eval.detections and Path(config.eval.detections).is_file():
        data["eval"]["detections"] = file_digest(Path(config.eval.detections))
    return data


_DIGESTS: Dict[Tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """``sha256:<hex>`` of a file's contents, remembered by (path, size, mtime) for this process."""
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        _DIGESTS[memo] = f"sha256:{digest.hexdigest()}"
    return _DIGESTS[memo]


def path_slots(config: RunConfig) -> Iterator[Tuple[str, Any, Any, str]]:
    """Every path the config names: ``(YAML key, its PathRole, the dict or section holding it, its name)``.

    Paths are the fields and registry options annotated :data:`~fusionlab.typecheck.InputPath`,
    ``OutputPath`` or ``HubIdOrPath``; a name or option the registries do not know yields nothing
    (:func:`validate` reports it).
    """
    from fusionlab.data import DATASETS
    from fusionlab.depth import DEPTH_SOURCES
    from fusionlab.models.depth_encoders import DEPTH_ENCODERS, split_depth_encoder

    for section in SECTIONS:
        holder = getattr(config, section)
        hints = typing.get_type_hints(type(holder), include_extras=True)
        for f in dataclasses.fields(holder):
            role = path_role(hints[f.name])
            if role is not None and getattr(holder, f.name) is not None:
                yield f"{section}.{f.name}", role, holder, f.name
    if config.model.depth_encoder_kwargs:
        try:
            kind, _ = split_depth_encoder(config.model.depth_encoder or "same")
        except FusionlabError:
            kind = None
        yield from _option_slots(DEPTH_ENCODERS, kind, config.model.depth_encoder_kwargs, "model.depth_encoder_kwargs")
    for split in ("train", "val"):
        name = config.data.eval_dataset if split == "val" and config.data.eval_dataset else config.data.dataset
        yield from _option_slots(DATASETS, name, getattr(config.data, split) or {}, f"data.{split}")
    yield from _option_slots(DEPTH_SOURCES, config.depth.source, config.depth.options, "depth.options")


def _option_slots(registry: Any, name: Optional[str], options: Dict[str, Any], key: str
                  ) -> Iterator[Tuple[str, Any, Any, str]]:
    """The path-valued options of one registry entry; those an entry with ``wraps`` passes on, by the entry
    they go to."""
    if name is None or name not in registry or not isinstance(options, dict):
        return
    hints = registry.option_hints(name)
    for option, value in options.items():
        role = path_role(hints.get(option))
        if role is not None and value is not None:
            yield f"{key}.{option}", role, options, option
    wrapped = getattr(registry.get(name), "wraps", None)
    known = registry.options(name)
    if wrapped in known:
        inner = options.get(wrapped, known[wrapped].default)
        extra = {k: v for k, v in options.items() if k not in known}
        for slot in _option_slots(registry, inner, extra, key):
            yield slot[0], slot[1], options, slot[3]


def resolve_paths(config: RunConfig, folder: Path) -> None:
    """The one path resolver: make every relative path the config names absolute, read from ``folder``
    (the folder of the YAML file that names it); ``~`` is expanded. A hub id (Depth Anything's
    ``model``) stays as it is unless a folder of that name is there."""
    for _, role, holder, name in list(path_slots(config)):
        value = holder[name] if isinstance(holder, dict) else getattr(holder, name)
        if not isinstance(value, (str, Path)):
            continue  # e.g. pretrained: true
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = (folder / path).resolve()
            if role.hub_id and not path.exists():
                continue
        resolved = str(path)
        if resolved != str(value):
            if isinstance(holder, dict):
                holder[name] = resolved
            else:
                setattr(holder, name, resolved)


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


# YAML 1.1 reads 3e-4 (no dot) as a string; a learning rate written so is a number to anyone who writes it.
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
                                    list("-+0123456789"))
# YAML 1.1 reads 4:00:00 as the base-60 number 14400; a time limit (slurm.time) written so is the string it looks
# like, as in YAML 1.2: base-60 forms resolve as strings, ahead of the int and float resolvers.
_SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
_StrictLoader.yaml_implicit_resolvers = {
    first: ([("tag:yaml.org,2002:str", _SEXAGESIMAL)] if first and first in "+-0123456789" else []) + list(found)
    for first, found in _StrictLoader.yaml_implicit_resolvers.items()}


def parse_yaml(text: str) -> Any:
    """The value of a YAML text, read as every config is (:class:`_StrictLoader`: safe, no key twice, 3e-4 a number,
    4:00:00 a string)."""
    loader = _StrictLoader(text)  # a SafeLoader: it builds no arbitrary objects
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml(path: Union[str, Path]) -> Dict[str, Any]:
    """A YAML file's top-level mapping; a missing or malformed file, or a key given twice, is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise FusionlabError(f"config file {path} does not exist")
    try:
        data = parse_yaml(path.read_text())
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


def load_run_config(path: Union[str, Path], overrides: Optional[List[str]] = None, training: bool = True
                    ) -> RunConfig:
    """Read a run config YAML, apply ``overrides`` (``a.b=value`` strings), resolve its paths and
    :func:`validate` it; ``training``: the run trains (``fusionlab eval`` passes False)."""
    data = read_yaml(path)
    for item in overrides or []:
        apply_override(data, item)
    config = from_dict(RunConfig, data, str(path))
    from fusionlab.registry import import_plugins

    import_plugins(config.plugins, f"{path}: plugins")  # before the paths: a plugin's options may name files
    resolve_paths(config, Path(path).parent)
    validate(config, str(path), training=training)
    return config


def set_dotted(data: Dict[str, Any], dotted: str, value: Any, where: str = "") -> None:
    """The one dotted-key setter: ``data[a][b] = value`` for ``dotted = "a.b"``, creating mappings on the
    way; ``where`` prefixes the error when a part is not a mapping."""
    *parents, last = dotted.split(".")
    for key in parents:
        data = data.setdefault(key, {})
        if not isinstance(data, dict):
            raise FusionlabError(f"{where or dotted}: {key} is not a section")
    data[last] = value


def apply_override(data: Dict[str, Any], item: str) -> None:
    """Apply ``section.key=value`` (``--set``; the value parsed as YAML) to a nested mapping."""
    if "=" not in item:
        raise FusionlabError(f"override {item!r}: expected section.key=value")
    dotted, raw = item.split("=", 1)
    try:
        value = parse_yaml(raw)
    except yaml.YAMLError as exc:
        raise FusionlabError(f"override {item!r}: the value is not valid YAML ({str(exc).splitlines()[0]})") from None
    set_dotted(data, dotted, value, f"override {item!r}")
