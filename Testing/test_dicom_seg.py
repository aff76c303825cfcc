"""DICOM SEG output (``sssseg segment DICOM_DIR OUT.dcm`` / ``--dicom-seg``), checked by independent readers.

The SEG is read back with highdicom and with dcmqi's ``segimage2itkimage`` (the converter behind Slicer's
QuantitativeReporting) and compared with the ``.seg.nrrd`` of the same run; ``dciodvfy`` (Debian's
dicom3tools) validates it. The expected codes, names and colours are written out by hand in
``expected_terminology.py``; source geometry comes from the DICOM files themselves (pydicom) and a
resampling of the ``.seg.nrrd`` onto the tilted source planes from SimpleITK.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import shutil
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

from SSSSegmentLib import api
from SSSSegmentLib.bundled_models import bundled_model_path
from SSSSegmentLib.cli import main
from SSSSegmentLib.inference import SegmentationResult
from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom
from SSSSegmentLib.volumes import CTVolume, read_labelmap, write_volume

TINY = ["--preset", "tiny", "--device", "cpu", "--progress", "none"]
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
VENV_BIN = Path(sys.executable).parent
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two masks; 1.0 when both are empty."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def run_cli(args: list[str]) -> tuple[int, str]:
    """``sssseg`` in-process: (exit code, everything it printed or logged, stdout + stderr + log records)."""
    out, records = io.StringIO(), []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger().addHandler(handler)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(args)
    finally:
        logging.getLogger().removeHandler(handler)
    return code, out.getvalue() + "\n".join(records)


def fixed_segmentation(make_labels):  # noqa: ANN001, ANN201
    """A stand-in for ``api.segment_volume`` that returns ``make_labels(volume)`` on the volume's grid."""

    def segment(volume: CTVolume, *args: object, **kwargs: object) -> SegmentationResult:
        labels = make_labels(volume).astype(np.uint8)
        return SegmentationResult(labels, volume.geometry, {k: 0.0 for k in ("EDH", "IPH", "IVH", "SAH", "SDH")},
                                  prompt_set=None)

    return segment


# --- a phantom with a bleed, written as a DICOM series --------------------------------------------------


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], np.ndarray]:
    """(DICOM folder, SOP Instance UIDs in slice order, the phantom's own labels (K, J, I))."""
    config = PhantomConfig(matrix=96, num_slices=10, lesion_keys=("IPH", "SDH"), lesion_size_quantiles=(0.7, 1.0),
                           artefact_strength=(0.0, 0.0))
    phantom = generate_phantom(11, config)
    folder = tmp_path_factory.mktemp("seg") / "ct_series"
    uids = write_ct_series(folder, phantom.hu_zyx, phantom.geometry)
    assert set(np.unique(phantom.labels_zyx)) >= {0, 2, 5}
    return folder, uids, phantom.labels_zyx


def five_class_labels(phantom_labels: np.ndarray) -> np.ndarray:
    """The phantom's IPH/SDH plus one asymmetric block per other class: all five classes present."""
    labels = phantom_labels.copy()
    k_mid = labels.shape[0] // 2
    labels[k_mid - 1:k_mid + 1, 10:14, 20:27] = 1  # EDH, 2 slices
    labels[k_mid, 40:46, 44:47] = 3  # IVH, 1 slice
    labels[k_mid + 1:k_mid + 4, 60:62, 30:39] = 4  # SAH, 3 slices
    return labels


@pytest.fixture(scope="module")
def fixed_run(phantom_dir, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201
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


def highdicom_labels(seg_path: Path, source_uids: list[str]) -> np.ndarray:
    """The SEG read by highdicom as one label map (S, rows, columns), frame s on source image s."""
    import highdicom as hd

    seg = hd.seg.segread(seg_path)
    return seg.get_pixels_by_source_instance(source_uids, segment_numbers=[1, 2, 3, 4, 5], combine_segments=True,
                                             skip_overlap_checks=False).astype(np.uint8)


def test_highdicom_reads_back_the_seg_nrrd_labels_on_the_source_images(fixed_run, phantom_dir) -> None:  # noqa: ANN001
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


def test_seg_copies_patient_and_study_into_a_new_series_on_the_source_images(fixed_run, phantom_dir) -> None:  # noqa: ANN001
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


def test_no_patient_data_in_logs_and_no_path_in_the_seg(fixed_run, phantom_dir) -> None:  # noqa: ANN001
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
    write_ct_series(folder, _small_ct().hu_zyx, _small_ct().geometry, patient=patient)
    proc = subprocess.run([sys.executable, "-m", "SSSSegmentLib.cli", "segment", str(folder), str(tmp_path / "o.dcm"),
                           *TINY], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for value in ("Zyxwname", "PID-0815-ZZ", "19500101"):
        assert value not in proc.stdout + proc.stderr, value
        assert value.encode() in (tmp_path / "o.dcm").read_bytes()


def dciodvfy_errors(path: Path) -> list[str]:
    """The ``Error`` lines dciodvfy prints for a DICOM file."""
    proc = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("Error")]


@pytest.fixture(scope="module")
def dciodvfy() -> None:
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not on PATH: scripts/setup.sh installs it with apt-get "
                    "only when run as root or with passwordless sudo (apt-get install dicom3tools)")


