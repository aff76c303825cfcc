"""Inference: CT volume -> SAM-2 slice features -> coarse probabilities -> PCPG prompts -> refined labels."""

from .config import InferenceConfig, config_for_run, inference_config_for
from .pipeline import SegmentationResult, segment_volume

__all__ = ["InferenceConfig", "SegmentationResult", "config_for_run", "inference_config_for", "segment_volume"]
