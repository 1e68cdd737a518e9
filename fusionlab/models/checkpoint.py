"""Loading official EfficientViT-SAM checkpoints and fusionlab's own; saving atomically.

A fusionlab checkpoint is a ``.safetensors`` file whose metadata carries the model's
:class:`SamConfig` and, for an RGB-D model, the :class:`DepthPreprocessing` its depth maps
were made with, so that a predictor can turn raw depth into what the model was trained on.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple, Union

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from fusionlab.atomic import atomic_write_bytes
from fusionlab.depth.normalize import NORMALIZATIONS, RAW_KINDS, postprocess
from fusionlab.errors import FusionlabError
from fusionlab.models.config import SamConfig
from fusionlab.models.promptable import PromptableSam
from fusionlab.models.sam import EfficientViTSam

if TYPE_CHECKING:
    from fusionlab.depth.base import DepthSource

CONFIG_METADATA_KEY = "fusionlab_config"
DEPTH_METADATA_KEY = "fusionlab_depth"


@dataclass(frozen=True)
class DepthPreprocessing:
    """How a model's depth maps were made from raw maps (see :mod:`fusionlab.depth.normalize`).

    The defaults are those of a :class:`~fusionlab.depth.base.DepthSource`: raw depth, turned
    into disparity, min-max normalised to [0, 1]. They stand for checkpoints that do not say.

    Attributes:
        source: the depth source's registry name; None when unknown.
        raw: the kind of raw map the source read, ``"depth"`` or ``"disparity"``; None for a
            control that makes its maps without depth (``noise``, ``constant``, ...).
        output: the kind the model received.
        normalize: the per-image normalisation, one of ``minmax``, ``median_mad``, ``none``.
        options: the source's full configuration, for the record.
    """

    source: Optional[str] = None
    raw: Optional[str] = "depth"
    output: str = "disparity"
    normalize: str = "minmax"
    options: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_source(cls, source: "DepthSource") -> "DepthPreprocessing":
        config = source.config()
        return cls(source=config["name"], raw=source.raw, output=source.output, normalize=source.normalize,
                   options={k: v for k, v in config.items() if k != "name"})

    @classmethod
    def from_json(cls, text: str, where: str) -> "DepthPreprocessing":
        """Parse the metadata entry; a malformed one is a one-line error naming ``where``."""
        try:
            fields = json.loads(text)
            record = cls(**fields)
        except (ValueError, TypeError) as exc:
            raise FusionlabError(f"{where}: metadata {DEPTH_METADATA_KEY!r} is not a depth preprocessing "
                                 f"record ({exc}); expected JSON with keys source, raw, output, normalize") from exc
        for key, value, allowed in (("raw", record.raw, RAW_KINDS + (None,)), ("output", record.output, RAW_KINDS),
                                    ("normalize", record.normalize, NORMALIZATIONS)):
            if value not in allowed:
                raise FusionlabError(f"{where}: metadata {DEPTH_METADATA_KEY}.{key}={value!r}; expected one of "
                                     f"{', '.join(repr(a) for a in allowed)}")
        return record

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @property
    def value_range(self) -> Tuple[float, float]:
        """The range the model's depth maps lie in: [0, 1], unbounded for ``normalize="none"``."""
        return (-np.inf, np.inf) if self.normalize == "none" else (0.0, 1.0)

    def describe(self) -> str:
        name = f"depth source {self.source!r}" if self.source else "the default depth preprocessing"
        return f"{name} ({self.output}, {self.normalize})"

    def apply(self, raw: np.ndarray, kind: Optional[str] = None, where: str = "raw_depth") -> np.ndarray:
        """A raw ``(H, W)`` map of ``kind`` (default: the kind the source read) → the float32
        ``(H, W)`` map the model was trained on. Invalid pixels (0, negative, NaN) are filled as
        the sources fill them. With ``normalize="none"`` the map keeps its scale, so it must be in
        the units the source used."""
        if self.raw is None:
            raise FusionlabError(f"{where}: this model was trained on {self.describe()}, a control that makes "
                                 "its maps without depth, so raw depth cannot become one; pass the map that source "
                                 "makes (Predictor.set_image(image, depth=...))")
        kind = self.raw if kind is None else kind
        if kind not in RAW_KINDS:
            raise FusionlabError(f"{where}: depth_kind={kind!r}; expected one of {', '.join(map(repr, RAW_KINDS))}")
        return postprocess(raw, kind, self.output, self.normalize, where)


