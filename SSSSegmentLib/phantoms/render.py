"""Render the ideal phantom on the scan grid: sub-slices averaged into thick slices (partial volume).

Each thick slice k is rendered as ``n_sub`` thin sub-slices (odd count, the middle one at the slice
centre). HU are averaged; a lesion labels a voxel when it fills more than half of the sub-slices and
the centre one; the tissue code is the centre sub-slice's. Only the head's bounding box is evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..volumes.geometry import Geometry
from .anatomy import HeadAnatomy
from .config import Tissue
from .lesions import LesionSpec
from .tissues import classify


@dataclass(frozen=True)
class IdealVolume:
    """Noise-free render. All arrays (K, J, I): ``hu`` float32 (no texture yet), ``lesion_index`` uint8
    (0 none, n = lesions[n-1]), ``tissue`` uint8 ``Tissue`` codes at voxel centres."""

    hu: np.ndarray
    lesion_index: np.ndarray
    tissue: np.ndarray


def _axis(geometry: Geometry, n: int, axis: int) -> np.ndarray:
    return (geometry.origin_lps[axis] + geometry.spacing_mm[axis] * np.arange(n)).astype(np.float32)


def _window(anat: HeadAnatomy, xs: np.ndarray, ys: np.ndarray) -> tuple[slice, slice, float]:
    """Columns and rows covering the head's box (LPS), and its half height in z."""
    pts = anat.to_lps(anat.outer_surface_points(800))
    lo, hi = pts.min(axis=0) - 2.0, pts.max(axis=0) + 2.0
    cols = np.flatnonzero((xs >= lo[0]) & (xs <= hi[0]))
    rows = np.flatnonzero((ys >= lo[1]) & (ys <= hi[1]))
    if cols.size == 0 or rows.size == 0:
        return slice(0, 0), slice(0, 0), 0.0
    return (
        slice(rows[0], rows[-1] + 1),
        slice(cols[0], cols[-1] + 1),
        float(max(hi[2] - anat.centre_lps[2], anat.centre_lps[2] - lo[2])),
    )


def _render_sub_slice(
    anat: HeadAnatomy,
    lesions: tuple[LesionSpec, ...],
    x: np.ndarray,
    y: np.ndarray,
    z: float,
    lut: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HU, lesion index and tissue (1D, row-major over the window) of one thin axial sub-slice."""
    r = anat.rotation_matrix.astype(np.float32)
    cx, cy, cz = (np.float32(c) for c in anat.centre_lps)
    xx = np.broadcast_to(x[None, :] - cx, (y.size, x.size)).ravel()
    yy = np.broadcast_to(y[:, None] - cy, (y.size, x.size)).ravel()
    dz = np.float32(z) - cz
    u = r[0, 0] * xx + r[1, 0] * yy + r[2, 0] * dz
    v = r[0, 1] * xx + r[1, 1] * yy + r[2, 1] * dz
    w = r[0, 2] * xx + r[1, 2] * yy + r[2, 2] * dz
    p = classify(anat, u, v, w)
    y_lps = yy + cy
    index = np.zeros(u.shape, dtype=np.uint8)
    for n, lesion in enumerate(lesions, start=1):
        inside = lesion.mask(anat, p, y_lps)
        p.tissue[lesion.edema(anat, p, inside)] = Tissue.EDEMA
        index[inside] = n
    hu = lut[p.tissue]
    for n, lesion in enumerate(lesions, start=1):
        idx = np.flatnonzero(index == n)
        if idx.size:
            hu[idx] = lesion.hu(p, idx)
    return hu, index, p.tissue


def render_ideal(
    anat: HeadAnatomy,
    lesions: tuple[LesionSpec, ...],
    geometry: Geometry,
    shape_zyx: tuple[int, int, int],
    n_sub: int,
) -> IdealVolume:
    """Render the phantom on ``geometry`` (identity direction) with ``n_sub`` sub-slices per slice."""
    k_n, j_n, i_n = shape_zyx
    xs, ys, zs = _axis(geometry, i_n, 0), _axis(geometry, j_n, 1), _axis(geometry, k_n, 2)
    rows, cols, half_z = _window(anat, xs, ys)
    lut = np.asarray(anat.tissue_hu, dtype=np.float32)
    hu = np.full(shape_zyx, lut[Tissue.AIR], dtype=np.float32)
    index = np.zeros(shape_zyx, dtype=np.uint8)
    tissue = np.zeros(shape_zyx, dtype=np.uint8)
    win_shape = (ys[rows].size, xs[cols].size)
    offsets = (np.arange(n_sub) - (n_sub - 1) / 2) * geometry.spacing_mm[2] / n_sub
    for k in range(k_n):
        sub_hu = np.full((n_sub, *win_shape), lut[Tissue.AIR], dtype=np.float32)
        sub_index = np.zeros((n_sub, *win_shape), dtype=np.uint8)
        for s, off in enumerate(offsets):
            z = float(zs[k] + off)
            if abs(z - anat.centre_lps[2]) > half_z or sub_hu[s].size == 0:
                continue
            h, n, t = _render_sub_slice(anat, lesions, xs[cols], ys[rows], z, lut)
            sub_hu[s], sub_index[s] = h.reshape(win_shape), n.reshape(win_shape)
            if s == n_sub // 2:
                tissue[k, rows, cols] = t.reshape(win_shape)
        hu[k, rows, cols] = sub_hu.mean(axis=0)
        index[k, rows, cols] = _majority(sub_index, len(lesions))
    return IdealVolume(hu, index, tissue)


def _majority(sub_index: np.ndarray, n_lesions: int) -> np.ndarray:
    """Per pixel: the lesion filling > half of the sub-slices and the centre one (else 0)."""
    n_sub = sub_index.shape[0]
    centre = sub_index[n_sub // 2]
    out = np.zeros(centre.shape, dtype=np.uint8)
    for n in np.unique(centre[centre > 0]) if n_lesions else ():
        count = (sub_index == n).sum(axis=0)
        out[(centre == n) & (2 * count > n_sub)] = n
    return out
