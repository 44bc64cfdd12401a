"""openwit.trainer: a compact CLIP trainer (one process, or many under torchrun) and its evaluation."""
from openwit.trainer.config import MODELS, ModelConfig, TextConfig, VisionConfig, model_config
from openwit.trainer.model import CLIP, count_parameters

__all__ = ["MODELS", "ModelConfig", "TextConfig", "VisionConfig", "model_config", "CLIP", "count_parameters"]
