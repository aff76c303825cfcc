"""DICOM SEG output (``sssseg segment DICOM_DIR OUT.dcm`` / ``--dicom-seg``), checked by independent readers.

The SEG is read back with highdicom and with dcmqi's ``segimage2itkimage`` (the converter behind Slicer's
QuantitativeReporting) and compared with the ``.seg.nrrd`` of the same run; ``dciodvfy`` (Debian's
dicom3tools) validates it. The expected codes, names and colours are written out by hand in
``expected_terminology.py``; source geometry comes from the DICOM files themselves (pydicom). The tilted
GE series: ``test_dicom_seg_tilted.py``; bad requests: ``test_dicom_seg_refusals.py``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813
from dicom_series import PATIENT, STUDY, write_ct_series
from expected_terminology import KEY_NAME_RGB, REGION_BY_LABEL
from seg_helpers import (  # noqa: F401  (fixtures)
    TINY,
    dciodvfy,
    dciodvfy_errors,
    dice,
    five_class_labels,
    fixed_segmentation,
    highdicom_labels,
    phantom_dir,
    run_cli,
    small_ct,
)

from SSSSegmentLib import api
from SSSSegmentLib.bundled_models import bundled_model_path
from SSSSegmentLib.volumes import read_labelmap, write_volume

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
VENV_BIN = Path(sys.executable).parent
PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fixed_run(phantom_dir, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201, F811
    """``segment DIR out.seg.nrrd --dicom-seg out.dcm`` with a fixed five-class segmentation:
    (SEG path, .seg.nrrd path, everything printed or logged)."""
    folder, _, labels = phantom_dir
    out = tmp_path_factory.mktemp("fixed_run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(api, "segment_volume", fixed_segmentation(lambda volume: five_class_labels(labels)))
        code, text = run_cli(["segment", str(folder), str(out / "case.seg.nrrd"), "--dicom-seg",
                              str(out / "case.dcm"), *TINY])
    assert code == 0, text
    return out / "case.dcm", out / "case.seg.nrrd", text



def test_highdicom_reads_back_the_seg_nrrd_labels_on_the_source_images(fixed_run, phantom_dir) -> None:  # noqa: ANN001, F811
    seg_path, nrrd_path, _ = fixed_run
    _, uids, phantom_labels = phantom_dir
    expected, _, _ = read_labelmap(nrrd_path)
    np.testing.assert_array_equal(expected, five_class_labels(phantom_labels))  # the run's own result
    read_back = highdicom_labels(seg_path, uids)
    for label in range(1, 6):
        assert (expected == label).any()
        assert dice(read_back == label, expected == label) >= 0.999, label


def dcmqi_segments(seg_path: Path, out_dir: Path) -> tuple[dict[int, sitk.Image], dict]:
    """dcmqi's segimage2itkimage: {label ID: its NRRD image} and its metadata JSON."""
    out_dir.mkdir()
    proc = subprocess.run([str(VENV_BIN / "segimage2itkimage"), "--inputDICOM", str(seg_path), "--outputDirectory",
                           str(out_dir), "-t", "nrrd"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    meta = json.loads((out_dir / "meta.json").read_text())
    images = {}
    for group, attributes in enumerate(meta["segmentAttributes"], start=1):
        (segment,) = attributes
        images[int(segment["labelID"])] = sitk.ReadImage(str(out_dir / f"{group}.nrrd"))
    return images, meta


def test_dcmqi_reads_back_the_seg_nrrd_labels_on_the_source_grid(fixed_run, tmp_path: Path) -> None:  # noqa: ANN001
    seg_path, nrrd_path, _ = fixed_run
    reference = sitk.ReadImage(str(nrrd_path))
    expected = sitk.GetArrayFromImage(reference)
    images, meta = dcmqi_segments(seg_path, tmp_path / "dcmqi")
    assert sorted(images) == [1, 2, 3, 4, 5]
    for label, image in images.items():
        on_grid = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        assert dice(sitk.GetArrayFromImage(on_grid) > 0, expected == label) >= 0.999, label
    by_label = {int(s[0]["labelID"]): s[0] for s in meta["segmentAttributes"]}
    for label, (_key, name, rgb) in KEY_NAME_RGB.items():
        segment = by_label[label]
        assert segment["SegmentLabel"] == name and segment["recommendedDisplayRGBValue"] == list(rgb)
        assert segment["SegmentedPropertyTypeCodeSequence"]["CodeValue"] == "50960005"
        assert segment["AnatomicRegionSequence"]["CodeValue"] == REGION_BY_LABEL[label][0]


def test_segments_carry_codes_colours_and_the_algorithm(fixed_run) -> None:  # noqa: ANN001
    seg = pydicom.dcmread(fixed_run[0])
    assert seg.SOPClassUID == SEG_SOP_CLASS and seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    weights = bundled_model_path("tiny")
    sha256 = hashlib.sha256(weights.read_bytes()).hexdigest()
    project_version = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert [int(s.SegmentNumber) for s in seg.SegmentSequence] == [1, 2, 3, 4, 5]
    for segment in seg.SegmentSequence:
        key, name, rgb = KEY_NAME_RGB[int(segment.SegmentNumber)]
        assert (segment.SegmentLabel, segment.SegmentDescription) == (name, key)
        category, kind = segment.SegmentedPropertyCategoryCodeSequence[0], segment.SegmentedPropertyTypeCodeSequence[0]
        assert (category.CodingSchemeDesignator, category.CodeValue) == ("SCT", "49755003")
        assert (kind.CodingSchemeDesignator, kind.CodeValue, kind.CodeMeaning) == ("SCT", "50960005", "Hemorrhage")
        region = segment.AnatomicRegionSequence[0]
        assert (region.CodeValue, region.CodeMeaning) == REGION_BY_LABEL[int(segment.SegmentNumber)]
        lab = [int(v) for v in segment.RecommendedDisplayCIELabValue]
        assert max(abs(a - b) for a, b in zip(_rgb_of_dicom_lab(lab), rgb, strict=True)) <= 1
        assert segment.SegmentAlgorithmType == "AUTOMATIC" and segment.SegmentAlgorithmName == "SSSSegment"
        algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
        assert algorithm.AlgorithmName == "SSSSegment" and algorithm.AlgorithmVersion == project_version
        assert f"model={weights.name}" in algorithm.AlgorithmParameters
        assert f"model_sha256={sha256}" in algorithm.AlgorithmParameters


def _rgb_of_dicom_lab(value: list[int]) -> tuple[int, int, int]:
    """sRGB (0..255) of a DICOM CIELab triplet (PS3.3 C.10.7.1.1: L 0..100, a and b -128..127 scaled to
    0..65535), by the CIE formulas with the D65 white point, written out here (not highdicom's)."""
    lightness, a, b = value[0] * 100 / 65535, value[1] * 255 / 65535 - 128, value[2] * 255 / 65535 - 128
    fy = (lightness + 16) / 116
    f = np.array([fy + a / 500, fy, fy - b / 200])
    xyz = np.where(f ** 3 > 216 / 24389, f ** 3, (116 * f - 16) * 27 / 24389) * np.array([0.95047, 1.0, 1.08883])
    linear = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]]) @ xyz
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.clip(linear, 0, None) ** (1 / 2.4) - 0.055)
    return tuple(int(round(float(np.clip(v, 0, 1)) * 255)) for v in srgb)


