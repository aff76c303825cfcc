"""Evaluate the tissue of head-local points: scalp, skull, skull base, then the brain inside.

Works on 1D float32 point arrays (a flattened slice window or a few sample points) and touches the
expensive parts (sulcal field, deep structures) only on the subsets that need them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import HeadAnatomy
from .config import Tissue

_EPS = np.float32(1e-3)


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
        cavity = inside[above]
        tissue[cavity] = _brain(anat, _subset(points, cavity))
    _paint_sinuses(anat, points)
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
    """Below the cavity floor: a bony plate (cortex over diploe), then soft tissue."""
    depth = floor - p.w[idx]
    codes = np.full(idx.shape, Tissue.SCALP, dtype=np.uint8)
    codes[depth < 9.0] = Tissue.BONE_DIPLOE
    codes[depth < 2.0] = Tissue.BONE_CORTICAL
    p.tissue[idx] = codes


def _paint_sinuses(anat: HeadAnatomy, p: PointSet) -> None:
    """Air cells: the frontal sinus hollows the diploe; the others replace bone/soft tissue below the base."""
    outside_brain = (Tissue.SCALP, Tissue.BONE_CORTICAL, Tissue.BONE_DIPLOE)
    for n, sinus in enumerate(anat.sinuses):
        replaceable = (Tissue.BONE_DIPLOE,) if n == 0 else outside_brain
        inside = sinus.inside(p.u, p.v, p.w) & np.isin(p.tissue, replaceable)
        p.tissue[inside] = Tissue.AIR


def _brain(anat: HeadAnatomy, p: PointSet) -> np.ndarray:
    """Tissue codes (uint8) of points inside the cranial cavity."""
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
    return tissue


def _paint_cortex(anat: HeadAnatomy, p: PointSet, tissue: np.ndarray) -> None:
    """Convexity CSF, cortical ribbon, and sulci (zero lines of the sulcal field running inward)."""
    sas, cortex, depth = anat.sas_mm, anat.cortex_mm, anat.sulcal_depth_mm
    shell = np.flatnonzero(p.depth_inner < sas + depth + cortex + 1.0)
    di = p.depth_inner[shell]
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
    b, c = anat.semi_axes[1], anat.semi_axes[2]
    tentorium = -0.2 * c - 0.3 * (p.v - 0.15 * b)
    below = (p.v > 0.1 * b) & (p.w < tentorium) & (tissue == Tissue.WHITE_MATTER)
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
