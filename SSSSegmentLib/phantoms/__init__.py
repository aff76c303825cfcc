"""Synthetic head-CT phantoms with ground-truth hemorrhage labels (tests, training, demo).

The real dataset (BHSD) cannot be shipped; these phantoms stand in for it. See ``generate_phantom``
for one case and ``write_dataset`` for a BHSD-like folder of cases.
"""

from ..datasets import CasePaths, DatasetIndex, read_dataset_index
from .config import (
    SCANNER_PROFILES,
    TISSUE_HU_RANGE,
    LesionRecord,
    Phantom,
    PhantomConfig,
    ScannerProfile,
    Tissue,
)
from .dataset import write_dataset
from .generate import generate_phantom

__all__ = [
    "SCANNER_PROFILES",
    "TISSUE_HU_RANGE",
    "DatasetIndex",
    "CasePaths",
    "LesionRecord",
    "Phantom",
    "PhantomConfig",
    "ScannerProfile",
    "Tissue",
    "generate_phantom",
    "read_dataset_index",
    "write_dataset",
]