def test_seg_copies_patient_and_study_into_a_new_series_on_the_source_images(fixed_run, phantom_dir) -> None:  # noqa: ANN001, F811
    seg = pydicom.dcmread(fixed_run[0])
    folder, uids, _ = phantom_dir
    sources = {d.SOPInstanceUID: d for d in (pydicom.dcmread(p, stop_before_pixels=True) for p in folder.iterdir())}
    first = next(iter(sources.values()))
    for keyword, value in {**PATIENT, **STUDY}.items():
        assert str(seg.get(keyword)) == value, keyword
    assert seg.StudyInstanceUID == first.StudyInstanceUID and seg.FrameOfReferenceUID == first.FrameOfReferenceUID
    assert seg.SeriesInstanceUID != first.SeriesInstanceUID and int(seg.SeriesNumber) == 1003
    (referenced,) = seg.ReferencedSeriesSequence
    assert referenced.SeriesInstanceUID == first.SeriesInstanceUID
    assert sorted(r.ReferencedSOPInstanceUID for r in referenced.ReferencedInstanceSequence) == sorted(uids)
    shared = seg.SharedFunctionalGroupsSequence[0]
    orientation = shared.PlaneOrientationSequence[0].ImageOrientationPatient
    assert np.allclose([float(v) for v in orientation], [float(v) for v in first.ImageOrientationPatient])
    for frame in seg.PerFrameFunctionalGroupsSequence:  # every frame lies on the plane of the image it references
        source_uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        position = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        assert np.allclose(position, [float(v) for v in sources[source_uid].ImagePositionPatient], atol=1e-4)


