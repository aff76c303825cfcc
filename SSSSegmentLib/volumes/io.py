"""Read a CT volume from DICOM, NIfTI, NRRD or MetaImage; write one as int16 HU.

Every reader returns a :class:`CTVolume`: HU float32 indexed [k, j, i] with its LPS geometry.
Unusable input raises :class:`InputError` with a message naming the file and the problem.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import InputError, OutputError
from ..fsutil import atomic_path, check_writable_output
from .checks import check_values
from .dicom import read_dicom_header, read_dicom_series
from .geometry import CTVolume, Geometry

LogFn = Callable[[str], None]

ITK_VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
WRITE_VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")  # single-file formats (atomic rename)
IMAGE_2D_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


def full_suffix(path: Path, known: tuple[str, ...]) -> str | None:
    """The entry of ``known`` that ``path``'s name ends with (case-insensitive), or None."""
    name = path.name.lower()
    return next((s for s in known if name.endswith(s)), None)


def input_folder(path: Path) -> Path | None:
    """The DICOM folder ``read_volume`` reads for ``path``: the folder itself, or the folder of a single
    file that is not a NIfTI/NRRD/MetaImage/2D picture (a DICOM slice: its series is read from its
    folder); None for single-file volumes and missing paths."""
    path = Path(path)
    if path.is_dir():
        return path
    if not path.is_file() or full_suffix(path, ITK_VOLUME_SUFFIXES + IMAGE_2D_SUFFIXES):
        return None
    return path.parent if read_dicom_header(path) is not None else None


