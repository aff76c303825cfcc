"""Inference: CT volume -> SAM-2 slice features -> coarse probabilities -> PCPG prompts -> refined labels."""

from .config import InferenceConfig
from .pipeline import SegmentationResult, segment_volume

__all__ = ["InferenceConfig", "SegmentationResult", "segment_volume"]
