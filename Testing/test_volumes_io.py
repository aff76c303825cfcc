"""Volume reading (DICOM incl. gantry tilt, NIfTI, NRRD), writing and input validation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from SSSSegmentLib.errors import InputError, OutputError
from SSSSegmentLib.volumes import CTVolume, Geometry, read_volume, validate_ct, write_volume

# ----------------------------------------------------------------------------- synthetic DICOM

ROWS, COLS = 36, 40
DX, DY = 0.8, 1.0  # mm along the row direction (i) and along the column direction (j)
SLOPE = 0.01  # stored = HU / SLOPE, so linear fields survive int16 storage to 0.005 HU


def linear_field(points_lps: np.ndarray) -> np.ndarray:
    """A smooth HU field, linear in LPS: linear interpolation must reproduce it exactly."""
    return 20.0 + 0.5 * points_lps[..., 0] - 0.3 * points_lps[..., 1] + 2.0 * points_lps[..., 2]


def tilted_axes(tilt_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Row/column directions of a gantry tilted about the L axis (like the GE scan)."""
    t = math.radians(tilt_deg)
    return np.array([1.0, 0.0, 0.0]), np.array([0.0, math.cos(t), -math.sin(t)])


def slice_points(position: np.ndarray, row_dir: np.ndarray, col_dir: np.ndarray) -> np.ndarray:
    """LPS of every pixel of one slice, shape (ROWS, COLS, 3)."""
    j, i = np.mgrid[0:ROWS, 0:COLS]
    return position + i[..., None] * DX * row_dir + j[..., None] * DY * col_dir


def write_dicom_series(folder: Path, positions: list[np.ndarray], row_dir: np.ndarray, col_dir: np.ndarray,
                       field=linear_field, series_uid: str | None = None, padding: int | None = None,  # noqa: ANN001
                       pad_mask: np.ndarray | None = None) -> str:
    """Write one CT slice per position (file names shuffled against the order); returns the series UID."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    names = np.random.default_rng(0).permutation(len(positions))
    for n, position in enumerate(positions):
        hu = field(slice_points(position, row_dir, col_dir))
        stored = np.rint(hu / SLOPE).astype(np.int16)
        if padding is not None and pad_mask is not None:
            stored[pad_mask] = padding
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "CT", series_uid, "1.2.3"
        ds.SeriesDescription, ds.InstanceNumber = "synthetic", n + 1
        ds.ImagePositionPatient = [f"{x:.6f}" for x in position]
        ds.ImageOrientationPatient = [f"{x:.8f}" for x in (*row_dir, *col_dir)]
        ds.PixelSpacing = [DY, DX]  # DICOM order: row spacing (between rows), column spacing
        ds.Rows, ds.Columns = ROWS, COLS
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = SLOPE, 0
        if padding is not None:
            ds.PixelPaddingValue = padding
        ds.PixelData = stored.tobytes()
        ds.save_as(folder / f"im{names[n]:03d}.dcm", enforce_file_format=True)
    return series_uid


def positions_along(direction: np.ndarray, steps_mm: list[float],
                    start: tuple[float, float, float] = (-10.0, 5.0, 30.0)) -> list[np.ndarray]:
    """Slice positions start + cumulative steps along ``direction``."""
    offsets = np.concatenate([[0.0], np.cumsum(steps_mm)])
    return [np.asarray(start) + o * np.asarray(direction) for o in offsets]


def voxel_points(volume: CTVolume) -> np.ndarray:
    """LPS of every output voxel, shape (K, J, I, 3), from the volume's geometry only."""
    k, j, i = np.meshgrid(*(np.arange(n) for n in volume.shape_zyx), indexing="ij")
    ijk1 = np.stack([i, j, k, np.ones_like(i)], axis=-1).astype(np.float64)
    return (ijk1 @ volume.geometry.ijk_to_lps().T)[..., :3]