def test_dciodvfy_finds_no_error_in_the_seg(fixed_run, dciodvfy) -> None:  # noqa: ANN001
    assert dciodvfy_errors(fixed_run[0]) == []


# --- the real model, both forms of the command --------------------------------------------------------


def test_real_model_seg_equals_the_seg_nrrd_of_the_same_run(phantom_dir, tmp_path: Path) -> None:  # noqa: ANN001
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


# --- the tilted GE series: labels mapped back onto the acquired planes --------------------------------

BALLS_MM = {2: ((0.0, 0.0, 0.0), 25.0), 3: ((0.0, 5.0, 30.0), 9.0), 1: ((45.0, 0.0, 0.0), 10.0),
            4: ((-40.0, 10.0, -10.0), 8.0), 5: ((0.0, 45.0, 20.0), 12.0)}  # label: (offset from centre, radius)


def ball_labels(points_lps: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Labels of LPS points (..., 3): one ball per class around ``centre`` (later classes win overlaps)."""
    labels = np.zeros(points_lps.shape[:-1], np.uint8)
    for label, (offset, radius) in BALLS_MM.items():
        labels[np.linalg.norm(points_lps - (centre + offset), axis=-1) < radius] = label
    return labels


def grid_points(volume: CTVolume) -> np.ndarray:
    """LPS of every voxel centre, (K, J, I, 3)."""
    k, j, i = np.meshgrid(*(np.arange(n) for n in volume.shape_zyx), indexing="ij")
    ijk1 = np.stack([i, j, k, np.ones_like(i)], axis=-1).astype(np.float64)
    return (ijk1 @ volume.geometry.ijk_to_lps().T)[..., :3]


def image_points(header) -> np.ndarray:  # noqa: ANN001
    """LPS of every pixel of a DICOM image, (rows, columns, 3), from its own tags."""
    iop = np.array([float(v) for v in header.ImageOrientationPatient])
    dy, dx = (float(v) for v in header.PixelSpacing)
    j, i = np.mgrid[0:int(header.Rows), 0:int(header.Columns)]
    return np.array([float(v) for v in header.ImagePositionPatient]) + i[..., None] * dx * iop[:3] \
        + j[..., None] * dy * iop[3:]


@pytest.fixture(scope="module")
def tilted_run(tilted_ct_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """The GE series segmented (balls on the engine's resampled grid) to .seg.nrrd + SEG:
    (SEG, .seg.nrrd, source headers sorted by position, ball centre, output text)."""
    out = tmp_path_factory.mktemp("tilted")
    centre: list[np.ndarray] = []

    def balls(volume: CTVolume) -> np.ndarray:
        points = grid_points(volume)
        centre.append(points[tuple(n // 2 for n in volume.shape_zyx)])
        return ball_labels(points, centre[0])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(api, "segment_volume", fixed_segmentation(balls))
        code, text = run_cli(["segment", str(tilted_ct_dir), str(out / "ge.seg.nrrd"), "--dicom-seg",
                              str(out / "ge.dcm"), *TINY])
    assert code == 0, text
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(tilted_ct_dir.glob("*.dcm"))]
    headers.sort(key=lambda h: float(h.ImagePositionPatient[2]))
    return out / "ge.dcm", out / "ge.seg.nrrd", headers, centre[0], text


def on_image_plane(image: sitk.Image, header) -> np.ndarray:  # noqa: ANN001
    """SimpleITK's nearest-neighbour resampling of ``image`` onto one DICOM image's pixels, (rows, columns)."""
    iop = np.array([float(v) for v in header.ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    dy, dx = (float(v) for v in header.PixelSpacing)
    resampled = sitk.Resample(image, (int(header.Columns), int(header.Rows), 1), sitk.Transform(),
                              sitk.sitkNearestNeighbor, [float(v) for v in header.ImagePositionPatient],
                              (dx, dy, 1.0), tuple(np.column_stack([iop[:3], iop[3:], normal]).ravel()), 0,
                              image.GetPixelID())
    return sitk.GetArrayFromImage(resampled)[0]


def test_tilted_series_seg_frames_lie_on_the_acquired_tilted_planes(tilted_run) -> None:  # noqa: ANN001
    seg_path, _, headers, _, text = tilted_run
    seg = pydicom.dcmread(seg_path)
    by_uid = {h.SOPInstanceUID: h for h in headers}
    orientation = seg.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient
    assert np.allclose([float(v) for v in orientation], [1, 0, 0, 0, 0.9483237, -0.3173047], atol=1e-6)  # 18.5°
    positions = set()
    for frame in seg.PerFrameFunctionalGroupsSequence:
        source = by_uid[frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID]
        position = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        assert np.allclose(position, [float(v) for v in source.ImagePositionPatient], atol=1e-4)
        positions.add(source.SOPInstanceUID)
    assert len(positions) > 5  # the balls span many acquired images
    assert "mapped back from the resampled grid onto the acquired planes" in text


def test_tilted_series_labels_equal_the_seg_nrrd_resampled_onto_each_source_image(tilted_run) -> None:  # noqa: ANN001
    seg_path, nrrd_path, headers, centre, _ = tilted_run
    reference = sitk.ReadImage(str(nrrd_path))
    read_back = highdicom_labels(seg_path, [h.SOPInstanceUID for h in headers])
    expected = np.stack([on_image_plane(reference, h) for h in headers])
    truth = np.stack([ball_labels(image_points(h), centre) for h in headers])  # the balls at the pixels' points
    for label in range(1, 6):
        assert (expected == label).sum() > 100, label
        assert dice(read_back == label, expected == label) >= 0.999, label
        assert dice(read_back == label, truth == label) >= 0.9, label


def test_dciodvfy_on_the_tilted_seg_reports_only_the_sources_own_errors(tilted_run, dciodvfy) -> None:  # noqa: ANN001
    seg_path, _, headers, _, _ = tilted_run
    source_errors = set(dciodvfy_errors(Path(headers[0].filename)))
    assert source_errors  # the GE files lack PatientBirthDate/PatientSex and leave DeidentificationMethod empty
    assert set(dciodvfy_errors(seg_path)) <= source_errors


# --- bad requests: one line, the documented exit code, no file left ----------------------------------


def _small_ct() -> CTVolume:
    from SSSSegmentLib.volumes import Geometry

    hu = np.full((6, 40, 40), -1000.0, np.float32)
    hu[:, 5:35, 5:35] = 40.0
    return CTVolume(hu, Geometry((0.8, 0.8, 5.0)))


def _refuse_work(*args: object, **kwargs: object) -> None:
    raise AssertionError("the command did work before refusing")


def _one_error_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("sssseg: error: "), text
    return lines[0]


@pytest.mark.parametrize("outputs", [["out.dcm"], ["out.seg.nrrd", "--dicom-seg", "out.dcm"]])
def test_dicom_seg_of_a_nifti_input_is_refused_before_any_work(tmp_path: Path, monkeypatch, outputs) -> None:  # noqa: ANN001
    nifti = write_volume(tmp_path / "ct.nii.gz", _small_ct())
    monkeypatch.setattr(api, "read_ct", _refuse_work)
    monkeypatch.setattr(api, "load_model", _refuse_work)
    code, text = run_cli(["segment", str(nifti), *[str(tmp_path / o) if "." in o else o for o in outputs], *TINY])
    assert code == 4 and "not DICOM" in _one_error_line(text)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nii.gz"]


@pytest.mark.parametrize("existing", ["out.dcm", "out.seg.nrrd"])
def test_an_existing_output_is_kept_without_overwrite(phantom_dir, tmp_path: Path, monkeypatch, existing) -> None:  # noqa: ANN001
    (tmp_path / existing).write_bytes(b"the user's file")
    monkeypatch.setattr(api, "load_model", _refuse_work)
    code, text = run_cli(["segment", str(phantom_dir[0]), str(tmp_path / "out.seg.nrrd"), "--dicom-seg",
                          str(tmp_path / "out.dcm"), *TINY])
    assert code == 4 and "--overwrite" in _one_error_line(text)
    assert [p.name for p in tmp_path.iterdir()] == [existing]
    assert (tmp_path / existing).read_bytes() == b"the user's file"


def test_a_folder_with_two_series_needs_a_series_uid(phantom_dir, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    folder = tmp_path / "two"
    hu = _small_ct().hu_zyx
    write_ct_series(folder, hu, _small_ct().geometry, prefix="a")
    write_ct_series(folder, hu, _small_ct().geometry, prefix="b", series_number=4)
    monkeypatch.setattr(api, "load_model", _refuse_work)
    code, text = run_cli(["segment", str(folder), str(tmp_path / "out.dcm"), *TINY])
    line = _one_error_line(text)
    assert code == 2 and "2 DICOM series" in line and "--series-uid" in line
    assert PATIENT["PatientName"] not in text and PATIENT["PatientID"] not in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two"]


def test_a_seg_never_replaces_a_source_image(tmp_path: Path) -> None:
    folder = tmp_path / "ct"
    write_ct_series(folder, _small_ct().hu_zyx, _small_ct().geometry)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    code, text = run_cli(["segment", str(folder), str(folder / "img0003.dcm"), "--overwrite", *TINY])
    assert code == 4 and "replace one of the source images" in _one_error_line(text)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


@pytest.mark.parametrize("args", [["out.seg.nrrd", "--dicom-seg", "out.nrrd"], ["out.dcm", "--dicom-seg", "b.dcm"]])
def test_a_misnamed_or_doubled_dicom_seg_output_is_refused(phantom_dir, tmp_path: Path, args) -> None:  # noqa: ANN001
    code, text = run_cli(["segment", str(phantom_dir[0]), *[str(tmp_path / a) if "." in a else a for a in args],
                          *TINY])
    assert code == 4 and _one_error_line(text)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_seg_write_leaves_no_output(phantom_dir, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from SSSSegmentLib.export import dicom_seg

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(api, "segment_volume", fixed_segmentation(lambda volume: five_class_labels(phantom_dir[2])))
    monkeypatch.setattr(dicom_seg, "build_segmentation", disk_full)
    code, text = run_cli(["segment", str(phantom_dir[0]), str(tmp_path / "out.seg.nrrd"), "--dicom-seg",
                          str(tmp_path / "out.dcm"), "--nifti", *TINY])
    assert code == 4 and "No space left on device" in text.splitlines()[-1]
    assert list(tmp_path.iterdir()) == []


# --- the Slicer batch (logic.segmentFiles(..., dicomSeg=True)) with the real engine -------------------


def test_batch_writes_a_seg_for_dicom_inputs_only(phantom_dir, tmp_path: Path) -> None:  # noqa: ANN001
    from SSSSegmentLib.slicer_bridge.batch import segment_files
    from SSSSegmentLib.slicer_bridge.engine import SegmentOptions

    folder, uids, _ = phantom_dir
    nifti = write_volume(tmp_path / "other.nii.gz", _small_ct())
    out = tmp_path / "out"
    out.mkdir()
    results = segment_files([folder, nifti], out, SegmentOptions("tiny", "cpu", overwrite=False), qc=False,
                            dicom_seg=True)
    assert [r.ok for r in results] == [True, True], [r.error for r in results]
    assert [r.dicom_seg_path for r in results] == [str(out / "ct_series.dcm"), ""]
    assert sorted(p.name for p in out.iterdir()) == ["ct_series.dcm", "ct_series.seg.nrrd", "other.seg.nrrd",
                                                     "volumes.csv"]
    expected, _, _ = read_labelmap(out / "ct_series.seg.nrrd")
    np.testing.assert_array_equal(highdicom_labels(out / "ct_series.dcm", uids), expected)


def test_labels_on_images_match_simpleitk_for_oblique_images_with_oblong_pixels() -> None:
    """Unit check of the mapping on a case the series above lack: pixels 0.6 x 0.9 mm, images tilted and
    rotated against the grid; SimpleITK's nearest-neighbour resampling gives the expected labels."""
    from pydicom.dataset import Dataset

    from SSSSegmentLib.export.source_planes import labels_on_images
    from SSSSegmentLib.volumes import Geometry

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 6, size=(12, 30, 40)).astype(np.uint8)
    grid = Geometry((0.7, 0.5, 2.0), (-10.0, -8.0, 4.0), (0, 1, 0, -1, 0, 0, 0, 0, 1))
    image = sitk.GetImageFromArray(labels)
    grid.to_sitk(image)
    angle = np.radians(18.5)
    row, col = np.array([0.0, -1.0, 0.0]), np.array([np.cos(angle), 0.0, np.sin(angle)])
    headers = []
    for s in range(4):
        header = Dataset()
        header.Rows, header.Columns = 25, 18
        header.PixelSpacing = [0.9, 0.6]  # between rows (along col), between columns (along row)
        header.ImageOrientationPatient = [*row, *col]
        header.ImagePositionPatient = [-9.0 + 0.3 * s, -10.0, 10.0 + 3.1 * s]
        headers.append(header)
    mapped = labels_on_images(labels, grid, headers)
    expected = np.stack([on_image_plane(image, h) for h in headers])
    assert not mapped.exact and mapped.frames.shape == (4, 25, 18)
    assert (expected > 0).sum() > 200  # the images cross the labelled grid
    np.testing.assert_array_equal(mapped.frames, expected)

