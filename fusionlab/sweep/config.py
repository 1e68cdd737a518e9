"""The sweep YAML: a base run, named variants and/or a grid, seeds, where results go.

Layout (every key optional but ``base`` in practice)::

    name: fusion                 # results/<name>/; default: the file's stem
    storage: null                # optuna storage URL, or journal:<path>; default sqlite:///results/<name>/study.db
    seeds: [0, 1, 2]
    plugins: [my_fusions]        # modules imported before any name is checked
    base: {model: ..., data: ..., depth: ..., train: ..., eval: ...}   # a RunConfig mapping
    variants:                    # overrides of base, deep-merged
      - {name: add, group: fusion, model: {fusion: add}}
      - {name: shuffled, group: control, model: {fusion: add}, depth: {source: shuffled}}
    grid: {model.fusion: [add, concat], model.fusion_point: [neck, stage3]}   # product, generated names
    # a grid key whose values are all numbers is the sweep's axis: every variant, the baseline
    # included, runs at each value (variant "add@num_images=25" ...), compared with the baseline there
    grid: {data.train.num_images: [25, 50, 100, 200]}
    search: {n_trials: 20, params: {train.lr: {low: 1.0e-5, high: 1.0e-3, log: true}}, pruner: median}
    keep_checkpoints: false
    latency: {runs: 10, warmup: 3}
    heartbeat: {interval: 30, grace: 120}
    slurm: {partition: gpu, time: "4:00:00", workers: 8}   # for --slurm: a job array of workers

The RGB-only baseline ``rgb_only`` (``model.fusion: null``) is added when not listed.
A sweep has at most one numeric axis (:class:`Axis`); with one, each design (a listed variant,
a combination of the grid's other keys, or ``base`` itself when it fuses and nothing else is
listed) is crossed with the axis values, and each variant is compared with the baseline at its
own value.
Every variant's RunConfig is built and its names checked when the file is loaded, so a
typo fails at once with its YAML path.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple, Union

from fusionlab.config import (SECTIONS, RunConfig, apply_override, check_number_rules, from_dict, read_yaml,
                              resolve_paths, result_key, set_dotted, validate)
from fusionlab.errors import FusionlabError
from fusionlab.registry import import_plugins
from fusionlab.typecheck import yaml_key
from fusionlab.results import GROUPS

BASELINE = "rgb_only"
# Depth sources that replace real depth by a signal without scene geometry: grid cells using them are controls.
CONTROL_SOURCES = ("constant", "noise", "shuffled", "rgb")
_AT_LEAST_ONE = (lambda v: v >= 1, "an integer >= 1")


@dataclass
class VariantSpec:
    """One named variant: overrides of ``base``, section by section.

    ``group``: ``fusion`` (an RGB-D design), ``encoder`` (a depth-encoder design), ``control``
    (a test of a hypothesis, e.g. shuffled depth), ``baseline`` (RGB-only) or ``reference``
    (a released model evaluated as it is, from ``model.checkpoint``: no training, one cell).
    """

    name: str = ""
    group: str = "fusion"
    label: Optional[str] = None
    model: Dict[str, Any] = field(default_factory=dict)
    data: Dict[str, Any] = field(default_factory=dict)
    depth: Dict[str, Any] = field(default_factory=dict)
    train: Dict[str, Any] = field(default_factory=dict)
    eval: Dict[str, Any] = field(default_factory=dict)


@dataclass
class SearchParam:
    """A continuous knob for the TPE search: uniform (or log-uniform) in ``[low, high]``."""

    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False


@dataclass
class SearchSection:
    """TPE search over continuous knobs of one variant, pruned on a quick val mIoU per epoch.

    Attributes:
        n_trials: trials to run in total (across workers and reruns).
        params: dotted RunConfig key -> range, e.g. ``train.lr: {low: 1.0e-5, high: 1.0e-3, log: true}``.
        pruner: ``median`` (stop a trial whose epoch score is below the median of earlier
            trials at that epoch) or ``none``.
        variant: the variant whose knobs are searched; default the first non-baseline one.
        eval_images: the first images of the val split, scored at each epoch end for pruning
            (their depth is prepared once per trial).
        startup_trials: finished trials before the median pruner starts pruning.
    """

    n_trials: int = 20
    params: Dict[str, SearchParam] = field(default_factory=dict)
    pruner: Literal["median", "none"] = "median"
    variant: Optional[str] = None
    eval_images: int = 8
    startup_trials: int = 5

    def check(self, where: str = "search") -> None:
        """One-line errors for counts below their minimum, no knob, a knob's key or range."""
        check_number_rules(self, {"n_trials": _AT_LEAST_ONE, "eval_images": _AT_LEAST_ONE,
                                  "startup_trials": (lambda v: v >= 0, "an integer >= 0")}, where)
        if not self.params:
            raise FusionlabError(f"{where}.params: expected at least one knob, e.g. train.lr: {{low: 1.0e-5, high: "
                                 f"1.0e-3, log: true}}")
        for key, knob in self.params.items():
            if key.split(".")[0] not in SECTIONS or "." not in key:
                raise FusionlabError(f"{where}.params.{key}: expected a dotted key under one of {', '.join(SECTIONS)}")
            if knob.low is None or knob.high is None or not knob.low < knob.high or (knob.log and knob.low <= 0):
                raise FusionlabError(f"{where}.params.{key}: expected low < high (and low > 0 with log: true), got "
                                     f"low={knob.low}, high={knob.high}")


