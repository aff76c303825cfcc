"""Render the ideal phantom on the scan grid: sub-slices averaged into thick slices (partial volume).

Each thick slice k is rendered as ``n_sub`` thin sub-slices (odd count, the middle one at the slice
centre). HU are the sub-slices weighted by the slice sensitivity profile (``ssp_weights``: the flat
box of the nominal slice, or that box blurred along z so it tails into the neighbouring slices' sub-slices,
which are rendered once and shared); a lesion labels a voxel when it fills more than half of the nominal
sub-slices and the centre one; the tissue code is the centre sub-slice's. Only the head's bounding box
is evaluated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

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


def ssp_weights(n_sub: int, ssp_width: float) -> tuple[np.ndarray, int]:
    """Slice sensitivity profile sampled at the sub-slice pitch (thickness / ``n_sub``), and the number m
    of sub-slices it reaches past the nominal slice on each side; weights (n_sub + 2m,) sum to 1.

    ``ssp_width`` 1 is the flat box of the nominal slice; above, the box blurred along z by a gaussian of
    sigma (ssp_width - 1) / 2 slice thicknesses (FWHM still about one thickness, tails beyond it).
    """
    sigma = (ssp_width - 1.0) / 2.0
    if sigma <= 1e-6:
        return np.full(n_sub, 1.0 / n_sub), 0
    m = math.ceil(3.0 * sigma * n_sub)
    z = (np.arange(n_sub + 2 * m) - (n_sub - 1) / 2 - m) / n_sub
    w = ndtr((z + 0.5) / sigma) - ndtr((z - 0.5) / sigma)
    return w / w.sum(), m


def render_ideal(
    anat: HeadAnatomy,
    lesions: tuple[LesionSpec, ...],
    geometry: Geometry,
    shape_zyx: tuple[int, int, int],
    n_sub: int,
    ssp_width: float = 1.0,
) -> IdealVolume:
    """Render the phantom on ``geometry`` (identity direction) with ``n_sub`` sub-slices per slice,
    weighted by the slice sensitivity profile of width ``ssp_width`` (see ``ssp_weights``)."""
    k_n, j_n, i_n = shape_zyx
    xs, ys, zs = _axis(geometry, i_n, 0), _axis(geometry, j_n, 1), _axis(geometry, k_n, 2)
    rows, cols, half_z = _window(anat, xs, ys)
    lut = np.asarray(anat.tissue_hu, dtype=np.float32)
    hu = np.full(shape_zyx, lut[Tissue.AIR], dtype=np.float32)
    index = np.zeros(shape_zyx, dtype=np.uint8)
    tissue = np.zeros(shape_zyx, dtype=np.uint8)
    win_shape = (ys[rows].size, xs[cols].size)
    if 0 in win_shape:
        return IdealVolume(hu, index, tissue)
    weights, m = ssp_weights(n_sub, ssp_width)
    pitch = geometry.spacing_mm[2] / n_sub
    cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # global sub-slice -> hu, index, tissue

    def sub_slice(g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sub-slice g of the whole stack (g = 0 lies m sub-slices below the first slice's bottom one)."""
        if g not in cache:
            z = float(zs[0] + (g - m - (n_sub - 1) / 2) * pitch)
            if abs(z - anat.centre_lps[2]) > half_z:
                air = np.full(win_shape, lut[Tissue.AIR], dtype=np.float32)
                cache[g] = (air, np.zeros(win_shape, np.uint8), np.full(win_shape, Tissue.AIR, np.uint8))
            else:
                h, n, t = _render_sub_slice(anat, lesions, xs[cols], ys[rows], z, lut)
                cache[g] = (h.reshape(win_shape), n.reshape(win_shape), t.reshape(win_shape))
        return cache[g]

    for k in range(k_n):
        first = k * n_sub  # the profile covers global sub-slices first .. first + n_sub + 2m - 1
        for g in [g for g in cache if g < first]:
            del cache[g]
        acc = np.zeros(win_shape, dtype=np.float32)
        for w, g in zip(weights, range(first, first + n_sub + 2 * m), strict=True):
            acc += np.float32(w) * sub_slice(g)[0]
        hu[k, rows, cols] = acc
        nominal = np.stack([sub_slice(first + m + s)[1] for s in range(n_sub)])
        index[k, rows, cols] = _majority(nominal, len(lesions))
        tissue[k, rows, cols] = sub_slice(first + m + n_sub // 2)[2]
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
