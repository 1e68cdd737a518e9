"""EfficientViT-SAM (RGB and RGB-D): architecture, presets, checkpoints, predictor."""
from fusionlab.models.checkpoint import load_checkpoint, read_config, save_checkpoint
from fusionlab.models.config import SamConfig
from fusionlab.models.predictor import Predictor
from fusionlab.models.presets import MODELS, build_model, list_models, model_config, register_model
from fusionlab.models.sam import EfficientViTSam

__all__ = ["EfficientViTSam", "MODELS", "Predictor", "SamConfig", "build_model", "list_models", "load_checkpoint",
           "model_config", "read_config", "register_model", "save_checkpoint"]
