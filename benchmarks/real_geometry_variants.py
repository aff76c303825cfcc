"""Real-geometry variants of a real head CT, for ``real_scan_check.py --variants``.

Each variant changes what a real scan's geometry can change: the image edge cuts the skull at the
front (``fov front``), the scan stops below the vertex (``fov vertex``), a head holder stands beside
the head (``head holder``), or the scan is resampled to 1.5 mm slices and a 256 matrix
(``1.5 mm, 256``). ``transform(name, hu, labels, geometry)`` applies one to a CT and its labels
together, so lesions inserted into the whole scan keep their place in every variant.

Arrays are ``[k, j, i]``; directions come from ``Geometry`` (front = -y LPS, vertex = +z).
Plain numpy/scipy on the engine's ``Geometry``: the same file runs against an older engine.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from SSSSegmentLib.volumes.geometry import Geometry

VARIANTS = ("as is", "fov front", "fov vertex", "head holder", "1.5 mm, 256")
FRONT_CUT_MM = 15.0  # the image starts this far behind the front of the head: through the frontal bone
VERTEX_CUT_MM = 20.0  # the scan stops this far below the top of the head


def _head_rows(hu: np.ndarray, geometry: Geometry, axis: int, min_width_mm: float = 40.0) -> np.ndarray:
    """Indices along ``axis`` (1 = j, 2 = i) where a slice of the middle third of the volume (the cranial
    vault, not the face) has at least ``min_width_mm`` of tissue (> -300 HU) across (thin holder lines do
    not count)."""
    other = 2 if axis == 1 else 1
    px = float(geometry.spacing_mm[2 - other])
    n_k = hu.shape[0]
    middle = hu[n_k // 3 : max(2 * n_k // 3, n_k // 3 + 1)]
    width = np.count_nonzero(middle > -300, axis=other).max(axis=0)  # (n along axis)
    return np.flatnonzero(width * px >= min_width_mm)


def _moved(geometry: Geometry, start_kji: tuple[float, float, float], spacing: tuple[float, float, float] | None = None
           ) -> Geometry:
    """``geometry`` whose first voxel is the old voxel ``start_kji`` (fractional), with a new spacing (i, j, k)."""
    start_ijk = np.asarray(start_kji[::-1], dtype=float)
    origin = np.asarray(geometry.origin_lps) + geometry.direction_matrix @ (np.asarray(geometry.spacing_mm) * start_ijk)
    return Geometry(spacing or geometry.spacing_mm, tuple(float(o) for o in origin), geometry.direction)


def _axis_sign(geometry: Geometry, column: int, lps_axis: int) -> float:
    return float(np.sign(geometry.direction_matrix[lps_axis, column]))


def fov_front(hu: np.ndarray, labels: np.ndarray | None, geometry: Geometry):  # noqa: ANN201
    """Cut the rows in front of ``FRONT_CUT_MM`` behind the front of the head (the image edge cuts the skull)."""
    rows = _head_rows(hu, geometry, 1)
    step = int(round(FRONT_CUT_MM / geometry.spacing_mm[1]))
    posterior_j = _axis_sign(geometry, 1, 1) > 0  # j runs posterior: the front is at low j
    box = slice(rows[0] + step, hu.shape[1]) if posterior_j else slice(0, rows[-1] + 1 - step)
    crop = (slice(None), box, slice(None))
    return hu[crop].copy(), None if labels is None else labels[crop].copy(), _moved(geometry, (0, box.start, 0))


def fov_vertex(hu: np.ndarray, labels: np.ndarray | None, geometry: Geometry):  # noqa: ANN201
    """Drop the slices above ``VERTEX_CUT_MM`` below the top of the head."""
    ks = np.flatnonzero((hu > 300).any(axis=(1, 2)))
    drop = int(round(VERTEX_CUT_MM / geometry.spacing_mm[2]))
    superior_k = _axis_sign(geometry, 2, 2) > 0  # k runs superior: the vertex is at high k
    box = slice(0, ks[-1] + 1 - drop) if superior_k else slice(ks[0] + drop, hu.shape[0])
    crop = (box, slice(None), slice(None))
    return hu[crop].copy(), None if labels is None else labels[crop].copy(), _moved(geometry, (box.start, 0, 0))


def head_holder(hu: np.ndarray, labels: np.ndarray | None, geometry: Geometry):  # noqa: ANN201
    """Two 2.5 mm walls of 800 HU, 3 mm beside the head on either side, the whole height of the image,
    and a 2.5 mm curved base behind the head (a cradle)."""
    out = hu.copy()
    s_i, s_j = (float(s) for s in geometry.spacing_mm[:2])
    cols, rows = _head_rows(hu, geometry, 2), _head_rows(hu, geometry, 1)
    width, gap = max(1, round(2.5 / s_i)), round(3.0 / s_i)
    for c in (cols[0] - gap - width, cols[-1] + gap + 1):
        out[:, :, max(c, 0) : max(c + width, 0)] = 800.0
    jj, ii = np.mgrid[: hu.shape[1], : hu.shape[2]]
    centre, half = (cols[0] + cols[-1]) / 2, (cols[-1] - cols[0]) / 2
    back = rows[-1] + round(3.0 / s_j) if _axis_sign(geometry, 1, 1) > 0 else rows[0] - round(3.0 / s_j)
    bend = ((ii - centre) / half) ** 2 * (0.25 * half * s_i / s_j)
    depth = (jj - back - bend) if _axis_sign(geometry, 1, 1) > 0 else (back - bend - jj)
    out[:, (depth >= 0) & (depth < max(1, round(2.5 / s_j))) & (np.abs(ii - centre) <= half)] = 800.0
    return out, None if labels is None else labels.copy(), geometry


def resampled(hu: np.ndarray, labels: np.ndarray | None, geometry: Geometry, slice_mm: float = 1.5):  # noqa: ANN201
    """In-plane 2 x 2 block means (a 256 matrix from 512) and slices every ``slice_mm`` (linear along k);
    labels by the same averaging of each class's mask (a voxel takes the class covering > 50%)."""
    s_i, s_j, s_k = (float(s) for s in geometry.spacing_mm)
    n_k = int(np.floor((hu.shape[0] - 1) * s_k / slice_mm)) + 1
    k_new = np.arange(n_k) * slice_mm / s_k

    def resample(values: np.ndarray) -> np.ndarray:
        n_j, n_i = values.shape[1] // 2 * 2, values.shape[2] // 2 * 2
        pooled = values[:, :n_j, :n_i].reshape(values.shape[0], n_j // 2, 2, n_i // 2, 2).mean(axis=(2, 4))
        coords = np.meshgrid(k_new, np.arange(pooled.shape[1]), np.arange(pooled.shape[2]), indexing="ij")
        return ndimage.map_coordinates(pooled, coords, order=1, mode="nearest").astype(np.float32)

    out_hu = resample(hu.astype(np.float32))
    out_labels = None
    if labels is not None:
        out_labels = np.zeros(out_hu.shape, dtype=np.uint8)
        for label in np.unique(labels[labels > 0]):
            out_labels[resample((labels == label).astype(np.float32)) > 0.5] = label
    spacing = (2 * s_i, 2 * s_j, slice_mm)
    return out_hu, out_labels, _moved(geometry, (0.0, 0.5, 0.5), spacing)


_TRANSFORMS = {"fov front": fov_front, "fov vertex": fov_vertex, "head holder": head_holder,
               "1.5 mm, 256": resampled}


def transform(name: str, hu: np.ndarray, labels: np.ndarray | None, geometry: Geometry):  # noqa: ANN201
    """(hu, labels or None, geometry) of variant ``name`` (one of ``VARIANTS``)."""
    if name == "as is":
        return hu, labels, geometry
    return _TRANSFORMS[name](hu, labels, geometry)