@dataclass
class LatencySection:
    """Forward-latency measurement of each trained model against the RGB-only model."""

    enabled: bool = True
    runs: int = 10
    warmup: int = 3

    def check(self, where: str = "latency") -> None:
        check_number_rules(self, {"runs": _AT_LEAST_ONE, "warmup": (lambda v: v >= 0, "an integer >= 0")}, where)


@dataclass
class HeartbeatSection:
    """A worker beats every ``interval`` s; a RUNNING trial silent for ``grace`` s is failed and retried."""

    interval: int = 30
    grace: int = 120

    def check(self, where: str = "heartbeat") -> None:
        if self.interval < 1 or self.grace <= self.interval:
            raise FusionlabError(f"{where}: expected interval >= 1 s and grace > interval, got "
                                 f"interval={self.interval}, grace={self.grace}")


# sbatch options that a key of the slurm: section sets (use the key), or that fusionlab sets itself.
_SBATCH_KEYS = {"partition": "partition", "p": "partition", "account": "account", "A": "account", "qos": "qos",
                "q": "qos", "time": "time", "t": "time", "gpus-per-task": "gpus_per_task",
                "cpus-per-task": "cpus_per_task", "c": "cpus_per_task", "mem": "mem", "signal": "signal_delay"}
_SBATCH_OWN = ("array", "output", "error", "open-mode")
_TIME = re.compile(r"(?:(?P<days>\d+)-(?P<dh>\d+)(?::(?P<dm>\d+)(?::(?P<ds>\d+))?)?"
                   r"|(?P<h>\d+):(?P<m>\d+):(?P<s>\d+)|(?P<mm>\d+)(?::(?P<ss>\d+))?)")