def inside_slices(points: np.ndarray, positions: list[np.ndarray], row_dir: np.ndarray,
                  col_dir: np.ndarray, margin: float) -> np.ndarray:
    """(S, ...) True where a point's projection onto slice s's plane falls inside it (margin px in)."""
    masks = []
    for p in positions:
        col, row = (points - p) @ row_dir / DX, (points - p) @ col_dir / DY
        in_cols = (col >= margin) & (col <= COLS - 1 - margin)
        masks.append(in_cols & (row >= margin) & (row <= ROWS - 1 - margin))
    return np.stack(masks)


def inside_all_slices(points: np.ndarray, positions: list[np.ndarray], row_dir: np.ndarray,
                      col_dir: np.ndarray, margin: float = 1.0) -> np.ndarray:
    """True where a point's projection onto every slice plane falls inside that slice."""
    return inside_slices(points, positions, row_dir, col_dir, margin).all(axis=0)


def assert_reproduces_field(volume: CTVolume, positions, row_dir, col_dir) -> None:  # noqa: ANN001
    """Every output voxel inside the acquired data holds the field at its own LPS point."""
    points = voxel_points(volume)
    inside = inside_all_slices(points, positions, row_dir, col_dir)
    assert inside.sum() > 0.3 * inside.size
    np.testing.assert_allclose(volume.hu_zyx[inside], linear_field(points[inside]), atol=0.02)


def assert_air_outside_bracketing_slices(volume: CTVolume, positions, row_dir, col_dir) -> None:  # noqa: ANN001
    """Voxels whose two neighbouring slices (along the normal) hold no data there are air."""
    points = voxel_points(volume)
    inside = inside_slices(points, positions, row_dir, col_dir, margin=-1.0)  # (S, K, J, I)
    normal = np.cross(row_dir, col_dir)
    slice_heights = np.array([p @ normal for p in positions])
    heights = points @ normal
    lower = np.clip(np.searchsorted(slice_heights, heights + 1e-6) - 1, 0, len(positions) - 1)
    upper = np.clip(np.searchsorted(slice_heights, heights - 1e-6), 0, len(positions) - 1)
    inside_lower = np.take_along_axis(inside, lower[None], axis=0)[0]
    inside_upper = np.take_along_axis(inside, upper[None], axis=0)[0]
    outside = ~inside_lower & ~inside_upper
    assert outside.sum() > 100
    assert np.all(volume.hu_zyx[outside] == -1024.0)


# ----------------------------------------------------------------------------- DICOM: synthetic


def test_regular_series_is_stacked_in_position_order(tmp_path: Path) -> None:
    row_dir, col_dir = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    positions = positions_along([0, 0, 1], [2.5] * 5)
    write_dicom_series(tmp_path, positions, row_dir, col_dir)
    lines: list[str] = []
    volume = read_volume(tmp_path, log=lines.append)
    assert volume.shape_zyx == (6, ROWS, COLS)
    assert volume.geometry.allclose(Geometry((DX, DY, 2.5), tuple(positions[0])))
    assert lines == [] and volume.notes == ()
    assert_reproduces_field(volume, positions, row_dir, col_dir)


def test_single_dicom_file_reads_its_series(tmp_path: Path) -> None:
    row_dir, col_dir = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    write_dicom_series(tmp_path, positions_along([0, 0, 1], [3.0] * 3), row_dir, col_dir)
    volume = read_volume(sorted(tmp_path.iterdir())[0])
    assert volume.shape_zyx == (4, ROWS, COLS)


def test_uneven_spacing_is_resampled_to_uniform_grid(tmp_path: Path) -> None:
    row_dir, col_dir = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    positions = positions_along([0, 0, 1], [2.0, 2.0, 5.0, 2.0, 2.0])
    write_dicom_series(tmp_path, positions, row_dir, col_dir)
    lines: list[str] = []
    volume = read_volume(tmp_path, log=lines.append)
    assert volume.shape_zyx == (8, ROWS, COLS)  # 13 mm at ~2 mm (median step) -> 7 steps
    assert volume.geometry.spacing_mm[2] == pytest.approx(13.0 / 7)
    assert len(lines) == 2 and "uneven slice spacing" in lines[0] and volume.notes == tuple(lines)
    assert lines[1].startswith("WARNING: missing slices: a gap of 5.0 mm")  # 2.5 x the 2 mm steps (slice_gaps)
    assert_reproduces_field(volume, positions, row_dir, col_dir)


