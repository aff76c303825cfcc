"""Turn a stack of 2D slices placed in LPS into a regular 3D grid (gantry tilt, uneven spacing).

Frame and notation (all in LPS mm): ``r`` is the DICOM row direction (increasing column index i),
``c`` the column direction (increasing row index j), ``n = r × c`` the slice normal. Slice ``s``
has its first pixel at ``p_s`` and pixel (i, j) at ``p_s + i·dx·r + j·dy·c``; its height along the
normal is ``h_s = p_s · n``.

The output grid has axes ``r, c, v`` where ``v`` is the interpolation direction: the normal ``n``
(orthogonal grid, the default) or, for ``resample_tilt=False``, the acquired stacking direction.
A voxel ``x`` of output slice k sits at height ``h = h_0 + k·Δh``; the line through ``x`` along
``v`` meets slice s at ``y_s = x − ((h − h_s)/(v·n))·v``. With ``q_s = p_s − ((h_s − h_0)/(v·n))·v``
(slice s's first pixel slid along v to the plane of slice 0) the pixel of slice s under ``y_s``
is ``(i + i0 − a_s/dx, j + j0 − b_s/dy)`` with ``a_s = (q_s − p_0)·r`` and ``b_s = (q_s − p_0)·c``:
a pure in-plane translation per slice, independent of k. So each slice is shifted once onto the
output in-plane grid (bilinear) and output slices are linear blends of the two slices that
bracket their height. Voxels outside the acquired data get air (−1024 HU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .geometry import AcquiredPlanes, Geometry

AIR_HU = -1024.0


@dataclass(frozen=True)
class SliceStack:
    """Slices as acquired (any order). ``slices_hu``: (S, rows, columns) float32 HU.

    ``positions_lps``: (S, 3) ImagePositionPatient; ``row_dir``/``col_dir``: unit LPS vectors of
    ImageOrientationPatient; ``pixel_spacing``: (dx along row_dir, dy along col_dir) in mm.
    """

    slices_hu: np.ndarray
    positions_lps: np.ndarray
    row_dir: np.ndarray
    col_dir: np.ndarray
    pixel_spacing: tuple[float, float]
    tilt_tag_deg: float | None = None

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_dir, self.col_dir)


@dataclass(frozen=True)
class StackLayout:
    """Derived layout of a sorted stack: heights along the normal and in-plane offsets (mm)."""

    order: np.ndarray  # indices that sort the slices by height
    heights: np.ndarray  # (S,) sorted h_s
    offsets_r: np.ndarray  # (S,) (p_s − p_0)·r, sorted
    offsets_c: np.ndarray  # (S,) (p_s − p_0)·c, sorted

    @property
    def steps(self) -> np.ndarray:
        return np.diff(self.heights)


def stack_layout(stack: SliceStack) -> StackLayout:
    """Sort slices along the normal; InputError when two slices share a position."""
    heights = stack.positions_lps @ stack.normal
    order = np.argsort(heights, kind="stable")
    rel = stack.positions_lps[order] - stack.positions_lps[order[0]]
    layout = StackLayout(order, heights[order], rel @ stack.row_dir, rel @ stack.col_dir)
    if np.any(layout.steps < 1e-3):
        dup = int(np.argmin(layout.steps))
        raise InputError(f"two slices lie at the same position along the slice normal "
                         f"(height {layout.heights[dup]:.3f} mm): the series holds several acquisitions "
                         "or duplicate files; export a single acquisition")
    return layout


def is_tilted(stack: SliceStack, layout: StackLayout) -> bool:
    """True when slice positions move in-plane by more than 5 % of a pixel (sheared stack)."""
    tol = 0.05 * min(stack.pixel_spacing)
    return bool(np.max(np.hypot(layout.offsets_r, layout.offsets_c)) > tol)


def is_uneven(layout: StackLayout) -> bool:
    """True when slice steps along the normal differ from their median by more than 1 %."""
    steps = layout.steps
    median = float(np.median(steps))
    return bool(np.max(np.abs(steps - median)) > max(0.01 * median, 1e-3))


def tilt_angle_deg(layout: StackLayout) -> float:
    """Angle between the stacking direction (first to last slice) and the slice normal."""
    shift = math.hypot(float(layout.offsets_r[-1]), float(layout.offsets_c[-1]))
    return math.degrees(math.atan2(shift, float(layout.heights[-1] - layout.heights[0])))


def _direction(r: np.ndarray, c: np.ndarray, v: np.ndarray) -> tuple[float, ...]:
    """Row-major 3x3 direction whose columns are r, c, v."""
    return tuple(float(x) for x in np.column_stack([r, c, v]).ravel())


def _stacked(stack: SliceStack, layout: StackLayout) -> tuple[np.ndarray, Geometry]:
    """Sorted slices as they are (already a uniform orthogonal grid)."""
    dx, dy = stack.pixel_spacing
    geometry = Geometry(
        spacing_mm=(dx, dy, float(np.median(layout.steps))),
        origin_lps=tuple(float(x) for x in stack.positions_lps[layout.order[0]]),
        direction=_direction(stack.row_dir, stack.col_dir, stack.normal),
    )
    return np.ascontiguousarray(stack.slices_hu[layout.order], dtype=np.float32), geometry


def _shift_slice(slice_hu: np.ndarray, offset_ji: tuple[float, float], out_ji: np.ndarray) -> None:
    """out_ji[j, i] = slice_hu[j + offset_j, i + offset_i] (bilinear; air outside the slice), written
    into ``out_ji`` (float32 (J, I)): scipy computes in float64 and rounds each value as it stores it."""
    from scipy import ndimage

    offset = tuple(round(o) if abs(o - round(o)) < 1e-6 else o for o in offset_ji)
    ndimage.affine_transform(slice_hu, np.ones(2), offset=offset, output=out_ji,
                             order=1, mode="constant", cval=AIR_HU)


def _blend_weights(heights: np.ndarray, out_heights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each output height: index of the lower bracketing slice and the weight of the upper one."""
    upper = np.clip(np.searchsorted(heights, out_heights, side="right"), 1, len(heights) - 1)
    lower = upper - 1
    weight = (out_heights - heights[lower]) / (heights[upper] - heights[lower])
    return lower, np.clip(weight, 0.0, 1.0)


