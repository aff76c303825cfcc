"""The DICOM SEG of a gantry-tilted series lies on the acquired, tilted images: labels the engine put on its
resampled grid are mapped back by nearest voxel. Expected values: SimpleITK's nearest-neighbour resampling
of the .seg.nrrd onto each source image, and the analytic balls at each pixel's LPS point (from the DICOM
tags). Also a unit check of the mapping with oblique images and oblong pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813
from seg_helpers import (
    TINY,
    dciodvfy,  # noqa: F401  (fixtures)
    dciodvfy_errors,
    dice,
    fixed_segmentation,
    highdicom_labels,
    run_cli,
)

from SSSSegmentLib import api
from SSSSegmentLib.volumes import CTVolume

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


def test_dciodvfy_on_the_tilted_seg_reports_only_the_sources_own_errors(tilted_run, dciodvfy) -> None:  # noqa: ANN001, F811
    seg_path, _, headers, _, _ = tilted_run
    source_errors = set(dciodvfy_errors(Path(headers[0].filename)))
    assert source_errors  # the GE files lack PatientBirthDate/PatientSex and leave DeidentificationMethod empty
    assert set(dciodvfy_errors(seg_path)) <= source_errors



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