def slurm_minutes(value: Any, where: str) -> int:
    """Minutes of a SLURM time limit: ``90`` or ``"90"`` (minutes), ``"90:30"`` (minutes:seconds),
    ``"4:00:00"``, ``"2-00"``, ``"2-12:30"`` or ``"2-12:30:00"`` (days-hours:minutes:seconds); seconds round up."""
    match = _TIME.fullmatch(str(value).strip()) if not isinstance(value, bool) else None
    if match is None:
        raise FusionlabError(f"{where}: {value!r} is not a SLURM time; expected e.g. '4:00:00' "
                             f"(hours:minutes:seconds), '2-00:00:00' (days-hours:minutes:seconds) or 240 (minutes)")
    part = {k: int(v) if v else 0 for k, v in match.groupdict().items()}
    seconds = ((part["days"] * 24 + part["dh"] + part["h"]) * 60 + part["dm"] + part["m"] + part["mm"]) * 60 + (
        part["ds"] + part["s"] + part["ss"])
    if seconds <= 0:
        raise FusionlabError(f"{where}: {value!r}: expected a time limit above 0")
    return -(-seconds // 60)


def sbatch_option(line: str, where: str) -> Tuple[str, Any]:
    """``("constraint", "a100")`` of an extra sbatch line ``--constraint=a100`` (``#SBATCH`` in front allowed;
    ``--exclusive`` alone is ``("exclusive", True)``); options that a key of the section sets are refused."""
    text = line.strip()
    text = text[len("#SBATCH"):].strip() if text.startswith("#SBATCH") else text
    name, _, value = text.partition("=")
    if not re.fullmatch(r"--[a-z][a-z0-9-]*", name):
        raise FusionlabError(f"{where}: {line!r}: expected a long sbatch option, --name=value or --name "
                             f"(e.g. --constraint=a100, --exclusive)")
    key = name[2:]
    if key in _SBATCH_KEYS:
        raise FusionlabError(f"{where}: {line!r}: set it with slurm.{_SBATCH_KEYS[key]} instead")
    if key in _SBATCH_OWN:
        raise FusionlabError(f"{where}: {line!r}: fusionlab sets --{key} itself (the array of workers and its "
                             f"log files in results/<name>/slurm/)")
    return key, value if value else True


@dataclass
class SlurmSection:
    """How ``fusionlab sweep X.yaml --slurm`` submits the sweep: one SLURM job array, each task one sweep worker.

    Every key can also be given on the command line (``--partition``, ``--time``, ``--workers`` ...),
    which wins over the file. The tasks share the sweep's storage (PostgreSQL, or ``journal:`` on a
    shared disk) and its results folder, which must be on a disk every node sees.

    Attributes:
        partition, account, qos: sbatch's ``--partition``, ``--account``, ``--qos`` (null: the cluster's default).
        time: each task's time limit: ``"4:00:00"``, ``"1-12:00:00"`` (days-hours:minutes:seconds) or minutes
            (``240``). A task that reaches it hands its cell back (the cell's resume point written) and is
            requeued; the cell continues where it stopped.
        workers: array tasks, each one worker (null: one per cell not complete when submitting).
        max_running: tasks running at once (the array's ``%N``; null: all of them).
        gpus_per_task: GPUs of each task (null: ``train.devices_per_cell``, or 0 when every cell
            trains on the CPU; ``train.device: auto`` runs on the CPU with 0). A cell of
            ``devices_per_cell: K`` trains on K processes through torchrun inside its task, so a
            task needs K GPUs.
        cpus_per_task: CPU cores of each task (null: the cluster's default); torch uses that many
            threads unless ``FUSIONLAB_THREADS`` says otherwise.
        mem: memory of each task, e.g. ``64G`` (null: the cluster's default).
        signal_delay: seconds before the time limit at which SLURM sends the stop signal (USR2);
            leave time for one training step, the resume point's write and, for a cell already
            evaluating, its evaluation.
        sbatch: more sbatch options, one per item: ``["--constraint=a100", "--exclusive"]``.
        setup: shell lines run before the worker starts, e.g. ``["module load cuda/12.1",
            "source ~/venvs/fusionlab/bin/activate"]``.
        python: the Python on the nodes (null: the one submitting, by its full path); set ``python``
            when ``setup`` activates an environment.
    """

    partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    time: Union[str, int] = "4:00:00"
    workers: Optional[int] = None
    max_running: Optional[int] = None
    gpus_per_task: Optional[int] = None
    cpus_per_task: Optional[int] = None
    mem: Optional[str] = None
    signal_delay: int = 120
    sbatch: List[str] = field(default_factory=list)
    setup: List[str] = field(default_factory=list)
    python: Optional[str] = None

    def check(self, where: str = "slurm") -> None:
        """One-line errors for a key's value; then the signal delay against the time limit."""
        for f in dataclasses.fields(self):
            self.check_value(f.name, getattr(self, f.name), f"{where}.{f.name}")
        minutes = slurm_minutes(self.time, f"{where}.time")
        if self.signal_delay >= minutes * 60:
            raise FusionlabError(f"{where}.signal_delay: {self.signal_delay} s is not shorter than the time limit "
                                 f"{self.time!r} ({minutes} min); expected a few minutes at most")

    @staticmethod
    def check_value(name: str, value: Any, where: str) -> None:
        """The rule of one key (``where`` names it: ``x.yaml: slurm.time`` or ``--time``)."""
        if value is None:
            return
        if name == "time":
            slurm_minutes(value, where)
        elif name in ("workers", "max_running", "cpus_per_task") and value < 1:
            raise FusionlabError(f"{where}: {value} must be an integer >= 1")
        elif name == "gpus_per_task" and value < 0:
            raise FusionlabError(f"{where}: {value} must be an integer >= 0")
        elif name == "signal_delay" and value < 10:
            raise FusionlabError(f"{where}: {value} s must be at least 10 s (SLURM may send it up to a minute late)")
        elif name == "mem" and not re.fullmatch(r"\d+[KMGT]?", value):
            raise FusionlabError(f"{where}: {value!r} is not a memory size; expected e.g. 64G, 500M or 64000 (MB)")
        elif name == "sbatch":
            for i, line in enumerate(value):
                sbatch_option(line, f"{where}[{i}]")
        elif name in ("partition", "account", "qos", "python") and not value.strip():
            raise FusionlabError(f"{where}: empty; leave the key out for the cluster's default")

    def with_flags(self, flags: Dict[str, Any]) -> "SlurmSection":
        """This section with the command line's values (``{"time": "2:00:00"}``; None: not given) over the file's."""
        given = {name: value for name, value in flags.items() if value is not None and value != []}
        for name, value in given.items():
            self.check_value(name, value, f"--{name.replace('_', '-')}")
        updated = dataclasses.replace(self, **given)
        updated.check("the command line's slurm")
        return updated


@dataclass
class SweepFile:
    """The sweep YAML as written (see the module docstring).

    ``grid``: dotted key -> list of values. Keys whose values are not all numbers make variants,
    one per combination (named by their values). A key whose values are all numbers, e.g.
    ``data.train.num_images: [25, 50, 100, 200]`` or ``train.steps``, is the sweep's *axis*:
    every variant, the RGB-only baseline included, runs at each value (``add@num_images=25``)
    and is compared with the baseline at the same value; the report draws ``curve.png`` (box
    mIoU and its gain against the axis) and gives the table one block per value. One numeric
    key at most; reference variants cannot be on an axis.
    """

    name: Optional[str] = None
    storage: Optional[str] = None
    results_dir: str = "results"
    seeds: List[int] = field(default_factory=lambda: [0, 1, 2])
    plugins: List[str] = field(default_factory=list)
    base: Dict[str, Any] = field(default_factory=dict)
    variants: List[VariantSpec] = field(default_factory=list)
    grid: Dict[str, List[Any]] = field(default_factory=dict)
    search: Optional[SearchSection] = None
    keep_checkpoints: bool = False
    latency: LatencySection = field(default_factory=LatencySection)
    heartbeat: HeartbeatSection = field(default_factory=HeartbeatSection)
    slurm: SlurmSection = field(default_factory=SlurmSection)

    def check(self, where: str) -> None:
        """One-line errors (prefixed ``where``, the file) for the sweep's own keys; variants are checked
        as they are built (:func:`load_sweep`)."""
        name = self.name or Path(where).stem
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise FusionlabError(f"{where}: name={name!r}: expected letters, digits, '_', '-' or '.' (it names a "
                                 f"folder)")
        if not self.seeds:
            raise FusionlabError(f"{where}: seeds: expected at least one seed, e.g. [0, 1, 2]")
        if len(set(self.seeds)) != len(self.seeds):
            raise FusionlabError(f"{where}: seeds={self.seeds}: a seed is repeated")
        if any(seed < 0 for seed in self.seeds):
            raise FusionlabError(f"{where}: seeds={self.seeds}: seeds must be >= 0")
        self.heartbeat.check(yaml_key(where, "heartbeat"))
        self.latency.check(yaml_key(where, "latency"))
        self.slurm.check(yaml_key(where, "slurm"))
        if self.search is not None:
            self.search.check(yaml_key(where, "search"))
        if not self.variants and not self.grid:
            raise FusionlabError(f"{where}: no variants and no grid: nothing to compare with the RGB-only baseline; "
                                 f"add e.g. variants: [{{name: add, model: {{fusion: add}}}}]")


# The keys only a sweep file has: a YAML with one of them is a sweep, else a run config.
SWEEP_ONLY_KEYS = frozenset(f.name for f in dataclasses.fields(SweepFile)) - {
    f.name for f in dataclasses.fields(RunConfig)}


def is_sweep_file(data: Dict[str, Any]) -> bool:
    """Whether a YAML's top-level mapping is a sweep file (it has a key only sweeps have)."""
    return bool(SWEEP_ONLY_KEYS & set(data))


@dataclass(frozen=True)
class Axis:
    """A numeric field swept for every variant: the x axis of the report's curve figure.

    Attributes:
        key: the dotted RunConfig key, e.g. ``data.train.num_images`` or ``train.steps``.
        values: its values, in the order given.
    """

    key: str
    values: Tuple[Any, ...]

    @property
    def short(self) -> str:
        """The key's last part (``num_images``): it names the variants, ``add@num_images=25``."""
        return self.key.rsplit(".", 1)[-1]

    def name(self, design: str, value: Any) -> str:
        return f"{design}@{self.short}={_slug(value)}"

    def summary(self) -> Dict[str, Any]:
        """The ``sweep.json`` entry: ``{"key": ..., "values": [...]}``."""
        return {"key": self.key, "values": list(self.values)}


@dataclass
class Variant:
    """A resolved variant: its RunConfig (``train.seed`` set per cell) and its display data.

    In a sweep with an :class:`Axis`, ``design`` / ``design_label`` name the variant without its
    axis value (the curve's series), ``axis_value`` is that value and ``baseline`` the RGB-only
    variant at the same value; without one, ``design`` is the name and ``axis_value`` None.
    """

    name: str
    group: str
    label: str
    config: RunConfig
    key: str  # hash of the config's result-relevant fields; part of every cell key
    design: str = ""
    design_label: str = ""
    axis_value: Any = None
    baseline: str = BASELINE

    def __post_init__(self) -> None:
        self.design = self.design or self.name
        self.design_label = self.design_label or self.label

    @property
    def is_reference(self) -> bool:
        """A released model evaluated as it is: no training, so one cell (the first seed) is enough."""
        return self.group == "reference"

    def summary(self) -> Dict[str, Any]:
        """The ``sweep.json`` entry of this variant."""
        fused = self.config.model.fusion is not None
        architecture = self.config.model.sam_config()
        return {"name": self.name, "group": self.group, "fusion": self.config.model.fusion,
                "fusion_point": architecture.fusion_point if fused else None,
                "depth_encoder": architecture.depth_encoder if fused else None,
                "depth_size": architecture.depth_size if fused else None,
                "depth_source": self.config.depth.source if fused else None, "label": self.label,
                "design": self.design, "design_label": self.design_label, "axis_value": self.axis_value,
                "baseline": self.baseline}


@dataclass
class Cell:
    """One (variant, seed) unit of work: one trial when it succeeds."""

    variant: Variant
    seed: int

    @property
    def key(self) -> str:
        """Stable across reruns and machines; changes when the variant's config changes."""
        return f"{self.variant.name}/seed={self.seed}/{self.variant.key}"

    def run_config(self) -> RunConfig:
        config = copy.deepcopy(self.variant.config)
        config.train.seed = self.seed
        return config


@dataclass
class SweepConfig:
    """A loaded, validated sweep."""

    name: str
    source: Path
    storage: str
    results: Path
    seeds: List[int]
    variants: List[Variant]
    plugins: List[str]
    search: Optional[SearchSection]
    keep_checkpoints: bool
    latency: LatencySection
    heartbeat: HeartbeatSection
    slurm: SlurmSection = field(default_factory=SlurmSection)
    overrides: List[str] = field(default_factory=list)  # the ``--set`` items it was loaded with
    axis: Optional[Axis] = None

    @property
    def baseline(self) -> Variant:
        """The RGB-only baseline (with an axis: at its first value)."""
        return next(v for v in self.variants if v.group == "baseline")

    def search_variant(self) -> Variant:
        """The variant ``search.variant`` names, else the first one that is not the baseline."""
        name = self.search.variant if self.search is not None else None
        return next(v for v in self.variants if (v.name == name if name else v.group != "baseline"))

    def cells(self) -> List[Cell]:
        """Every (variant, seed) cell, variants in file order, then seeds; a reference variant has one
        cell, at the first seed (nothing it does depends on the seed)."""
        return [Cell(v, s) for v in self.variants for s in (self.seeds[:1] if v.is_reference else self.seeds)]


def load_sweep(path: str | Path, overrides: Sequence[str] = (), storage: Optional[str] = None) -> SweepConfig:
    """Read, type-check and validate a sweep YAML; ``overrides`` are ``a.b=value`` strings.

    Imports ``plugins`` first, then builds and checks every variant's RunConfig.
    """
    path = Path(path)
    raw = read_yaml(path)
    for item in overrides:
        apply_override(raw, item)
    spec = from_dict(SweepFile, raw, str(path))
    spec.check(str(path))
    name = spec.name or path.stem
    import_plugins(spec.plugins, f"{path}: plugins")
    base = from_dict(RunConfig, spec.base, f"{path}: base")
    import_plugins(base.plugins, f"{path}: base.plugins")
    resolve_paths(base, path.parent)
    validate(base, f"{path}: base")
    axis = _axis(spec, path)
    # the RGB-only baseline added to the variants is the base without fusion
    added = None if any(item.name == BASELINE for item in spec.variants) else _design(
        spec.base, {"model": {"fusion": None}}, BASELINE, "baseline", "RGB only", f"{path}: base", path)
    designs = _explicit_variants(spec, path) + _grid_variants(spec, path, axis)
    if axis is not None and not designs and base.model.fusion:
        designs = [_design(spec.base, {}, str(base.model.fusion), "fusion", str(base.model.fusion), f"{path}: base",
                           path)]
    if added is not None and not any(v.name == BASELINE for v, _, _ in designs):
        designs.insert(0, added)
    variants = [v for v, _, _ in designs] if axis is None else _along(axis, designs, spec.base, path)
    names = [v.name for v in variants]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise FusionlabError(f"{path}: variant name {repeated[0]!r} is used twice; variant names must be unique")
    results = Path(spec.results_dir) / name
    if spec.search is not None:
        _check_search(spec.search, variants, path)
    return SweepConfig(name=name, source=path, storage=storage or spec.storage or f"sqlite:///{results}/study.db",
                       results=results, seeds=spec.seeds, variants=variants, plugins=spec.plugins,
                       search=spec.search, keep_checkpoints=spec.keep_checkpoints, latency=spec.latency,
                       heartbeat=spec.heartbeat, slurm=spec.slurm, overrides=list(overrides), axis=axis)


Design = Tuple[Variant, Dict[str, Any], str]
"""A variant as listed or generated, with its patch of ``base`` and its YAML path: crossed with the axis."""


def _explicit_variants(spec: SweepFile, path: Path) -> List[Design]:
    designs = []
    for i, item in enumerate(spec.variants):
        where = f"{path}: variants[{i}]"
        if not item.name:
            raise FusionlabError(f"{where}.name: missing; every variant needs a name")
        if item.group not in GROUPS:
            raise FusionlabError(f"{where}.group: {item.group!r} is not a group; allowed: {', '.join(GROUPS)}")
        if "@" in item.name:
            raise FusionlabError(f"{where}.name: {item.name!r}: '@' is kept for axis values (add@num_images=25)")
        patch = {s: getattr(item, s) for s in SECTIONS if getattr(item, s)}
        design = _design(spec.base, patch, item.name, item.group, item.label or item.name, where, path)
        if item.name == BASELINE and design[0].config.model.fusion is not None:
            raise FusionlabError(f"{where}: {BASELINE!r} is the RGB-only baseline; it needs model.fusion: null")
        designs.append(design)
    return designs


def _axis(spec: SweepFile, path: Path) -> Optional[Axis]:
    """The grid key whose values are all numbers, if any; more than one is refused."""
    numeric = [k for k, values in spec.grid.items()
               if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)]
    if not numeric:
        return None
    if len(numeric) > 1:
        raise FusionlabError(f"{path}: grid: {' and '.join(numeric)} are both numeric; a sweep has one numeric axis "
                             f"(the x of its curve): keep one in the grid and list the other's values as variants")
    key = numeric[0]
    values = tuple(spec.grid[key])
    if len(set(values)) != len(values):
        raise FusionlabError(f"{path}: grid.{key}={list(values)}: a value is repeated")
    for i, item in enumerate(spec.variants):
        if item.group == "reference":
            raise FusionlabError(f"{path}: variants[{i}]: a reference variant (a released model, not trained) has "
                                 f"no place on the axis grid.{key}; evaluate it in a sweep without a numeric grid key")
        section, _, rest = key.partition(".")
        if _get_dotted(getattr(item, section, {}) or {}, rest) is not None:
            raise FusionlabError(f"{path}: variants[{i}]: sets {key}, which grid.{key} sweeps as the axis; "
                                 f"leave it to the grid")
    return Axis(key=key, values=values)


