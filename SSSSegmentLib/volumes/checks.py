"""Input validation: refuse volumes the engine cannot segment, with a message saying why.

:func:`check_values` holds for any volume that was read (finite, not constant) and runs inside
``read_volume``. :func:`validate_ct` adds the CT-specific rules and runs before segmentation:

- at least ``MIN_SLICES`` slices and ``MIN_IN_PLANE`` × ``MIN_IN_PLANE`` voxels per slice, counted on
  the axial grid the engine segments (a coronal or sagittal volume is reoriented first, see
  :mod:`.orientation`);
- every voxel spacing within ``SPACING_RANGE_MM`` and an invertible direction matrix;
- "looks like Hounsfield units": a CT of the head holds air (below ``AIR_BELOW_HU``) around the
  head and in the sinuses, and soft tissue or bone (``TISSUE_RANGE_HU``). We require at least
  ``MIN_AIR_FRACTION`` of the voxels to be air and ``MIN_TISSUE_FRACTION`` to be tissue. MR (values
  ≥ 0 on an arbitrary scale) or a CT stored without its rescale intercept (0..4095) has no voxel
  below −500 and is refused. A CT cropped so tightly that it holds no air at all is refused too.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .geometry import CTVolume
from .orientation import axial_reorientation

MIN_SLICES = 3
MIN_IN_PLANE = 32
SPACING_RANGE_MM = (0.05, 20.0)
AIR_BELOW_HU = -500.0
TISSUE_RANGE_HU = (-200.0, 3000.0)
MIN_AIR_FRACTION = 0.001
MIN_TISSUE_FRACTION = 0.01


def check_values(values: np.ndarray, source: str) -> None:
    """InputError when ``values`` (any shape) holds NaN/inf or a single value everywhere."""
    finite = np.isfinite(values)
    if not finite.all():
        bad = int(values.size - np.count_nonzero(finite))
        raise InputError(f"{source}: {bad} of {values.size} voxels are NaN or infinite; "
                         "the volume is corrupt or was saved from a failed computation")
    if values.size == 0 or float(values.min()) == float(values.max()):
        value = float(values.flat[0]) if values.size else float("nan")
        raise InputError(f"{source}: the volume is empty (every voxel is {value:g})")


def check_shape(shape_zyx: tuple[int, ...], source: str) -> None:
    """InputError when the grid is not 3D or too small to segment."""
    if len(shape_zyx) != 3:
        raise InputError(f"{source}: a 3D volume is needed, got an array of shape {tuple(shape_zyx)}")
    k, j, i = shape_zyx
    if k < MIN_SLICES:
        raise InputError(f"{source}: only {k} slice(s); at least {MIN_SLICES} are needed")
    if min(j, i) < MIN_IN_PLANE:
        raise InputError(f"{source}: slices of {i} × {j} voxels are too small "
                         f"(at least {MIN_IN_PLANE} × {MIN_IN_PLANE} needed)")


def axial_shape_zyx(volume: CTVolume) -> tuple[int, ...]:
    """The array shape (K, J, I) on the axial working grid (the stored shape for an unusable direction)."""
    if volume.hu_zyx.ndim != 3 or abs(float(np.linalg.det(volume.geometry.direction_matrix))) < 1e-3:
        return volume.shape_zyx
    return axial_reorientation(volume.geometry).working_shape_zyx(volume.shape_zyx)


def check_spacing(volume: CTVolume) -> None:
    """InputError unless every spacing is plausible for CT and the direction matrix is invertible."""
    low, high = SPACING_RANGE_MM
    spacing = volume.geometry.spacing_mm
    if not all(low <= s <= high for s in spacing):
        raise InputError(f"{volume.source}: voxel spacing {tuple(round(s, 4) for s in spacing)} mm is not "
                         f"plausible for CT (each must be within {low}–{high} mm); check the file's header")
    if abs(float(np.linalg.det(volume.geometry.direction_matrix))) < 1e-3:
        raise InputError(f"{volume.source}: the direction matrix is singular: {volume.geometry.direction}")


def check_hounsfield(values: np.ndarray, source: str) -> None:
    """InputError unless the values look like HU (enough air and enough tissue, see module docs)."""
    air_fraction = float(np.count_nonzero(values < AIR_BELOW_HU)) / values.size
    low, high = TISSUE_RANGE_HU
    tissue_fraction = float(np.count_nonzero((values >= low) & (values <= high))) / values.size
    if air_fraction >= MIN_AIR_FRACTION and tissue_fraction >= MIN_TISSUE_FRACTION:
        return
    value_range = f"{float(values.min()):g}..{float(values.max()):g}"
    raise InputError(
        f"{source}: the values do not look like CT Hounsfield units (range {value_range}; "
        f"{100 * air_fraction:.2f}% of voxels below {AIR_BELOW_HU:g} HU (air), "
        f"{100 * tissue_fraction:.1f}% within {low:g}..{high:g} HU (tissue)). A head CT has air near "
        "-1000 HU and tissue/bone above it; is this an MR image, or a CT saved without its rescale "
        "slope/intercept?")


def validate_ct(volume: CTVolume) -> None:
    """Raise InputError unless ``volume`` is a plausible CT in HU that the engine can segment.

    Checks, in order: finite and not constant values, grid size, spacing/direction, HU range.
    """
    source = volume.source or "volume"
    check_values(volume.hu_zyx, source)
    check_shape(axial_shape_zyx(volume), source)
    check_spacing(volume)
    check_hounsfield(volume.hu_zyx, source)