def read_state_dict(path: Union[str, Path]) -> Dict[str, torch.Tensor]:
    """A flat state dict from ``.safetensors`` or ``.pt``/``.pth`` (read with ``weights_only=True``).

    A ``.pt`` holding ``{"state_dict": ...}`` or ``{"model": ...}`` is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise FusionlabError(f"checkpoint {path} does not exist; expected a .pt, .pth or .safetensors file")
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many types for a bad file
        raise FusionlabError(f"checkpoint {path} could not be read ({type(exc).__name__}: "
                             f"{_first_line(exc)}); expected a state dict .pt/.pth or .safetensors file") from exc
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FusionlabError(f"checkpoint {path} is not a state dict of tensors")
    return state


def read_metadata(path: Union[str, Path]) -> Dict[str, str]:
    """The metadata of a ``.safetensors`` file (empty for other files and missing ones)."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return {}
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except Exception as exc:  # safetensors raises SafetensorError, OSError, ... for a damaged file
        raise FusionlabError(f"checkpoint {path} could not be read ({type(exc).__name__}: "
                             f"{_first_line(exc)}); expected a complete safetensors file") from exc


def read_config(path: Union[str, Path]) -> Optional[SamConfig]:
    """The :class:`SamConfig` a fusionlab checkpoint was saved with, or None for other files.

    A depth encoder's ``pretrained`` weights are not read again (the checkpoint holds its weights).
    """
    raw = read_metadata(path).get(CONFIG_METADATA_KEY)
    if raw is None:
        return None
    try:
        fields = json.loads(raw)
        fields["image_size"] = tuple(fields["image_size"])
        if "pretrained" in (fields.get("depth_encoder_kwargs") or {}):
            fields["depth_encoder_kwargs"]["pretrained"] = False
        return SamConfig(**fields)
    except (ValueError, TypeError, KeyError) as exc:
        raise FusionlabError(f"checkpoint {path}: metadata {CONFIG_METADATA_KEY!r} is not a model config "
                             f"({type(exc).__name__}: {_first_line(exc)}); expected the JSON save_checkpoint "
                             "writes") from exc


def read_depth_preprocessing(path: Union[str, Path]) -> Optional[DepthPreprocessing]:
    """The depth preprocessing a fusionlab RGB-D checkpoint records, or None when it records none."""
    raw = read_metadata(path).get(DEPTH_METADATA_KEY)
    return None if raw is None else DepthPreprocessing.from_json(raw, f"checkpoint {path}")


def save_checkpoint(model: EfficientViTSam, path: Union[str, Path],
                    depth_source: Optional["DepthSource"] = None) -> Path:
    """Write the model's weights and config to ``path`` (.safetensors), atomically.

    ``depth_source``: the source of the depth maps the model was trained on; its preprocessing
    is recorded (see :func:`read_depth_preprocessing`).
    """
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    metadata = {CONFIG_METADATA_KEY: json.dumps(model.config.to_dict())}
    if depth_source is not None:
        metadata[DEPTH_METADATA_KEY] = DepthPreprocessing.from_source(depth_source).to_json()
    # Serialised in memory, then written by atomic_write: safetensors' save_file writes its own
    # temporary file with mode 0600 (safetensors PR #764) that would survive the rename.
    return atomic_write_bytes(Path(path), save(state, metadata=metadata))


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else ""


def _shapes(state: Dict[str, torch.Tensor]) -> Dict[str, Tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def fitting_presets(state: Dict[str, torch.Tensor]) -> list:
    """Presets whose RGB model has exactly the checkpoint's keys and shapes."""
    from fusionlab.models.presets import MODELS, model_for  # presets import this module's neighbours

    wanted = _shapes(state)
    found = []
    for name in MODELS.names():
        with torch.device("meta"):
            model = model_for(MODELS.get(name)())
        if _shapes(model.state_dict()) == wanted:
            found.append(name)
    return found


def load_checkpoint(model: PromptableSam, path: Union[str, Path], init_depth_from_rgb: bool = False
                    ) -> PromptableSam:
    """Load weights into ``model`` and return it.

    An official (RGB) checkpoint fills the RGB path of an RGB or RGB-D model; with
    ``init_depth_from_rgb`` the depth encoder starts from the same weights; fusion blocks keep
    their starting point. A fusionlab RGB-D checkpoint must match the model exactly. Any
    missing or unexpected key or shape mismatch is an error naming a few of them and the
    preset that would fit.
    """
    state = read_state_dict(path)
    own = _shapes(model.state_dict())
    rgb_keys = model.rgb_state_keys()
    is_rgb_checkpoint = not any(k.startswith(("depth_encoder.", "fusions.")) for k in state)
    expected = {k: s for k, s in own.items() if k in rgb_keys} if is_rgb_checkpoint else own
    got = _shapes(state)
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if mismatched:
            k = mismatched[0]
            problems.append(f"{len(mismatched)} of another shape (e.g. {k}: checkpoint {list(got[k])}, "
                            f"model {list(expected[k])})")
        fits = fitting_presets(state) if is_rgb_checkpoint else []
        hint = f"it fits preset {', '.join(fits)}" if fits else "no preset has exactly these keys"
        raise FusionlabError(f"checkpoint {path} does not fit this model: {'; '.join(problems)}; {hint}")
    model.load_state_dict(state, strict=not is_rgb_checkpoint)
    if is_rgb_checkpoint and init_depth_from_rgb and model.has_depth:
        model.init_depth_from_rgb()
    return model
