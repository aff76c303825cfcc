"""Test helper: write a CT volume (e.g. a phantom) as a DICOM CT series with full patient/study headers.

The headers carry a recognisable patient (``PATIENT``) so tests can check where patient data goes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from SSSSegmentLib.volumes.geometry import Geometry

PATIENT = {"PatientName": "Testcase^Jane^Q", "PatientID": "SSS-SECRET-4711", "PatientBirthDate": "19611224",
           "PatientSex": "F"}
STUDY = {"StudyDate": "20260315", "StudyTime": "101500", "StudyID": "S77", "AccessionNumber": "ACC9931",
         "ReferringPhysicianName": "Doctor^Who", "StudyDescription": "HEAD NON-CONTRAST"}


def write_ct_series(folder: Path, hu_zyx: np.ndarray, geometry: Geometry, series_number: int = 3,
                    study_uid: str | None = None, prefix: str = "img", patient: dict | None = None) -> list[str]:
    """Write ``hu_zyx`` (K, J, I) on ``geometry`` (orthonormal, LPS) as K single-frame CT images,
    slice k at ``origin + k·spacing_k·direction_k``; files are named in reverse slice order so readers
    must sort by position (``prefix`` starts each file name). ``patient``: Patient module values in place of
    ``PATIENT``. Returns the SOP Instance UIDs in slice order (k = 0, 1, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    axes = geometry.direction_matrix
    origin, spacing = np.asarray(geometry.origin_lps), geometry.spacing_mm
    series_uid, study_uid, frame_uid = generate_uid(), study_uid or generate_uid(), generate_uid()
    uids = []
    for k, slice_hu in enumerate(hu_zyx):
        ds = _ct_header(series_uid, study_uid, frame_uid, series_number, patient or PATIENT)
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [f"{x:.6f}" for x in origin + k * spacing[2] * axes[:, 2]]
        ds.ImageOrientationPatient = [f"{x:.8f}" for x in (*axes[:, 0], *axes[:, 1])]
        ds.SliceThickness = f"{spacing[2]:.4f}"
        ds.PixelSpacing = [f"{spacing[1]:.6f}", f"{spacing[0]:.6f}"]  # between rows, between columns
        ds.Rows, ds.Columns = slice_hu.shape
        ds.PixelData = np.clip(np.rint(slice_hu) + 1024, 0, 4095).astype(np.uint16).tobytes()
        ds.save_as(folder / f"{prefix}{len(hu_zyx) - k:04d}.dcm", enforce_file_format=True)
        uids.append(ds.SOPInstanceUID)
    return uids


def _ct_header(series_uid: str, study_uid: str, frame_uid: str, series_number: int, patient: dict) -> Dataset:
    """A CT Image header with the patient, study, series, equipment and pixel attributes (no geometry)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    for keyword, value in {**patient, **STUDY}.items():
        setattr(ds, keyword, value)
    ds.Modality, ds.Manufacturer, ds.SeriesDescription = "CT", "Phantom Works", "synthetic head"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SeriesNumber = study_uid, series_uid, series_number
    ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame_uid, ""
    ds.PatientPosition, ds.KVP, ds.AcquisitionNumber = "HFS", "120", 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = "1", "-1024", "HU"
    return ds
