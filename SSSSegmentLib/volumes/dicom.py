"""Read one DICOM CT series (a folder of single-frame slices) into HU with its LPS geometry.

Slices are sorted by their position along the slice normal (``row × column`` of
ImageOrientationPatient), stored values become HU through RescaleSlope/Intercept, and
PixelPaddingValue voxels become air (−1024 HU). Uneven slice spacing and gantry tilt (slice
positions that do not step along the normal) are resampled onto an orthogonal, uniform grid by
:mod:`.stack_resample`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .geometry import CTVolume
from .slice_gaps import gap_warnings
from .stack_resample import AIR_HU, SliceStack, stack_layout, stack_to_volume

LogFn = Callable[[str], None]


@dataclass(frozen=True)
class SeriesInfo:
    """One series found in a folder: its UID, a readable description and its files."""

    uid: str
    description: str
    files: tuple[Path, ...]


def read_dicom_header(path: Path):  # noqa: ANN202  (pydicom.Dataset | None)
    """The DICOM header of ``path`` without pixels, or None when it is not a DICOM file."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, AttributeError, KeyError):
        return None


def find_series(folder: Path) -> list[SeriesInfo]:
    """The image series among the files directly inside ``folder`` (non-DICOM files are skipped)."""
    groups: dict[str, list[Path]] = {}
    descriptions: dict[str, str] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        header = read_dicom_header(path)
        if header is None or "Rows" not in header:
            continue
        uid = str(header.get("SeriesInstanceUID", "unknown"))
        groups.setdefault(uid, []).append(path)
        descriptions.setdefault(uid, f"{header.get('Modality', '?')} '{header.get('SeriesDescription', '')}'")
    return [SeriesInfo(uid, f"{descriptions[uid]}, {len(files)} files", tuple(files))
            for uid, files in groups.items()]


def select_series(folder: Path, series_uid: str | None) -> SeriesInfo:
    """The one series to read from ``folder``; InputError when none, or several and no choice given."""
    series = find_series(folder)
    if not series:
        subdirs = sorted(p.name for p in folder.iterdir() if p.is_dir())
        hint = (f"; it has subfolders ({', '.join(subdirs[:5])}): pass the series folder itself"
                if subdirs else "")
        raise InputError(f"no DICOM image files in folder {folder}{hint}")
    if series_uid is not None:
        chosen = [s for s in series if s.uid == series_uid]
        if not chosen:
            raise InputError(f"series {series_uid} not found in {folder}; it holds: "
                             + "; ".join(f"{s.uid} ({s.description})" for s in series))
        return chosen[0]
    if len(series) > 1:
        listing = "; ".join(f"{s.uid} ({s.description})" for s in series)
        raise InputError(f"folder {folder} holds {len(series)} DICOM series: {listing}. "
                         "Choose one with series_uid=... (CLI: --series-uid)")
    return series[0]


