"""Loading official EfficientViT-SAM checkpoints and fusionlab's own; saving atomically."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from fusionlab.atomic import atomic_write
from fusionlab.errors import FusionlabError
from fusionlab.models.config import SamConfig
from fusionlab.models.sam import EfficientViTSam

CONFIG_METADATA_KEY = "fusionlab_config"


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
                             f"{str(exc).splitlines()[0] if str(exc) else ''}); expected a state dict "
                             ".pt/.pth or .safetensors file") from exc
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FusionlabError(f"checkpoint {path} is not a state dict of tensors")
    return state


def read_config(path: Union[str, Path]) -> Optional[SamConfig]:
    """The :class:`SamConfig` a fusionlab checkpoint was saved with, or None for other files."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as handle:
        raw = (handle.metadata() or {}).get(CONFIG_METADATA_KEY)
    if raw is None:
        return None
    fields = json.loads(raw)
    fields["image_size"] = tuple(fields["image_size"])
    return SamConfig(**fields)


def save_checkpoint(model: EfficientViTSam, path: Union[str, Path]) -> Path:
    """Write the model's weights and config to ``path`` (.safetensors), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    metadata = {CONFIG_METADATA_KEY: json.dumps(model.config.to_dict())}
    return atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=metadata))


def _shapes(state: Dict[str, torch.Tensor]) -> Dict[str, Tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def fitting_presets(state: Dict[str, torch.Tensor]) -> list:
    """Presets whose RGB model has exactly the checkpoint's keys and shapes."""
    from fusionlab.models.presets import MODELS  # presets import this module's neighbours

    wanted = _shapes(state)
    found = []
    for name in MODELS.names():
        with torch.device("meta"):
            model = EfficientViTSam(MODELS.get(name)())
        if _shapes(model.state_dict()) == wanted:
            found.append(name)
    return found


def load_checkpoint(model: EfficientViTSam, path: Union[str, Path], init_depth_from_rgb: bool = False
                    ) -> EfficientViTSam:
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
