"""The SSS network (PyTorch): SAM-2 + DFE + coarse head, presets, CT preprocessing, checkpoints.

Importing this package imports torch; ``SSSSegmentLib`` itself never imports it at import time.
"""

from ..fsutil import file_sha256
from .build import build_model, resolve_device
from .checkpoint import load_sss_checkpoint, read_checkpoint_info, save_sss_checkpoint
from .dfe import DFE
from .heads import CoarseHead
from .preprocess import DEFAULT_WINDOWS, SliceFrame, ct_to_model_input
from .presets import DEFAULT_PRESET, PRESETS, ModelPreset, get_preset
from .sss_model import SliceFeatures, SSSModel

__all__ = [
    "DEFAULT_PRESET", "DEFAULT_WINDOWS", "DFE", "PRESETS", "CoarseHead", "ModelPreset", "SSSModel",
    "SliceFeatures", "SliceFrame", "build_model", "ct_to_model_input", "file_sha256", "get_preset",
    "load_sss_checkpoint", "read_checkpoint_info", "resolve_device", "save_sss_checkpoint",
]