@pytest.mark.parametrize("steps", [[3.0] * 6, [3.0, 3.0, 1.5, 4.0, 4.0, 4.0]], ids=["even", "uneven"])
def test_gantry_tilt_grid_is_orthogonal_and_geometry_exact(tmp_path: Path, steps: list[float]) -> None:
    row_dir, col_dir = tilted_axes(20.0)
    normal = np.cross(row_dir, col_dir)
    positions = positions_along([0, 0, 1], [s / normal[2] for s in steps])  # stepping along S, not n
    write_dicom_series(tmp_path, positions, row_dir, col_dir)
    lines: list[str] = []
    volume = read_volume(tmp_path, log=lines.append)
    direction = volume.geometry.direction_matrix
    np.testing.assert_allclose(direction.T @ direction, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(direction[:, 2], normal, atol=1e-6)
    assert len(lines) == 1 and lines[0].startswith("gantry tilt 20.0°: resampled 7 slices")
    assert volume.shape_zyx[1] > ROWS  # extended in-plane to cover the sheared slab
    assert_reproduces_field(volume, positions, row_dir, col_dir)
    assert_air_outside_bracketing_slices(volume, positions, row_dir, col_dir)


def test_gantry_tilt_bright_dot_stays_at_its_lps_point(tmp_path: Path) -> None:
    row_dir, col_dir = tilted_axes(18.5)
    normal = np.cross(row_dir, col_dir)
    positions = positions_along([0, 0, 1], [2.0 / normal[2]] * 9)
    dot = positions[4] + 20 * DX * row_dir + 25 * DY * col_dir + 1.0 * normal

    def ball(points: np.ndarray) -> np.ndarray:
        return np.where(np.linalg.norm(points - dot, axis=-1) < 2.5, 200.0, 0.0)  # fits int16 at SLOPE

    write_dicom_series(tmp_path, positions, row_dir, col_dir, field=ball)
    volume = read_volume(tmp_path)
    bright = volume.hu_zyx > 100
    assert 0 < bright.sum() < 200
    centroid = voxel_points(volume)[bright].mean(axis=0)
    assert np.linalg.norm(centroid - dot) < 1.0  # within one voxel (spacing 0.8 x 1 x 2 mm)
    peak = np.unravel_index(np.argmax(volume.hu_zyx), volume.shape_zyx)
    assert np.linalg.norm(voxel_points(volume)[peak] - dot) < 2.0


def test_tilt_kept_when_resampling_is_off(tmp_path: Path) -> None:
    row_dir, col_dir = tilted_axes(15.0)
    positions = positions_along([0, 0, 1], [3.0] * 5)
    write_dicom_series(tmp_path, positions, row_dir, col_dir)
    volume = read_volume(tmp_path, resample_tilt=False)
    assert volume.shape_zyx == (6, ROWS, COLS)
    np.testing.assert_allclose(volume.geometry.direction_matrix[:, 2], [0, 0, 1], atol=1e-6)
    assert "sheared" in volume.notes[0] and not volume.geometry.is_orthonormal()
    assert_reproduces_field(volume, positions, row_dir, col_dir)
    again = read_volume(write_volume(tmp_path / "sheared.nrrd", volume))
    assert again.geometry.allclose(volume.geometry, atol=1e-5)
    with pytest.raises(OutputError, match="NIfTI cannot store a sheared"):
        write_volume(tmp_path / "sheared.nii.gz", volume)
    assert not (tmp_path / "sheared.nii.gz").exists()


def test_padding_becomes_air_and_is_logged(tmp_path: Path) -> None:
    row_dir, col_dir = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    pad_mask = np.zeros((ROWS, COLS), dtype=bool)
    pad_mask[:5] = True
    write_dicom_series(tmp_path, positions_along([0, 0, 1], [2.0] * 4), row_dir, col_dir,
                       padding=-15000, pad_mask=pad_mask)
    lines: list[str] = []
    volume = read_volume(tmp_path, log=lines.append)
    assert np.all(volume.hu_zyx[:, :5] == -1024.0)
    assert np.all(volume.hu_zyx[:, 5:] > -200.0)
    assert any("padding value -15000" in line and "-1024 HU" in line for line in lines)


def test_several_series_ask_for_a_choice(tmp_path: Path) -> None:
    row_dir, col_dir = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    uid_a = write_dicom_series(tmp_path / "a", positions_along([0, 0, 1], [2.0] * 3), row_dir, col_dir)
    uid_b = write_dicom_series(tmp_path / "b", positions_along([0, 0, 1], [2.0] * 5), row_dir, col_dir)
    for f in (tmp_path / "b").iterdir():
        f.rename(tmp_path / "a" / f"b_{f.name}")
    with pytest.raises(InputError, match="holds 2 DICOM series") as info:
        read_volume(tmp_path / "a")
    assert uid_a in str(info.value) and uid_b in str(info.value) and "series_uid" in str(info.value)
    assert read_volume(tmp_path / "a", series_uid=uid_b).shape_zyx[0] == 6
    with pytest.raises(InputError, match="not found"):
        read_volume(tmp_path / "a", series_uid="1.2.999")


def test_duplicate_slice_positions_are_refused(tmp_path: Path) -> None:
    row_dir, col_dir = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    write_dicom_series(tmp_path, positions_along([0, 0, 1], [2.0, 0.0, 2.0]), row_dir, col_dir)
    with pytest.raises(InputError, match="same position"):
        read_volume(tmp_path)


# ----------------------------------------------------------------------------- DICOM: the real tilted scan


@pytest.fixture(scope="module")
def real_ct(tilted_ct_dir: Path) -> tuple[CTVolume, list[str]]:
    lines: list[str] = []
    return read_volume(tilted_ct_dir, log=lines.append), lines


def test_real_tilted_scan_geometry(real_ct, tilted_ct_dir: Path) -> None:  # noqa: ANN001
    volume, lines = real_ct
    first = pydicom.dcmread(tilted_ct_dir / "01.dcm", stop_before_pixels=True)
    iop = np.asarray([float(v) for v in first.ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    direction = volume.geometry.direction_matrix
    np.testing.assert_allclose(direction.T @ direction, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(direction[:, :2], np.column_stack([iop[:3], iop[3:]]), atol=1e-6)
    np.testing.assert_allclose(direction[:, 2], normal, atol=1e-6)
    k, j, i = volume.shape_zyx
    assert i == 512 and j > 512 and 28 <= k <= 40
    spacing = volume.geometry.spacing_mm
    assert spacing[:2] == pytest.approx((0.4882812, 0.4882812)) and 3.9 < spacing[2] < 5.5
    assert any(line.startswith("gantry tilt 18.5°: resampled 28 slices") for line in lines)
    assert any("padding value -1500" in line for line in lines)
    assert volume.notes == tuple(lines)


def test_real_tilted_scan_first_slice_is_kept_exactly(real_ct, tilted_ct_dir: Path) -> None:  # noqa: ANN001
    volume, _ = real_ct
    first = pydicom.dcmread(tilted_ct_dir / "01.dcm")
    hu = first.pixel_array.astype(np.float32) * float(first.RescaleSlope) + float(first.RescaleIntercept)
    hu[first.pixel_array == int(first.PixelPaddingValue)] = -1024.0
    origin = np.asarray([float(v) for v in first.ImagePositionPatient])
    ijk = np.linalg.solve(volume.geometry.ijk_to_lps()[:3, :3], origin - volume.geometry.origin_lps)
    i0, j0, k0 = (round(x) for x in ijk)
    np.testing.assert_allclose(ijk, (i0, j0, k0), atol=1e-4)  # slice 1's first pixel is a grid voxel
    np.testing.assert_allclose(volume.hu_zyx[k0, j0:j0 + 512, i0:i0 + 512], hu, atol=1e-3)


def test_real_tilted_scan_hu_range_and_validation(real_ct) -> None:  # noqa: ANN001
    volume, _ = real_ct
    hu = volume.hu_zyx
    assert hu.dtype == np.float32
    assert hu.min() == pytest.approx(-1024.0, abs=30)
    assert np.mean(hu < -900) > 0.3  # air around the head
    assert np.percentile(hu, 99.5) > 700  # skull
    validate_ct(volume)


def test_real_scan_round_trips_through_nrrd(real_ct, tmp_path: Path) -> None:  # noqa: ANN001
    volume, _ = real_ct
    path = write_volume(tmp_path / "ct.nrrd", volume)
    again = read_volume(path)
    assert again.geometry.allclose(volume.geometry, atol=1e-5)
    np.testing.assert_array_equal(again.hu_zyx, np.rint(volume.hu_zyx))


# ----------------------------------------------------------------------------- NIfTI / NRRD round trips


def rotated_geometry() -> Geometry:
    angle = math.radians(25)
    rot = np.array([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]])
    return Geometry((0.45, 0.5, 5.0), (-100.0, -80.5, 12.25), tuple(float(x) for x in rot.ravel()))


def ct_phantom(shape=(6, 40, 48)) -> np.ndarray:  # noqa: B006
    """Air with a soft-tissue block and a bone rim, as HU float32 [k, j, i]."""
    hu = np.full(shape, -1000.0, dtype=np.float32)
    hu[:, 8:32, 8:40] = 40.0
    hu[:, 8:10, 8:40] = 1200.0
    return hu + np.arange(shape[2], dtype=np.float32)[None, None, :]  # not constant per row


@pytest.mark.parametrize("name", ["ct.nii.gz", "ct.nii", "ct.nrrd", "ct.mha"])
def test_volume_round_trip_keeps_array_and_geometry(tmp_path: Path, name: str) -> None:
    volume = CTVolume(ct_phantom(), rotated_geometry(), source="phantom")
    again = read_volume(write_volume(tmp_path / name, volume))
    assert again.geometry.allclose(volume.geometry, atol=1e-4)
    np.testing.assert_array_equal(again.hu_zyx, volume.hu_zyx)
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_write_volume_refuses_overwrite_and_unknown_extension(tmp_path: Path) -> None:
    volume = CTVolume(ct_phantom(), rotated_geometry())
    path = write_volume(tmp_path / "ct.nrrd", volume)
    before = path.read_bytes()
    with pytest.raises(OutputError, match="not overwriting"):
        write_volume(path, CTVolume(ct_phantom() + 5, rotated_geometry()))
    assert path.read_bytes() == before
    write_volume(path, CTVolume(ct_phantom() + 5, rotated_geometry()), overwrite=True)
    assert read_volume(path).hu_zyx.max() == ct_phantom().max() + 5
    with pytest.raises(OutputError, match="use one of"):
        write_volume(tmp_path / "ct.png", volume)


def test_failed_volume_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_write(image, name, *args, **kwargs) -> None:  # noqa: ANN001
        Path(name).write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", broken_write)
    with pytest.raises(OutputError, match="disk full"):
        write_volume(tmp_path / "ct.nii.gz", CTVolume(ct_phantom(), rotated_geometry()))
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- bad input


def write_sitk(path: Path, array: np.ndarray, vector: bool = False) -> Path:
    sitk.WriteImage(sitk.GetImageFromArray(array, isVector=vector), str(path))
    return path


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_volume(tmp_path / "nope.nii.gz")


def test_text_file_is_unknown_format(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="unknown or unreadable format"):
        read_volume(tmp_path / "notes.txt")


def test_text_file_named_nifti_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / "fake.nii.gz").write_text("not an image")
    with pytest.raises(InputError, match="cannot read .*fake.nii.gz"):
        read_volume(tmp_path / "fake.nii.gz")


def test_png_is_refused_as_2d(tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(tmp_path / "slice.png")
    with pytest.raises(InputError, match="2D picture"):
        read_volume(tmp_path / "slice.png")


@pytest.mark.parametrize("shape", [(30, 30), (1, 30, 30)], ids=["2d", "one-slice"])
def test_2d_nifti_is_refused(tmp_path: Path, shape: tuple[int, ...]) -> None:
    values = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    path = write_sitk(tmp_path / "flat.nii.gz", values)
    with pytest.raises(InputError, match="is a 2D image"):
        read_volume(path)


def test_4d_nifti_is_refused(tmp_path: Path) -> None:
    values = np.random.default_rng(0).normal(size=(3, 4, 8, 8)).astype(np.float32)
    path = write_sitk(tmp_path / "time.nii.gz", values)
    with pytest.raises(InputError, match="4D"):
        read_volume(path)


def test_multi_component_is_refused(tmp_path: Path) -> None:
    path = write_sitk(tmp_path / "rgb.nrrd", np.zeros((4, 8, 8, 3), dtype=np.uint8), vector=True)
    with pytest.raises(InputError, match="3 values per voxel"):
        read_volume(path)


def test_constant_volume_is_refused(tmp_path: Path) -> None:
    path = write_sitk(tmp_path / "flat.nrrd", np.full((5, 40, 40), -1000, dtype=np.int16))
    with pytest.raises(InputError, match="empty .*-1000"):
        read_volume(path)


def test_nan_volume_is_refused(tmp_path: Path) -> None:
    array = ct_phantom()
    array[2, 3, 4] = np.nan
    array[1, 1, 1] = np.inf
    with pytest.raises(InputError, match="2 of .* NaN or infinite"):
        read_volume(write_sitk(tmp_path / "nan.nii.gz", array))


def test_folder_without_dicom(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    (tmp_path / "series1").mkdir()
    with pytest.raises(InputError, match="no DICOM image files .*series1"):
        read_volume(tmp_path)


# ----------------------------------------------------------------------------- validate_ct


def test_validate_ct_accepts_ct_phantom() -> None:
    validate_ct(CTVolume(ct_phantom(), rotated_geometry()))


def test_validate_ct_refuses_mr_like_values() -> None:
    rng = np.random.default_rng(1)
    mr = np.clip(rng.normal(1500, 900, size=(6, 40, 48)), 0, 4000).astype(np.float32)
    mr[:, :5] = 0.0  # MR background is 0, not -1000
    with pytest.raises(InputError, match="do not look like CT Hounsfield units"):
        validate_ct(CTVolume(mr, rotated_geometry(), source="mr.nii.gz"))


def test_validate_ct_refuses_ct_without_rescale_intercept() -> None:
    raw = ct_phantom() + 1024.0  # stored values of a CT with intercept -1024 left out
    with pytest.raises(InputError, match="rescale"):
        validate_ct(CTVolume(raw, rotated_geometry()))


@pytest.mark.parametrize(("hu", "spacing", "message"), [
    (ct_phantom((2, 40, 48)), (0.5, 0.5, 5.0), "only 2 slice"),
    (ct_phantom((6, 20, 48)), (0.5, 0.5, 5.0), "too small"),
    (ct_phantom(), (0.5, 0.5, 0.0), "not plausible"),
    (ct_phantom(), (0.5, 0.5, 50.0), "not plausible"),
    (np.full((6, 40, 48), 40.0, dtype=np.float32), (0.5, 0.5, 5.0), "empty"),
    (np.where(ct_phantom() > 0, np.nan, ct_phantom()).astype(np.float32), (0.5, 0.5, 5.0), "NaN"),
], ids=["few-slices", "tiny", "zero-spacing", "huge-spacing", "constant", "nan"])
def test_validate_ct_refuses(hu: np.ndarray, spacing: tuple[float, float, float], message: str) -> None:
    with pytest.raises(InputError, match=message):
        validate_ct(CTVolume(hu, Geometry(spacing)))
