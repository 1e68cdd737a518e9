"""fusionlab: an ablation-study toolkit for RGB-D fusion in EfficientViT-SAM.

The names below are imported on first use, so that ``fusionlab.report`` (which reads result
files only) does not pay for importing torch.
"""
from fusionlab._lazy import lazy_exports

__version__ = "0.7.0"

_EXPORTS = {
    "FusionlabError": "fusionlab.errors",
    "FusionBlock": "fusionlab.fusion",
    "build_fusion": "fusionlab.fusion",
    "list_fusions": "fusionlab.fusion",
    "register_fusion": "fusionlab.fusion",
    "DepthEncoder": "fusionlab.models",
    "EfficientViTSam": "fusionlab.models",
    "list_depth_encoders": "fusionlab.models",
    "register_depth_encoder": "fusionlab.models",
    "Predictor": "fusionlab.models",
    "SamConfig": "fusionlab.models",
    "build_model": "fusionlab.models",
    "list_models": "fusionlab.models",
    "load_checkpoint": "fusionlab.models",
    "register_model": "fusionlab.models",
    "save_checkpoint": "fusionlab.models",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