def _grid_variants(spec: SweepFile, path: Path, axis: Optional[Axis]) -> List[Design]:
    """One variant per combination of the grid's categorical values; RGB-only ones are the baseline's."""
    keys = [k for k in spec.grid if axis is None or k != axis.key]
    for key in keys:
        section = key.split(".")[0]
        if section not in SECTIONS or "." not in key:
            raise FusionlabError(f"{path}: grid.{key}: expected a dotted key under one of {', '.join(SECTIONS)} "
                                 f"(e.g. model.fusion)")
        if not spec.grid[key]:
            raise FusionlabError(f"{path}: grid.{key}: expected a non-empty list of values")
    if not keys:
        return []
    designs = []
    for values in itertools.product(*(spec.grid[k] for k in keys)):
        patch: Dict[str, Any] = {}
        for key, value in zip(keys, values):
            set_dotted(patch, key, value)
        name = "_".join(_slug(v) for v in values)
        where = f"{path}: grid ({', '.join(f'{k}={v}' for k, v in zip(keys, values))})"
        fused = _merge(spec.base, patch).get("model", {}).get("fusion") is not None
        variant, _, _ = design = _design(spec.base, patch, name, "fusion" if fused else "baseline", name, where, path)
        if not fused:
            continue
        if variant.config.depth.source in CONTROL_SOURCES:
            variant.group = "control"
        designs.append(design)
    return designs