def _slice_hu(dataset) -> np.ndarray:  # noqa: ANN001
    """HU of one slice, shape (rows, columns), float32; padding voxels set to air."""
    try:
        stored = dataset.pixel_array
    except (NotImplementedError, RuntimeError, ValueError, AttributeError) as exc:
        syntax = dataset.file_meta.get("TransferSyntaxUID", "?")
        raise InputError(f"cannot decode the pixel data of {dataset.filename} "
                         f"(transfer syntax {syntax}): {exc}") from exc
    if stored.ndim != 2:
        raise InputError(f"{dataset.filename} is a multi-frame or colour DICOM image (pixel array shape "
                         f"{stored.shape}); only single-frame greyscale CT slices are supported")
    slope = float(dataset.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(dataset.get("RescaleIntercept", 0.0) or 0.0)
    hu = stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    padding = _padding_mask(dataset, stored)
    if padding is not None:
        hu[padding] = AIR_HU
    return hu


def _padding_mask(dataset, stored: np.ndarray) -> np.ndarray | None:  # noqa: ANN001
    """Voxels equal to PixelPaddingValue (or within its range limit), or None without the tag."""
    if "PixelPaddingValue" not in dataset:
        return None
    pad = int(dataset.PixelPaddingValue)
    limit = dataset.get("PixelPaddingRangeLimit")
    if limit is None:
        return stored == pad
    low, high = sorted((pad, int(limit)))
    return (stored >= low) & (stored <= high)


def _check_same_grid(datasets: list) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Common row/column directions (LPS unit vectors) and pixel spacing (column, row) in mm."""
    first = datasets[0]
    for name in ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing"):
        missing = [d.filename for d in datasets if name not in d]
        if missing:
            raise InputError(f"DICOM slice {missing[0]} has no {name}: cannot place it in 3D "
                             "(is this a secondary capture or a scout image?)")
    iop = np.asarray([float(v) for v in first.ImageOrientationPatient])
    spacing = (float(first.PixelSpacing[1]), float(first.PixelSpacing[0]))  # along rows, along columns
    for d in datasets[1:]:
        same_iop = np.allclose([float(v) for v in d.ImageOrientationPatient], iop, atol=1e-4)
        if not same_iop or (d.Rows, d.Columns) != (first.Rows, first.Columns):
            raise InputError(f"the series mixes slice orientations or sizes ({d.filename} differs from "
                             f"{first.filename}); cannot stack it into one volume")
    row_dir, col_dir = iop[:3] / np.linalg.norm(iop[:3]), iop[3:] / np.linalg.norm(iop[3:])
    if abs(float(row_dir @ col_dir)) > 1e-3:
        raise InputError(f"ImageOrientationPatient of {first.filename} is not orthogonal: {list(iop)}")
    return row_dir, col_dir, spacing


def read_dicom_series(folder: Path, series_uid: str | None = None, log: LogFn | None = None,
                      resample_tilt: bool = True) -> CTVolume:
    """Read the CT series in ``folder`` (or the one given by ``series_uid``) as HU float32 [k, j, i].

    Output geometry: i along the DICOM row direction, j along the column direction, k along the
    slice normal (LPS). With ``resample_tilt=False`` a tilted stack keeps its acquired slices and
    gets a non-orthogonal (sheared) direction matrix instead.
    """
    import pydicom

    series = select_series(Path(folder), series_uid)
    datasets = [pydicom.dcmread(p) for p in series.files]
    if len(datasets) < 2:
        raise InputError(f"the DICOM series in {folder} has a single slice ({series.files[0].name}): "
                         "a 3D CT volume is needed, not a 2D image")
    row_dir, col_dir, spacing = _check_same_grid(datasets)
    positions = np.asarray([[float(v) for v in d.ImagePositionPatient] for d in datasets])
    slices_hu = np.stack([_slice_hu(d) for d in datasets])
    notes: list[str] = []
    if any("PixelPaddingValue" in d for d in datasets):
        notes.append(f"padding value {int(datasets[0].PixelPaddingValue)} (outside the scan field) "
                     f"set to {AIR_HU:.0f} HU (air)")
    stack = SliceStack(slices_hu=slices_hu, positions_lps=positions, row_dir=row_dir, col_dir=col_dir,
                       pixel_spacing=spacing, tilt_tag_deg=_tilt_tag(datasets[0]))
    layout = stack_layout(stack)
    thickness = np.asarray([_float_tag(d, "SliceThickness") for d in datasets])[layout.order]
    warnings = gap_warnings(layout.heights, thickness, str(folder))  # refuses a series with a wide gap
    hu_zyx, geometry, resample_notes, planes = stack_to_volume(stack, resample_tilt=resample_tilt)
    notes.extend(resample_notes)
    notes.extend(warnings)
    for line in notes:
        if log is not None:
            log(line)
    return CTVolume(hu_zyx=hu_zyx, geometry=geometry, source=str(folder), notes=tuple(notes), planes=planes,
                    warnings=warnings)


def _float_tag(dataset, name: str) -> float:  # noqa: ANN001
    """A numeric tag's value, NaN when it is absent, empty or not a number."""
    try:
        return float(dataset.get(name))
    except (TypeError, ValueError):
        return float("nan")


def _tilt_tag(dataset) -> float | None:  # noqa: ANN001
    """GantryDetectorTilt in degrees when the header has it."""
    value = dataset.get("GantryDetectorTilt")
    return None if value is None or value == "" else float(value)
