"""Coronal and sagittal inputs are segmented on axial planes and labelled exactly on their own grid.

The reformats below are written by hand (not with the helper under test): the same voxels as an
axial phantom, permuted and flipped, with the direction cosines and origin that keep every voxel
at the same LPS point. Coronal "LIP": i -> L, j -> I, k -> P (a typical coronal DICOM series);
sagittal "PIR": i -> P, j -> I, k -> R.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from SSSSegmentLib import api
from SSSSegmentLib.cli import main
from SSSSegmentLib.errors import InputError
from SSSSegmentLib.phantoms import Phantom, PhantomConfig, generate_phantom
from SSSSegmentLib.volumes import validate_ct, write_volume
from SSSSegmentLib.volumes.geometry import CTVolume, Geometry
from SSSSegmentLib.volumes.orientation import axial_reorientation, to_axial

PHANTOM_SEED = 2
PHANTOM = PhantomConfig(matrix=128, num_slices=16, lesion_keys=("SDH",), lesion_size_quantiles=(0.6, 1.0))


# ----------------------------------------------------------------------------- hand-made reformats


def coronal_array(axial_zyx: np.ndarray) -> np.ndarray:
    """coronal[kc, jc, ic] = axial[K-1-jc, kc, ic]."""
    return np.ascontiguousarray(np.flip(axial_zyx, 0).transpose(1, 0, 2))


def sagittal_array(axial_zyx: np.ndarray) -> np.ndarray:
    """sagittal[ks, js, is] = axial[K-1-js, is, I-1-ks]."""
    return np.ascontiguousarray(np.flip(axial_zyx, (0, 2)).transpose(2, 0, 1))


def coronal_geometry(axial: Geometry, shape_zyx: tuple[int, ...]) -> Geometry:
    """LIP grid of an identity-direction axial grid: voxel (0, 0, 0) is axial voxel (0, 0, K-1)."""
    sx, sy, sz = axial.spacing_mm
    origin = np.asarray(axial.origin_lps) + [0.0, 0.0, (shape_zyx[0] - 1) * sz]
    direction = np.column_stack([[1, 0, 0], [0, 0, -1], [0, 1, 0]]).astype(float)
    return Geometry((sx, sz, sy), tuple(origin), tuple(direction.ravel()))


def sagittal_geometry(axial: Geometry, shape_zyx: tuple[int, ...]) -> Geometry:
    """PIR grid of an identity-direction axial grid: voxel (0, 0, 0) is axial voxel (I-1, 0, K-1)."""
    sx, sy, sz = axial.spacing_mm
    origin = np.asarray(axial.origin_lps) + [(shape_zyx[2] - 1) * sx, 0.0, (shape_zyx[0] - 1) * sz]
    direction = np.column_stack([[0, 1, 0], [0, 0, -1], [-1, 0, 0]]).astype(float)
    return Geometry((sy, sz, sx), tuple(origin), tuple(direction.ravel()))


def voxel_centres_lps(geometry: Geometry, shape_zyx: tuple[int, ...]) -> np.ndarray:
    """LPS of every voxel centre, shape (K, J, I, 3)."""
    k, j, i = np.indices(shape_zyx)
    ijk1 = np.stack([i, j, k, np.ones_like(i)], axis=-1).astype(np.float64)
    return (ijk1 @ geometry.ijk_to_lps().T)[..., :3]


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def phantom() -> Phantom:
    return generate_phantom(PHANTOM_SEED, PHANTOM)


@pytest.fixture(scope="module")
def axial(phantom: Phantom) -> CTVolume:
    """The phantom with whole-HU values (so an int16 file round trip changes nothing)."""
    assert np.allclose(phantom.geometry.direction, np.eye(3).ravel())
    return CTVolume(np.rint(phantom.hu_zyx).astype(np.float32), phantom.geometry, source="axial phantom")


@pytest.fixture(scope="module")
def model() -> api.LoadedModel:
    return api.load_model("tiny", device="cpu")


@pytest.fixture(scope="module")
def axial_labels(phantom: Phantom, axial: CTVolume, model: api.LoadedModel) -> np.ndarray:
    labels = api.segment_volume(axial, model).labels_zyx
    found = np.count_nonzero((labels > 0) & (phantom.labels_zyx > 0))
    assert found > 50, "the bundled model must find the phantom's lesion on the axial grid"
    return labels


# ----------------------------------------------------------------------------- the engine, end to end


def test_the_hand_made_reformats_keep_every_voxel_at_its_lps_point(axial: CTVolume) -> None:
    shape = axial.shape_zyx
    centres = voxel_centres_lps(axial.geometry, shape)
    for array_fn, geometry_fn in ((coronal_array, coronal_geometry), (sagittal_array, sagittal_geometry)):
        reformat = geometry_fn(axial.geometry, shape)
        moved = np.stack([array_fn(centres[..., c]) for c in range(3)], axis=-1)
        assert np.allclose(voxel_centres_lps(reformat, moved.shape[:3]), moved, atol=1e-6)


def test_sagittal_sitk_image_gives_the_axial_labels_on_its_own_grid(
    axial: CTVolume, axial_labels: np.ndarray, model: api.LoadedModel
) -> None:
    sagittal = CTVolume(sagittal_array(axial.hu_zyx), sagittal_geometry(axial.geometry, axial.shape_zyx))
    labels_image = api.segment_sitk(sagittal.to_sitk(), model)
    assert Geometry.from_sitk(labels_image) == sagittal.geometry
    assert np.array_equal(sitk.GetArrayFromImage(labels_image), sagittal_array(axial_labels))


def test_cli_writes_the_coronal_labels_with_the_input_geometry(
    axial: CTVolume, axial_labels: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    coronal = CTVolume(coronal_array(axial.hu_zyx), coronal_geometry(axial.geometry, axial.shape_zyx))
    source = write_volume(tmp_path / "coronal.nrrd", coronal)
    out = tmp_path / "labels.nii.gz"
    code = main(["segment", str(source), str(out), "--preset", "tiny", "--device", "cpu", "--progress", "none"])
    assert code == 0, capsys.readouterr().err
    image = sitk.ReadImage(str(out))
    assert Geometry.from_sitk(image).allclose(coronal.geometry, atol=1e-5)
    assert np.array_equal(sitk.GetArrayFromImage(image), coronal_array(axial_labels))  # same voxels labelled
    reoriented = [line for line in capsys.readouterr().err.splitlines() if "segmenting on axial planes" in line]
    assert len(reoriented) == 1 and "input is coronal (LIP); segmenting on axial planes" in reoriented[0]


# ----------------------------------------------------------------------------- the reorientation helper


def _all_orientation_codes() -> list[str]:
    """All 48 codes: every order of the three patient axes, each pointing either way."""
    pairs = ("LR", "PA", "SI")
    return ["".join(pairs[a][s] for a, s in zip(order, signs, strict=True))
            for order in itertools.permutations(range(3)) for signs in itertools.product((0, 1), repeat=3)]


def _random_image(code: str) -> sitk.Image:
    """A (7, 6, 5)-voxel image with distinct spacings and origin, reoriented by SimpleITK to ``code``."""
    array = np.random.default_rng(0).normal(size=(5, 6, 7)).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.5, 0.7, 3.0))
    image.SetOrigin((10.0, 20.0, 30.0))
    return sitk.DICOMOrient(image, code)


@pytest.mark.parametrize("code", _all_orientation_codes())
def test_reorientation_matches_dicomorient_and_round_trips(code: str) -> None:
    image = _random_image(code)
    volume = CTVolume(sitk.GetArrayFromImage(image), Geometry.from_sitk(image))
    working, reorientation = to_axial(volume)
    expected = sitk.DICOMOrient(image, "LPS")
    assert reorientation.input_code == code and reorientation.is_identity == (code == "LPS")
    assert np.array_equal(working.hu_zyx, sitk.GetArrayFromImage(expected))
    assert working.geometry.allclose(Geometry.from_sitk(expected), atol=1e-9)
    assert np.allclose(working.geometry.direction, np.eye(3).ravel())
    assert np.array_equal(reorientation.to_input(working.hu_zyx), volume.hu_zyx)


def test_reoriented_voxels_sit_at_the_same_lps_points_by_hand() -> None:
    """LIP grid, spacing (0.5, 0.7, 3.0), origin (10, 20, 30), shape (K, J, I) = (5, 6, 7)."""
    direction = np.column_stack([[1, 0, 0], [0, 0, -1], [0, 1, 0]]).astype(float)
    geometry = Geometry((0.5, 0.7, 3.0), (10.0, 20.0, 30.0), tuple(direction.ravel()))
    hu = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    working, reorientation = to_axial(CTVolume(hu, geometry))
    assert reorientation.input_plane == "coronal" and working.shape_zyx == (6, 5, 7)
    # Input voxel (i, j, k) = (2, 3, 4): L = 10 + 2*0.5, P = 20 + 4*3.0, S = 30 - 3*0.7.
    assert np.allclose(geometry.ijk_to_lps() @ [2, 3, 4, 1], [11.0, 32.0, 27.9, 1.0])
    # On the working grid it is (i', j', k') = (i, k, J-1-j) = (2, 4, 2), at the same point.
    assert np.allclose(working.geometry.ijk_to_lps() @ [2, 4, 2, 1], [11.0, 32.0, 27.9, 1.0])
    assert working.hu_zyx[2, 4, 2] == hu[4, 3, 2]
    # The working origin is input voxel (0, J-1, 0): S = 30 - 5*0.7.
    assert np.allclose(working.geometry.origin_lps, (10.0, 20.0, 26.5))
    assert working.geometry.spacing_mm == (0.5, 3.0, 0.7)


def test_oblique_grid_goes_to_its_closest_axes_and_says_so() -> None:
    angle = math.radians(20.0)  # a coronal grid rotated 20 degrees about L
    rot = np.array([[1, 0, 0], [0, math.cos(angle), -math.sin(angle)], [0, math.sin(angle), math.cos(angle)]])
    direction = rot @ np.column_stack([[1, 0, 0], [0, 0, -1], [0, 1, 0]]).astype(float)
    geometry = Geometry((0.5, 0.7, 3.0), (10.0, 20.0, 30.0), tuple(direction.ravel()))
    hu = np.random.default_rng(1).normal(size=(5, 6, 7)).astype(np.float32)
    working, reorientation = to_axial(CTVolume(hu, geometry))
    assert reorientation.input_code == "LIP" and round(reorientation.oblique_deg, 6) == 20.0
    assert "oblique coronal (LIP, 20.0° off the patient axes)" in reorientation.describe()
    centres = voxel_centres_lps(geometry, hu.shape)
    moved = np.stack([reorientation.to_working(centres[..., c]) for c in range(3)], axis=-1)
    assert np.allclose(voxel_centres_lps(working.geometry, working.shape_zyx), moved, atol=1e-9)


def test_gantry_tilt_grids_stay_as_they_are() -> None:
    tilt = math.radians(18.5)  # like the GE scan read with tilt resampling on (orthogonal) and off (sheared)
    for k_axis in ([0, math.sin(tilt), math.cos(tilt)], [0, 0, 1.0]):
        direction = np.column_stack([[1, 0, 0], [0, math.cos(tilt), -math.sin(tilt)], k_axis])
        geometry = Geometry((0.5, 0.5, 5.0), direction=tuple(direction.ravel()))
        assert axial_reorientation(geometry).is_identity


def test_validation_counts_slices_on_the_axial_grid() -> None:
    """A coronal reformat of a 20-slice axial scan has rows of 20 voxels, which is fine."""
    hu = np.full((20, 64, 64), -1000.0, dtype=np.float32)
    hu[:, 8:56, 8:56] = 40.0
    geometry = Geometry((0.5, 0.5, 5.0))
    validate_ct(CTVolume(coronal_array(hu), coronal_geometry(geometry, hu.shape)))
    with pytest.raises(InputError, match="slices of 64 × 20 voxels are too small"):
        validate_ct(CTVolume(coronal_array(hu), geometry))  # the same array taken as axial