def _resampled(stack: SliceStack, layout: StackLayout, v: np.ndarray) -> tuple[AcquiredPlanes, Geometry]:
    """Resample onto the grid with axes r, c, v (see the module docstring for the math)."""
    r, c, n = stack.row_dir, stack.col_dir, stack.normal
    dx, dy = stack.pixel_spacing
    v_dot_n = float(v @ n)
    slide = (layout.heights - layout.heights[0]) / v_dot_n  # distance along v to plane 0
    a = layout.offsets_r - slide * float(v @ r)
    b = layout.offsets_c - slide * float(v @ c)
    i0, j0 = math.floor(a.min() / dx + 1e-6), math.floor(b.min() / dy + 1e-6)
    rows, cols = stack.slices_hu.shape[1:]
    n_i = cols + math.ceil(a.max() / dx - 1e-6) - i0
    n_j = rows + math.ceil(b.max() / dy - 1e-6) - j0
    extent = float(layout.heights[-1] - layout.heights[0])
    n_k = max(2, math.floor(extent / float(np.median(layout.steps)) + 0.5) + 1)  # round half up
    step_h = extent / (n_k - 1)

    sorted_slices = stack.slices_hu[layout.order]
    shifted = np.empty((len(sorted_slices), n_j, n_i), dtype=np.float32)
    for s in range(len(sorted_slices)):
        _shift_slice(sorted_slices[s], (j0 - b[s] / dy, i0 - a[s] / dx), shifted[s])
    out_heights = layout.heights[0] + step_h * np.arange(n_k)
    lower, weight = _blend_weights(layout.heights, out_heights)
    planes = AcquiredPlanes(shifted, lower, weight.astype(np.float32))

    p0 = stack.positions_lps[layout.order[0]]
    geometry = Geometry(
        spacing_mm=(dx, dy, step_h / v_dot_n),
        origin_lps=tuple(float(x) for x in p0 + i0 * dx * r + j0 * dy * c),
        direction=_direction(r, c, v),
    )
    return planes, geometry


def _on_grid(planes: AcquiredPlanes) -> np.ndarray:
    """The HU volume (K, J, I) float32, C-contiguous, blended from the acquired planes."""
    return np.ascontiguousarray(planes.to_grid(planes.hu_szyx), dtype=np.float32)


def _tilt_text(stack: SliceStack, layout: StackLayout) -> str:
    """"gantry tilt X°" from the slice positions, plus the header's value when it disagrees."""
    angle = tilt_angle_deg(layout)
    text = f"gantry tilt {angle:.1f}°"
    tag = stack.tilt_tag_deg
    if tag is not None and abs(abs(tag) - angle) > 0.5:
        text += f" (the header's GantryDetectorTilt says {tag:.1f}°; positions are used)"
    return text


def _grid_text(hu_zyx: np.ndarray, geometry: Geometry) -> str:
    k, j, i = hu_zyx.shape
    sx, sy, sz = geometry.spacing_mm
    return f"{i} × {j} × {k} voxels (i × j × k) of {sx:.2f} × {sy:.2f} × {sz:.2f} mm"


def stack_to_volume(
    stack: SliceStack, resample_tilt: bool = True
) -> tuple[np.ndarray, Geometry, list[str], AcquiredPlanes | None]:
    """A regular volume from the stack: (HU float32 [k, j, i], its geometry, log lines, the acquired
    planes when the stack was resampled (None when it was only sorted)).

    Even, untilted stacks are only sorted. Uneven spacing is resampled along the normal to the
    median step (adjusted so the grid ends exactly on the first and last slice). Gantry tilt is
    resampled onto an orthogonal grid (axes r, c, n) covering every acquired slice, unless
    ``resample_tilt`` is False: then the grid follows the stacking direction (non-orthogonal).
    """
    layout = stack_layout(stack)
    tilted, uneven = is_tilted(stack, layout), is_uneven(layout)
    n_slices = len(layout.heights)
    steps_text = f"slice steps {layout.steps.min():.2f}–{layout.steps.max():.2f} mm"
    if not tilted and not uneven:
        hu_zyx, geometry = _stacked(stack, layout)
        return hu_zyx, geometry, [], None
    if tilted and not resample_tilt:
        stacking = stack.positions_lps[layout.order[-1]] - stack.positions_lps[layout.order[0]]
        planes, geometry = _resampled(stack, layout, stacking / np.linalg.norm(stacking))
        hu_zyx = _on_grid(planes)
        return hu_zyx, geometry, [
            f"gantry tilt {tilt_angle_deg(layout):.1f}° kept (resample_tilt=False): {n_slices} slices on a "
            f"sheared, non-orthogonal grid of {_grid_text(hu_zyx, geometry)}"], planes
    planes, geometry = _resampled(stack, layout, stack.normal)
    hu_zyx = _on_grid(planes)
    what = _tilt_text(stack, layout) if tilted else "uneven slice spacing"
    extra = f" ({steps_text} along the normal)" if uneven else ""
    grid = _grid_text(hu_zyx, geometry)
    return hu_zyx, geometry, [f"{what}: resampled {n_slices} slices{extra} onto an orthogonal grid of {grid}"], planes
