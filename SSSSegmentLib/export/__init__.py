"""Results for other systems: DICOM Segmentation (SEG) objects for PACS, Slicer and web viewers.

Importing this package loads numpy only; highdicom and pydicom load when a SEG is written.
"""

from .dicom_seg import (
    DICOM_SEG_SUFFIX,
    DicomSegTarget,
    ModelIdentity,
    check_dicom_seg_output,
    is_dicom_seg_path,
    model_identity,
    write_dicom_seg,
)

__all__ = ["DICOM_SEG_SUFFIX", "DicomSegTarget", "ModelIdentity", "check_dicom_seg_output", "is_dicom_seg_path",
           "model_identity", "write_dicom_seg"]
