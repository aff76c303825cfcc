"""`sssseg segment` on a DICOM folder holding two series (``--series-uid``) and the ``--nifti`` copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from SSSSegmentLib import api
from SSSSegmentLib.cli import main
from SSSSegmentLib.inference import SegmentationResult
from SSSSegmentLib.volumes import read_labelmap, read_volume, write_volume
from SSSSegmentLib.volumes.geometry import CTVolume, Geometry

TINY = ["--preset", "tiny", "--device", "cpu", "--progress", "none"]
ROWS = COLS = 64
PIXEL_MM, SLICE_MM = 0.8, 5.0


def _head_slice() -> np.ndarray:
    """int16 HU: air, a skull ring (1000) and brain (35), 64 x 64."""
    jj, ii = np.mgrid[0:ROWS, 0:COLS]
    radius = np.hypot(jj - 32, ii - 32)
    hu = np.where(radius < 28, 35, -1000).astype(np.int16)
    hu[(radius >= 25) & (radius < 28)] = 1000
    return hu


def _write_series(folder: Path, n_slices: int, z0: float) -> str:
    """An axial CT series of ``n_slices`` slices starting at z0 (mm); returns its SeriesInstanceUID."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    series_uid, pixels = generate_uid(), _head_slice().tobytes()
    for k in range(n_slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "CT", series_uid, "1.2.3"
        ds.InstanceNumber, ds.ImagePositionPatient = k + 1, [-25.0, -25.0, z0 + SLICE_MM * k]
        ds.ImageOrientationPatient, ds.PixelSpacing = [1, 0, 0, 0, 1, 0], [PIXEL_MM, PIXEL_MM]
        ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = ROWS, COLS, 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept, ds.PixelData = 1, 0, pixels
        ds.save_as(folder / f"{series_uid[-6:]}_{k:02d}.dcm", enforce_file_format=True)
    return series_uid


def test_series_uid_picks_one_of_two_series_in_a_folder(tmp_path: Path, capsys):
    folder = tmp_path / "dicom"
    folder.mkdir()
    uid_six, uid_eight = _write_series(folder, 6, 0.0), _write_series(folder, 8, 100.0)
    out = tmp_path / "result.seg.nrrd"
    assert main(["segment", str(folder), str(out), *TINY]) == 2  # two series and no choice
    err = capsys.readouterr().err
    assert uid_six in err and uid_eight in err and "--series-uid" in err and not out.exists()
    assert main(["segment", str(folder), str(out), "--series-uid", uid_eight, *TINY]) == 0
    capsys.readouterr()
    labels, geometry, _ = read_labelmap(out)
    assert labels.shape == (8, ROWS, COLS)
    assert geometry.allclose(Geometry((PIXEL_MM, PIXEL_MM, SLICE_MM), (-25.0, -25.0, 100.0)), atol=1e-4)
    assert main(["segment", str(folder), str(tmp_path / "x.seg.nrrd"), "--series-uid", "1.2.999", *TINY]) == 2
    assert "1.2.999" in capsys.readouterr().err


def test_nifti_output_holds_the_labels_on_the_input_grid(tmp_path: Path, capsys, monkeypatch):
    """The segmentation is fixed (one voxel block per class, none symmetric) so the files' content can be
    checked exactly: the .nii.gz holds the BHSD values 0..5 on the input's grid, as the .seg.nrrd does."""
    grid = Geometry((0.7, 0.9, 4.0), (-31.5, 12.0, -40.0), (0, 1, 0, -1, 0, 0, 0, 0, 1))  # rotated about S
    hu = np.repeat(_head_slice()[None], 6, axis=0).astype(np.float32)
    ct_path = write_volume(tmp_path / "head.nrrd", CTVolume(hu, grid, source="test"))
    known = np.zeros((6, ROWS, COLS), np.uint8)
    for label in range(1, 6):
        known[label - 1, 10 + label : 14 + label, 20 : 22 + label] = label

    def fixed(volume: CTVolume, *args: object, **kwargs: object) -> SegmentationResult:
        return SegmentationResult(known.copy(), volume.geometry, {}, None)

    monkeypatch.setattr(api, "segment_volume", fixed)
    monkeypatch.setattr("SSSSegmentLib.cli.format_volumes", lambda volumes_ml: "")
    out = tmp_path / "result.seg.nrrd"
    assert main(["segment", str(ct_path), str(out), "--nifti", *TINY]) == 0
    capsys.readouterr()
    nifti = sitk.ReadImage(str(tmp_path / "result.nii.gz"))
    assert nifti.GetPixelID() == sitk.sitkUInt8
    np.testing.assert_array_equal(sitk.GetArrayFromImage(nifti), known)
    np.testing.assert_allclose(nifti.GetSpacing(), (0.7, 0.9, 4.0), atol=1e-5)
    np.testing.assert_allclose(nifti.GetOrigin(), (-31.5, 12.0, -40.0), atol=1e-4)
    np.testing.assert_allclose(nifti.GetDirection(), (0, 1, 0, -1, 0, 0, 0, 0, 1), atol=1e-6)
    seg_labels, seg_geometry, _ = read_labelmap(out)
    np.testing.assert_array_equal(seg_labels, known)
    assert seg_geometry.allclose(read_volume(ct_path).geometry, atol=1e-5)