def _along(axis: Axis, designs: List[Design], base: Dict[str, Any], path: Path) -> List[Variant]:
    """Every design at every axis value, value by value (so a partial sweep has whole blocks)."""
    if all(variant.group == "baseline" for variant, _, _ in designs):
        raise FusionlabError(f"{path}: grid.{axis.key} sweeps only the RGB-only baseline: nothing to compare with "
                             f"it; add e.g. variants: [{{name: add, model: {{fusion: add}}}}]")
    section = axis.key.split(".")[0]
    if section not in SECTIONS:
        raise FusionlabError(f"{path}: grid.{axis.key}: expected a dotted key under one of {', '.join(SECTIONS)} "
                             f"(e.g. data.train.num_images)")
    variants = []
    for value in axis.values:
        for design, patch, where in designs:
            patch = _merge(patch, {})
            set_dotted(patch, axis.key, value)
            variant = _variant(base, patch, axis.name(design.name, value), design.group,
                               f"{design.label}, {axis.short}={value}", f"{where} at {axis.key}={value}", path)
            variant.design, variant.design_label, variant.axis_value = design.name, design.label, value
            variant.baseline = axis.name(BASELINE, value)
            variants.append(variant)
    return variants


def _design(base: Dict[str, Any], patch: Dict[str, Any], name: str, group: str, label: str, where: str,
            path: Path) -> Design:
    return _variant(base, patch, name, group, label, where, path), patch, where


