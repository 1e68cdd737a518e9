"""fusionlab: an ablation-study toolkit for RGB-D fusion in EfficientViT-SAM."""
from fusionlab.errors import FusionlabError
from fusionlab.fusion import FusionBlock, build_fusion, list_fusions, register_fusion
from fusionlab.models import (EfficientViTSam, Predictor, SamConfig, build_model, list_models, load_checkpoint,
                              register_model, save_checkpoint)

__version__ = "0.1.0"

__all__ = ["EfficientViTSam", "FusionBlock", "FusionlabError", "Predictor", "SamConfig", "build_fusion",
           "build_model", "list_fusions", "list_models", "load_checkpoint", "register_fusion", "register_model",
           "save_checkpoint"]
