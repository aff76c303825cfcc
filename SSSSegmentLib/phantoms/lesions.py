"""Hemorrhage shapes: each lesion is an analytic mask over head-local points plus its own blood HU.

Tissue rules hold by construction (a mask only takes points whose tissue allows the class):
EDH/SDH start at the inner table (depth 0), IVH only CSF_VENTRICLE, IPH only grey/white matter,
SAH only CSF_SULCI. An EDH stays on one skull plate (sutures bound it); an SDH crosses sutures but not
the midline. IVH fills the dependent part of a ventricle: the patient lies supine, so below a fluid
level that is a plane of constant LPS y (larger y = more posterior = lower).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import Ellipsoid, HeadAnatomy
from .config import Tissue
from .tissues import PointSet

TEXTURE_HU = 4.0  # amplitude of the smooth texture inside a clot


@dataclass(frozen=True)
class LesionSpec:
    """Common part: class key, mean HU, texture waves (head-local, rad/mm), a centre for metadata."""

    key: str
    hu_mean: float
    texture: tuple[tuple[float, float, float, float], ...]
    centre_local: tuple[float, float, float]

    def mask(self, anat: HeadAnatomy, p: PointSet, y_lps: np.ndarray) -> np.ndarray:
        """Boolean (shape of ``p.u``): points of this lesion. ``y_lps``: the points' LPS y (mm)."""
        raise NotImplementedError

    def edema(self, anat: HeadAnatomy, p: PointSet, lesion: np.ndarray) -> np.ndarray:
        """Boolean: unlabelled oedema around the lesion (only IPH has one)."""
        return np.zeros(p.u.shape, dtype=bool)

    def hu(self, p: PointSet, idx: np.ndarray) -> np.ndarray:
        """Blood HU (float32) at points ``idx``: the lesion mean plus a smooth texture of +-4 HU."""
        acc = np.zeros(idx.shape, dtype=np.float32)
        u, v, w = p.u[idx], p.v[idx], p.w[idx]
        for ku, kv, kw, phase in self.texture:
            acc += np.sin(ku * u + kv * v + kw * w + np.float32(phase))
        return np.float32(self.hu_mean) + np.float32(TEXTURE_HU / len(self.texture)) * acc


@dataclass(frozen=True)
class ConvexityLesion(LesionSpec):
    """EDH (lens, one skull plate) or SDH (crescent, one side of the falx) under the inner table.

    Thickness at angular offset q (1 at the rim) from ``direction``: ``thickness * (1 - q^2)^power``.
    """

    direction: tuple[float, float, float] = (1.0, 0.0, 0.0)
    axis1: tuple[float, float, float] = (0.0, 1.0, 0.0)
    axis2: tuple[float, float, float] = (0.0, 0.0, 1.0)
    half_angles: tuple[float, float] = (0.3, 0.3)  # radians along axis1, axis2
    thickness: float = 10.0
    power: float = 1.0
    plate: int | None = None  # EDH: the plate it may occupy
    side: float = 0.0  # SDH: +1 left (u > 0) or -1 right

    def mask(self, anat: HeadAnatomy, p: PointSet, y_lps: np.ndarray) -> np.ndarray:
        allowed = (Tissue.GREY_MATTER, Tissue.WHITE_MATTER, Tissue.CSF_SULCI, Tissue.FALX)
        out = np.zeros(p.u.shape, dtype=bool)
        shell = np.flatnonzero((p.depth_inner >= 0) & (p.depth_inner < self.thickness) & np.isin(p.tissue, allowed))
        if shell.size == 0:
            return out
        d = np.stack([p.du[shell], p.dv[shell], p.dw[shell]], axis=1)
        cos0 = d @ np.asarray(self.direction, dtype=np.float32)
        a1 = np.arctan2(d @ np.asarray(self.axis1, dtype=np.float32), cos0) / self.half_angles[0]
        a2 = np.arctan2(d @ np.asarray(self.axis2, dtype=np.float32), cos0) / self.half_angles[1]
        q2 = a1 * a1 + a2 * a2
        profile = self.thickness * np.clip(1 - q2, 0, 1) ** self.power
        if self.plate is not None:  # the dura is attached at sutures: an EDH tapers to nothing there
            gap = anat.suture_distance(p.u[shell], p.v[shell], p.w[shell])
            profile = profile * np.sqrt(np.clip(gap / 8.0, 0, 1))
        keep = (cos0 > 0) & (q2 < 1) & (p.depth_inner[shell] < profile)
        if self.plate is not None:
            keep &= anat.skull_plate(p.u[shell], p.v[shell], p.w[shell]) == self.plate
        if self.side:
            keep &= p.u[shell] * self.side > 1.0
        out[shell[keep]] = True
        return out


@dataclass(frozen=True)
class SubarachnoidLesion(LesionSpec):
    """SAH: blood replacing the sulcal/cisternal CSF within ``radius`` mm of the centre."""

    radius: float = 10.0

    def mask(self, anat: HeadAnatomy, p: PointSet, y_lps: np.ndarray) -> np.ndarray:
        cu, cv, cw = self.centre_local
        near = (p.u - cu) ** 2 + (p.v - cv) ** 2 + (p.w - cw) ** 2 < self.radius**2
        return near & (p.tissue == Tissue.CSF_SULCI)


@dataclass(frozen=True)
class ParenchymalLesion(LesionSpec):
    """IPH: an ellipsoidal clot in grey/white matter with a hypodense oedema rim."""

    clot: Ellipsoid | None = None
    halo: Ellipsoid | None = None  # clot grown by the oedema rim

    def mask(self, anat: HeadAnatomy, p: PointSet, y_lps: np.ndarray) -> np.ndarray:
        parenchyma = (p.tissue == Tissue.GREY_MATTER) | (p.tissue == Tissue.WHITE_MATTER)
        return self.clot.inside(p.u, p.v, p.w) & parenchyma

    def edema(self, anat: HeadAnatomy, p: PointSet, lesion: np.ndarray) -> np.ndarray:
        parenchyma = (p.tissue == Tissue.GREY_MATTER) | (p.tissue == Tissue.WHITE_MATTER)
        return self.halo.inside(p.u, p.v, p.w) & parenchyma & ~lesion


@dataclass(frozen=True)
class VentricularLesion(LesionSpec):
    """IVH: ventricular CSF posterior to (below, supine) the fluid level ``level_y_lps``.

    ``side``: +1 left lateral ventricle, -1 right, 0 every ventricle.
    """

    level_y_lps: float = 0.0
    side: float = 0.0

    def mask(self, anat: HeadAnatomy, p: PointSet, y_lps: np.ndarray) -> np.ndarray:
        keep = (p.tissue == Tissue.CSF_VENTRICLE) & (y_lps > self.level_y_lps)
        if self.side:
            keep &= p.u * self.side > 3.0
        return keep