def _variant(base: Dict[str, Any], patch: Dict[str, Any], name: str, group: str, label: str, where: str,
             path: Path) -> Variant:
    """Build and validate the RunConfig of ``base`` deep-merged with ``patch``."""
    config = run_config(_merge(base, patch), where, path)
    if group == "reference" and not config.model.checkpoint:
        raise FusionlabError(f"{where}: group 'reference' evaluates a released model as it is: it needs "
                             f"model.checkpoint (e.g. sam_vit_h_4b8939.pth with preset sam-vit-h)")
    if group in ("fusion", "encoder") and config.model.fusion is None:
        raise FusionlabError(f"{where}: group {group!r} needs a fusion block (model.fusion); use group "
                             f"'baseline' for an RGB-only variant")
    return Variant(name=name, group=group, label=label, config=config, key=result_key(config))


def run_config(data: Dict[str, Any], where: str, path: Path) -> RunConfig:
    """The RunConfig of one variant's (or search trial's) merged mapping: built, its paths read from the
    sweep file's folder, validated (every cell trains, so a missing ``data.train`` fails now, not in each cell)."""
    config = from_dict(RunConfig, data, where)
    resolve_paths(config, path.parent)
    validate(config, where)
    return config


def _get_dotted(data: Dict[str, Any], dotted: str) -> Any:
    """``data[a][b]`` for ``dotted = "a.b"``, or None where a part is missing."""
    for key in dotted.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _merge(base: Dict[str, Any], patch: Dict[str, Any]) -> Dict[str, Any]:
    """``base`` with ``patch`` merged in: mappings recursively, anything else replaced."""
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _slug(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", "none" if value is None else str(value)).strip("-")


def _check_search(search: SearchSection, variants: List[Variant], path: Path) -> None:
    """What a search needs beyond its own section: a variant to search, and a valid run config at each knob's
    ends and middle (the knobs are sampled as floats, so a knob on an integer field fails here, not in a trial)."""
    where = f"{path}: search"
    names = [v.name for v in variants]
    if search.variant is not None and search.variant not in names:
        raise FusionlabError(f"{where}.variant: {search.variant!r} is not a variant; known: {', '.join(names)}")
    if search.variant is None and all(v.group == "baseline" for v in variants):
        raise FusionlabError(f"{where}: nothing to search: the sweep has only the RGB-only baseline; add a "
                             f"variant (e.g. variants: [{{name: add, model: {{fusion: add}}}}]) or set "
                             f"search.variant: {BASELINE}")
    searched = next(v for v in variants if (v.name == search.variant if search.variant else v.group != "baseline"))
    for key, knob in search.params.items():
        for end in (knob.low, (knob.low + knob.high) / 2, knob.high):
            trial = copy.deepcopy(searched.config.to_dict())
            set_dotted(trial, key, end, f"{where}.params.{key}")
            run_config(trial, f"{where}.params.{key} (at {end})", path)
