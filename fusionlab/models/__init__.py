"""EfficientViT-SAM (RGB and RGB-D): architecture, presets, checkpoints, predictor.

The names below are imported on first use, so that :mod:`fusionlab.models.config` (the
architecture as a dataclass, which config files are checked against) does not import torch.
"""
from fusionlab._lazy import lazy_exports

_EXPORTS = {
    "DEPTH_ENCODERS": "fusionlab.models.depth_encoders",
    "DepthEncoder": "fusionlab.models.depth_encoders",
    "DepthPreprocessing": "fusionlab.models.checkpoint",
    "EfficientViTSam": "fusionlab.models.sam",
    "MODELS": "fusionlab.models.presets",
    "Predictor": "fusionlab.models.predictor",
    "SamConfig": "fusionlab.models.config",
    "build_model": "fusionlab.models.presets",
    "list_depth_encoders": "fusionlab.models.depth_encoders",
    "list_models": "fusionlab.models.presets",
    "load_checkpoint": "fusionlab.models.checkpoint",
    "model_config": "fusionlab.models.presets",
    "read_config": "fusionlab.models.checkpoint",
    "read_depth_preprocessing": "fusionlab.models.checkpoint",
    "register_depth_encoder": "fusionlab.models.depth_encoders",
    "register_model": "fusionlab.models.presets",
    "save_checkpoint": "fusionlab.models.checkpoint",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
