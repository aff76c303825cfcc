"""Evaluate the tissue of head-local points: scalp, skull, skull base, then the brain inside.

Works on 1D float32 point arrays (a flattened slice window or a few sample points) and touches the
expensive parts (sulcal field, deep structures) only on the subsets that need them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import HeadAnatomy, box_indices
from .config import Tissue

_EPS = np.float32(1e-3)
_NOT_BRAIN = (Tissue.SCALP, Tissue.BONE_CORTICAL, Tissue.BONE_DIPLOE)


@dataclass
class PointSet:
    """Head-local points (1D float32 arrays, mm) with unit directions, depth and tissue.

    ``depth_inner``: radial distance below the inner table (mm; negative outside the skull cavity).
    ``tissue``: uint8 ``Tissue`` code per point.
    """

    u: np.ndarray
    v: np.ndarray
    w: np.ndarray
    du: np.ndarray
    dv: np.ndarray
    dw: np.ndarray
    depth_inner: np.ndarray
    tissue: np.ndarray


def classify(anat: HeadAnatomy, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> PointSet:
    """Tissue of each point (head-local mm, 1D arrays of equal length)."""
    u, v, w = (np.asarray(x, dtype=np.float32) for x in (u, v, w))
    r = np.sqrt(u * u + v * v + w * w) + _EPS
    du, dv, dw = u / r, v / r, w / r
    a, b, c = (np.float32(x) for x in anat.semi_axes)
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2 + (w / c) ** 2) + _EPS * _EPS
    depth_out = r * (anat.surface_factor(du, dv, dw).astype(np.float32) / rho - 1)
    tissue = np.zeros(u.shape, dtype=np.uint8)
    tissue[depth_out >= 0] = Tissue.SCALP
    below_scalp = depth_out - np.float32(anat.scalp_mm)
    thickness = anat.skull_thickness(dv, dw).astype(np.float32)
    depth_inner = below_scalp - thickness
    _paint_skull(anat, tissue, below_scalp, thickness, u, v, w)
    points = PointSet(u, v, w, du, dv, dw, depth_inner, tissue)
    inside = np.flatnonzero(depth_inner >= 0)
    if inside.size:
        floor = anat.skull_base_w(u[inside], v[inside]).astype(np.float32)
        above = w[inside] > floor
        _paint_skull_base(anat, points, inside[~above], floor[~above])
        cavity, gap = inside[above], w[inside[above]] - floor[above]
        carved = _carve_mastoid(anat, points, cavity)
        tissue[cavity[carved]] = Tissue.BONE_CORTICAL
        cavity, gap = cavity[~carved], gap[~carved]
        tissue[cavity] = _brain(anat, _subset(points, cavity), gap)
    _paint_sinuses(anat, points)
    _paint_mastoid(anat, points)
    _paint_orbits(anat, points)
    return points


def _subset(p: PointSet, idx: np.ndarray) -> PointSet:
    return PointSet(p.u[idx], p.v[idx], p.w[idx], p.du[idx], p.dv[idx], p.dw[idx], p.depth_inner[idx], p.tissue[idx])


def _paint_skull(
    anat: HeadAnatomy,
    tissue: np.ndarray,
    below_scalp: np.ndarray,
    thickness: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    w: np.ndarray,
) -> None:
    """Outer table, diploe, inner table and sutures of the calvaria (in place)."""
    bone = np.flatnonzero((below_scalp >= 0) & (below_scalp < thickness))
    d, t = below_scalp[bone], thickness[bone]
    cortical = (d < anat.outer_table_mm) | (d > t - anat.inner_table_mm)
    tissue[bone] = np.where(cortical, Tissue.BONE_CORTICAL, Tissue.BONE_DIPLOE)
    ub, vb, wb = u[bone], v[bone], w[bone]
    suture = anat.near_suture(ub, vb, wb) & (wb > anat.skull_base[1] + 10)
    tissue[bone[suture]] = Tissue.SUTURE


def _paint_skull_base(anat: HeadAnatomy, p: PointSet, idx: np.ndarray, floor: np.ndarray) -> None:
    """Below the cavity floor: a bony plate (cortex over diploe), then soft tissue; dense petrous wedges."""
    depth = floor - p.w[idx]
    codes = np.full(idx.shape, Tissue.SCALP, dtype=np.uint8)
    codes[depth < 9.0] = Tissue.BONE_DIPLOE
    codes[depth < 2.0] = Tissue.BONE_CORTICAL
    if anat.petrous:
        rise = anat.petrous_rise(p.u[idx], p.v[idx])
        codes[(rise > 1.5) & (depth < rise + 8.0)] = Tissue.BONE_CORTICAL
    p.tissue[idx] = codes


def _clear_of_cavity(anat: HeadAnatomy, p: PointSet, idx: np.ndarray, margin: float) -> np.ndarray:
    """Boolean (shape of ``idx``): points at least ``margin`` mm outside the cranial cavity (a bony wall stays)."""
    floor = anat.skull_base_w(p.u[idx], p.v[idx])
    return (p.depth_inner[idx] < -margin) | (p.w[idx] < floor - margin)


def _carve_mastoid(anat: HeadAnatomy, p: PointSet, cavity: np.ndarray) -> np.ndarray:
    """Boolean (shape of ``cavity``): cavity points inside the mastoid walls (they become bone)."""
    out = np.zeros(cavity.shape, dtype=bool)
    sub = box_indices(anat.mastoid.walls, p.u[cavity], p.v[cavity], p.w[cavity])
    if sub.size:
        idx = cavity[sub]
        out[sub] = anat.mastoid.inside(p.u[idx], p.v[idx], p.w[idx], walls=True)
    return out


def _paint_mastoid(anat: HeadAnatomy, p: PointSet) -> None:
    """Mastoid: air cells in a bony matrix replacing skull and soft tissue (not skin), outside the cavity."""
    idx = box_indices(anat.mastoid.regions, p.u, p.v, p.w)
    if idx.size == 0:
        return
    idx = idx[np.isin(p.tissue[idx], _NOT_BRAIN) & (p.depth_inner[idx] > -anat.skull_mm)]  # not the skin
    u, v, w = p.u[idx], p.v[idx], p.w[idx]
    idx, u, v, w = (x[anat.mastoid.inside(u, v, w)] for x in (idx, u, v, w))
    cells = anat.mastoid.cells(u, v, w)
    p.tissue[idx[~cells & (p.tissue[idx] == Tissue.SCALP)]] = Tissue.BONE_DIPLOE  # bony matrix
    p.tissue[idx[cells]] = Tissue.AIR


def _paint_orbits(anat: HeadAnatomy, p: PointSet) -> None:
    """Orbital fat and globes replacing soft tissue/bone below the anterior fossa (never the cavity)."""
    idx = box_indices(anat.orbits, p.u, p.v, p.w)
    if idx.size == 0:
        return
    idx = idx[np.isin(p.tissue[idx], _NOT_BRAIN)]
    idx = idx[_clear_of_cavity(anat, p, idx, 4.0)]  # a bony roof stays between orbit and brain
    u, v, w = p.u[idx], p.v[idx], p.w[idx]
    for e in anat.orbits:
        p.tissue[idx[e.inside(u, v, w)]] = e.tissue


def _paint_sinuses(anat: HeadAnatomy, p: PointSet) -> None:
    """Air cells: the frontal sinus hollows the diploe; the others replace bone/soft tissue below the base."""
    outside_brain = (Tissue.SCALP, Tissue.BONE_CORTICAL, Tissue.BONE_DIPLOE)
    for n, sinus in enumerate(anat.sinuses):
        replaceable = (Tissue.BONE_DIPLOE,) if n == 0 else outside_brain
        inside = sinus.inside(p.u, p.v, p.w) & np.isin(p.tissue, replaceable)
        p.tissue[inside] = Tissue.AIR


def _brain(anat: HeadAnatomy, p: PointSet, floor_gap: np.ndarray) -> np.ndarray:
    """Tissue codes (uint8) of points inside the cranial cavity. ``floor_gap``: height above the floor (mm)."""
    tissue = np.full(p.u.shape, Tissue.WHITE_MATTER, dtype=np.uint8)
    _paint_cortex(anat, p, tissue)
    _paint_cerebellum(anat, p, tissue)
    _paint_fissures(anat, p, tissue)
    for e in anat.cisterns:
        tissue[e.inside(p.u, p.v, p.w)] = e.tissue
    tissue[anat.midbrain.inside(p.u, p.v, p.w)] = Tissue.WHITE_MATTER
    for e in anat.deep_structures:
        inside = e.inside(p.u, p.v, p.w)
        if e.tissue == Tissue.GREY_MATTER:
            inside &= tissue == Tissue.WHITE_MATTER
        tissue[inside] = e.tissue
    _paint_calcifications(anat, p, tissue)
    _paint_dura(anat, p, tissue, floor_gap)
    return tissue


def _paint_calcifications(anat: HeadAnatomy, p: PointSet, tissue: np.ndarray) -> None:
    """Pineal, choroid plexus and pallidal calcifications (anywhere), falx plaques (only on the falx/fissure).

    Each has a rim of partly calcified tissue (``CALC_RIM``, 35 % wider), so even a point-sampled
    render shows the blood-density halo that real scans have around calcifications.
    """
    _paint_blobs(anat.calcifications, p, tissue, np.flatnonzero(np.ones(p.u.shape, dtype=bool)))
    _paint_blobs(anat.falx_plaques, p, tissue, np.flatnonzero(np.isin(tissue, (Tissue.FALX, Tissue.CSF_SULCI))))


def _paint_blobs(shapes: tuple, p: PointSet, tissue: np.ndarray, allowed: np.ndarray) -> None:
    """Paint ``shapes`` (Ellipsoids) with their rims, only on the points ``allowed`` (indices), in place."""
    sub = box_indices(shapes, p.u[allowed], p.v[allowed], p.w[allowed], grow=1.35)
    if sub.size == 0:
        return
    idx = allowed[sub]
    u, v, w = p.u[idx], p.v[idx], p.w[idx]
    radii = []
    for e in shapes:
        q0, q1, q2 = e.normalized(u, v, w)
        radii.append(q0 * q0 + q1 * q1 + q2 * q2)
    for rr in radii:
        tissue[idx[rr < 1.35**2]] = Tissue.CALC_RIM
    for e, rr in zip(shapes, radii, strict=True):
        tissue[idx[rr < 1]] = e.tissue


def _paint_dura(anat: HeadAnatomy, p: PointSet, tissue: np.ndarray, floor_gap: np.ndarray) -> None:
    """Dura under the inner table and on the floor, the superior sagittal sinus and the tentorium."""
    if anat.dura_mm <= 0:
        return
    dura = np.float32(anat.dura_mm)
    mask = (p.depth_inner < dura) | (floor_gap < dura)
    half, depth = (np.float32(x) for x in anat.sagittal_sinus)
    if depth > 0:
        mask |= (np.abs(p.u) < half * (1 - p.depth_inner / depth)) & (floor_gap > 8.0)
    b = anat.semi_axes[1]
    idx = np.flatnonzero((p.v > 0.1 * b) & (p.w < anat.semi_axes[2] * -0.2 + 0.02 * b + 2.0))
    u, v = p.u[idx], p.v[idx]
    sheet = np.abs(p.w[idx] - anat.tentorium_w(u, v)) < dura / 2
    notch = (u / 13.0) ** 2 + ((v - 0.1 * b) / (0.3 * b)) ** 2 < 1  # the incisura around the midbrain
    mask[idx[sheet & ~notch]] = True
    tissue[mask] = Tissue.DURA


def _paint_cortex(anat: HeadAnatomy, p: PointSet, tissue: np.ndarray) -> None:
    """Convexity CSF, cortical ribbon, and sulci (zero lines of the sulcal field running inward)."""
    sas, cortex, depth = anat.sas_mm, anat.cortex_mm, anat.sulcal_depth_mm
    dura = np.float32(anat.dura_mm)
    shell = np.flatnonzero(p.depth_inner < dura + sas + depth + cortex + 1.0)
    di = p.depth_inner[shell] - dura
    dist = np.abs(anat.sulcal_field_mm(p.du[shell], p.dv[shell], p.dw[shell]))
    half = np.float32(anat.sulcal_width_mm / 2)
    along = np.clip((di - sas) / np.float32(depth), 0, None) ** 2  # rounded, tapering sulci
    csf = (di < sas) | ((dist / half) ** 2 + along < 1)
    grey = (di < sas + cortex) | ((dist / (half + cortex)) ** 2 + ((di - sas) / np.float32(depth + cortex)) ** 2 < 1)
    codes = tissue[shell]
    codes[grey] = Tissue.GREY_MATTER
    codes[csf] = Tissue.CSF_SULCI
    tissue[shell] = codes


def _paint_cerebellum(anat: HeadAnatomy, p: PointSet, tissue: np.ndarray) -> None:
    """Below the tentorium in the posterior fossa the parenchyma is cerebellar (grey-like)."""
    b = anat.semi_axes[1]
    below = (p.v > 0.1 * b) & (p.w < anat.tentorium_w(p.u, p.v)) & (tissue == Tissue.WHITE_MATTER)
    tissue[below] = Tissue.GREY_MATTER


def _paint_fissures(anat: HeadAnatomy, p: PointSet, tissue: np.ndarray) -> None:
    """Sylvian fissures, interhemispheric fissure and falx (CSF clefts and the dense midline fold)."""
    a, b = anat.semi_axes[0], anat.semi_axes[1]
    lateral = np.abs(p.u)
    near = (np.abs(p.w - anat.sylvian_w) < 7.0) & (lateral > 0.45 * a) & (p.v > -0.35 * b) & (p.v < 0.1 * b)
    angle = np.radians(12.0)
    line_dist = np.abs((lateral - 0.45 * a) * np.sin(angle) - (p.v + 0.1 * b) * np.cos(angle))
    width = 0.6 + 1.2 * (lateral - 0.45 * a) / (0.55 * a)  # widening towards the surface
    tissue[near & (line_dist < width)] = Tissue.CSF_SULCI
    floor = anat.skull_base_w(np.zeros_like(p.v), p.v) + 8.0
    callosum = anat.falx_top_of_callosum
    bottom = floor + (callosum - floor) * np.exp(-(((p.v - 2.0) / (0.42 * b)) ** 4))
    high = p.w > bottom
    tissue[high & (lateral < 1.6)] = Tissue.CSF_SULCI
    tissue[high & (lateral < 0.6)] = Tissue.FALX