def test_no_patient_data_in_logs_and_no_path_in_the_seg(fixed_run, phantom_dir) -> None:  # noqa: ANN001, F811
    seg_path, _, text = fixed_run
    folder = phantom_dir[0]
    for value in (*PATIENT.values(), "Testcase", STUDY["AccessionNumber"]):
        assert value not in text, value
    assert "DICOM SEG: 5 segments" in text and "copied from the grid" in text
    raw = seg_path.read_bytes()
    assert b"Testcase^Jane^Q" in raw  # the SEG does carry the patient, as the source does
    for path_text in (str(folder), str(seg_path.parent), folder.name, "/tmp"):
        assert path_text.encode() not in raw, path_text


def test_a_real_run_prints_no_patient_data(tmp_path: Path) -> None:
    """The whole command in its own process (warnings and log lines reach the terminal as a user sees them);
    a one-component patient name is the kind that highdicom warns about, quoting it."""
    folder = tmp_path / "ct"
    patient = {"PatientName": "Zyxwname", "PatientID": "PID-0815-ZZ", "PatientBirthDate": "19500101",
               "PatientSex": "M"}
    write_ct_series(folder, small_ct().hu_zyx, small_ct().geometry, patient=patient)
    proc = subprocess.run([sys.executable, "-m", "SSSSegmentLib.cli", "segment", str(folder), str(tmp_path / "o.dcm"),
                           *TINY], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for value in ("Zyxwname", "PID-0815-ZZ", "19500101"):
        assert value not in proc.stdout + proc.stderr, value
        assert value.encode() in (tmp_path / "o.dcm").read_bytes()



def test_dciodvfy_finds_no_error_in_the_seg(fixed_run, dciodvfy) -> None:  # noqa: ANN001, F811
    assert dciodvfy_errors(fixed_run[0]) == []


# --- the real model, both forms of the command --------------------------------------------------------


def test_real_model_seg_equals_the_seg_nrrd_of_the_same_run(phantom_dir, tmp_path: Path) -> None:  # noqa: ANN001, F811
    folder, uids, _ = phantom_dir
    code, text = run_cli(["segment", str(folder), str(tmp_path / "a.seg.nrrd"), "--dicom-seg", str(tmp_path / "a.dcm"),
                          *TINY])
    assert code == 0, text
    expected, _, _ = read_labelmap(tmp_path / "a.seg.nrrd")
    read_back = highdicom_labels(tmp_path / "a.dcm", uids)
    assert [dice(read_back == c, expected == c) for c in range(1, 6)] == [1.0] * 5
    code, text = run_cli(["segment", str(folder), str(tmp_path / "only.dcm"), *TINY])  # the SEG alone
    assert code == 0, text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.dcm", "a.seg.nrrd", "only.dcm"]
    np.testing.assert_array_equal(highdicom_labels(tmp_path / "only.dcm", uids), read_back)



# --- the batch (sssseg batch --dicom-seg, as logic.segmentFiles(..., dicomSeg=True) runs it), real engine


def test_batch_writes_a_seg_for_dicom_inputs_only(phantom_dir, tmp_path: Path) -> None:  # noqa: ANN001, F811
    from SSSSegmentLib.slicer_bridge.batch import segment_files
    from SSSSegmentLib.slicer_bridge.engine import SegmentOptions

    folder, uids, _ = phantom_dir
    nifti = write_volume(tmp_path / "other.nii.gz", small_ct())
    out = tmp_path / "out"
    out.mkdir()
    results = segment_files([folder, nifti], out, SegmentOptions("tiny", "cpu", overwrite=False), qc=False,
                            dicom_seg=True)
    assert [r.ok for r in results] == [True, True], [r.error for r in results]
    assert [r.dicom_seg_path for r in results] == [str(out / "ct_series.dcm"), ""]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [  # not the batch's lock file
        "ct_series.dcm", "ct_series.seg.nrrd", "other.seg.nrrd", "results.csv"]
    expected, _, _ = read_labelmap(out / "ct_series.seg.nrrd")
    np.testing.assert_array_equal(highdicom_labels(out / "ct_series.dcm", uids), expected)
    with open(out / "results.csv", newline="") as fh:
        assert [row["dicom_seg_file"] for row in csv.DictReader(fh)] == ["ct_series.dcm", ""]
    seg_bytes = (out / "ct_series.dcm").read_bytes()
    again = segment_files([folder, nifti], out, SegmentOptions("tiny", "cpu", overwrite=False), qc=False,
                          dicom_seg=True)  # a rerun resumes: both cases kept, the SEG untouched
    assert [r.dicom_seg_path for r in again] == [str(out / "ct_series.dcm"), ""]
    assert (out / "ct_series.dcm").read_bytes() == seg_bytes