def read_volume(path: Path, log: LogFn | None = None, series_uid: str | None = None,
                resample_tilt: bool = True) -> CTVolume:
    """Read a CT volume as HU float32 [k, j, i] with LPS geometry.

    ``path``: a DICOM series folder, one DICOM file (its series is read from its folder), or a
    NIfTI (.nii/.nii.gz), NRRD (.nrrd/.nhdr) or MetaImage (.mha/.mhd) file. ``series_uid`` picks
    one series from a folder that holds several. ``log`` receives one line per correction made
    (padding, gantry tilt, uneven spacing); the same lines are in ``CTVolume.notes``.
    Raises InputError for a missing path, unknown or unreadable format, 2D or 4D/multi-component
    data, NaN/inf values or a constant volume. CT plausibility is :func:`validate_ct`'s job.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"input does not exist: {path}")
    if path.is_dir():
        volume = read_dicom_series(path, series_uid=series_uid, log=log, resample_tilt=resample_tilt)
    elif full_suffix(path, ITK_VOLUME_SUFFIXES):
        volume = _read_itk_volume(path)
    elif full_suffix(path, IMAGE_2D_SUFFIXES):
        raise InputError(f"{path} is a 2D picture ({path.suffix}); a 3D CT volume is needed "
                         "(DICOM series folder, NIfTI, NRRD or MetaImage)")
    elif (header := read_dicom_header(path)) is not None:
        uid = series_uid or str(header.get("SeriesInstanceUID", "")) or None
        volume = read_dicom_series(path.parent, series_uid=uid, log=log, resample_tilt=resample_tilt)
    else:
        raise InputError(f"unknown or unreadable format: {path} is not DICOM and its extension is not one of "
                         f"{', '.join(ITK_VOLUME_SUFFIXES)}")
    check_values(volume.hu_zyx, str(path))
    return volume


def _read_itk_volume(path: Path) -> CTVolume:
    """Read a 3D scalar image with SimpleITK (NIfTI/NRRD/MetaImage) as HU float32."""
    import SimpleITK as sitk  # noqa: N813

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
        size, components = reader.GetSize(), reader.GetNumberOfComponents()
        image = reader.Execute()
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
        raise InputError(f"cannot read {path} as {full_suffix(path, ITK_VOLUME_SUFFIXES)}: "
                         f"the file is damaged or not in that format ({first_line})") from exc
    if components > 1:
        raise InputError(f"{path} has {components} values per voxel (colour or vector image); "
                         "a single-channel CT volume is needed")
    image = _as_3d(image, size, path)
    bad = _nifti_nonfinite_count(path) if full_suffix(path, (".nii", ".nii.gz")) else 0
    if bad:
        raise InputError(f"{path}: {bad} of {image.GetNumberOfPixels()} voxels are NaN or infinite; "
                         "the volume is corrupt or was saved from a failed computation")
    hu_zyx = sitk.GetArrayViewFromImage(image).astype(np.float32)  # one copy, not two
    return CTVolume(hu_zyx=hu_zyx, geometry=Geometry.from_sitk(image), source=str(path))


_NIFTI_FLOAT_TYPES = {16: np.float32, 64: np.float64}


def _nifti_nonfinite_count(path: Path) -> int:
    """NaN/inf voxels stored in a float NIfTI file (ITK's reader silently turns them into 0).

    Also the check that the file holds all its voxels: ITK reads a truncated NIfTI (gzipped or not)
    without complaint, filling the missing voxels, so a cut-off file raises InputError here, naming it.
    """
    raw = _nifti_bytes(path)
    order = "<" if int.from_bytes(raw[:4], "little") in (348, 540) else ">"
    if int.from_bytes(raw[:4], "little" if order == "<" else "big") == 540:  # NIfTI-2
        datatype, bitpix = (int(v) for v in np.frombuffer(raw, f"{order}i2", 2, 12))
        offset = int(np.frombuffer(raw, f"{order}i8", 1, 168)[0])
        dims = np.frombuffer(raw, f"{order}i8", 8, 16)
    else:
        datatype, bitpix = (int(v) for v in np.frombuffer(raw, f"{order}i2", 2, 70))
        offset = int(np.frombuffer(raw, f"{order}f4", 1, 108)[0])
        dims = np.frombuffer(raw, f"{order}i2", 8, 40)
    n_dims = int(np.clip(dims[0], 1, 7))
    expected = offset + int(np.prod(np.maximum(dims[1:n_dims + 1].astype(np.int64), 1))) * bitpix // 8
    if len(raw) < expected:
        raise InputError(f"{path} is truncated: it holds {len(raw)} of the {expected} bytes its header "
                         "announces (an interrupted copy or download?)")
    if datatype not in _NIFTI_FLOAT_TYPES:
        return 0
    dtype = np.dtype(_NIFTI_FLOAT_TYPES[datatype]).newbyteorder(order)
    values = np.frombuffer(raw, dtype, (len(raw) - offset) // dtype.itemsize, offset)
    return int(values.size - np.count_nonzero(np.isfinite(values)))


def _nifti_bytes(path: Path) -> bytes:
    """The file's bytes, un-gzipped for ``.gz``; InputError naming the file when it is cut off or damaged."""
    import gzip
    import zlib

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except EOFError as error:
        raise InputError(f"{path} is truncated: the compressed data ends early "
                         "(an interrupted copy or download?)") from error
    except (OSError, zlib.error) as error:
        raise InputError(f"cannot read {path}: the file is damaged ({error})") from error
    if len(raw) < 352:
        raise InputError(f"{path} is truncated: {len(raw)} bytes, shorter than a NIfTI header")
    return raw


def _as_3d(image, size: tuple[int, ...], path: Path):  # noqa: ANN001, ANN202  (SimpleITK.Image)
    """The image as 3D: InputError for 2D images (or one slice) and true 4D data."""
    import SimpleITK as sitk  # noqa: N813

    if len(size) == 4 and size[3] == 1:
        image = sitk.Extract(image, [*size[:3], 0], [0, 0, 0, 0])
        size = size[:3]
    if len(size) > 3:
        raise InputError(f"{path} is {len(size)}D with size {tuple(size)} (a time series or several "
                         "volumes); a single 3D CT volume is needed")
    if len(size) < 3 or min(size) == 1:
        raise InputError(f"{path} is a 2D image (size {tuple(size)}); a 3D CT volume is needed")
    return image


def check_nifti_can_store(path: Path, geometry: Geometry) -> None:
    """OutputError when ``path`` is NIfTI and the grid is sheared (NIfTI would silently square it)."""
    if full_suffix(path, (".nii", ".nii.gz")) and not geometry.is_orthonormal():
        raise OutputError(f"cannot write {path.name}: NIfTI cannot store a sheared (gantry-tilt) grid; "
                          "write .nrrd or .mha instead, or read the scan with tilt resampling on")


def write_volume(path: Path, volume: CTVolume, overwrite: bool = False) -> Path:
    """Write ``volume`` as int16 HU (rounded, clipped) to .nrrd, .nii, .nii.gz or .mha, atomically.

    Raises OutputError for another extension, an existing file (unless ``overwrite``), an
    unwritable directory or a writer failure; nothing is left behind on failure.
    """
    import SimpleITK as sitk  # noqa: N813

    path = Path(path)
    if full_suffix(path, WRITE_VOLUME_SUFFIXES) is None:
        raise OutputError(f"cannot write a volume to {path.name}: "
                          f"use one of {', '.join(WRITE_VOLUME_SUFFIXES)}")
    check_nifti_can_store(path, volume.geometry)
    check_writable_output(path, overwrite=overwrite)
    hu_int16 = np.clip(np.rint(volume.hu_zyx), -32768, 32767).astype(np.int16)
    image = volume.to_sitk(hu_int16)
    with atomic_path(path) as tmp:
        try:
            sitk.WriteImage(image, str(tmp), useCompression=True)
        except RuntimeError as exc:
            raise OutputError(f"could not write {path}: {str(exc).strip().splitlines()[-1]}") from exc
    return path
