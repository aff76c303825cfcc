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

from .anatomy import Ellipsoid, HeadAnatomy, box_indices
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
        allowed = (Tissue.GREY_MATTER, Tissue.WHITE_MATTER, Tissue.CSF_SULCI, Tissue.FALX, Tissue.DURA)
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
    """IPH: a lobulated clot in grey/white matter, denser at the core, with a hypodense oedema rim.

    The clot is ``clot`` with its surface pushed in/out by ``1 + shape_amp * mean(sin(k . n + phase))``
    over the unit direction n in the ellipsoid's normalised frame (``shape_waves``: (k_u, k_v, k_w, phase),
    rad). ``halo``: the clot grown by the oedema width, with the same lobulation. Density goes smoothly
    from ``rim_hu`` at the surface to ``core_hu`` inside ``core_fraction`` of the radius, plus the
    common texture.
    """

    clot: Ellipsoid | None = None
    halo: Ellipsoid | None = None  # clot grown by the oedema rim
    core_hu: float = 80.0
    rim_hu: float = 55.0
    core_fraction: float = 0.4
    shape_waves: tuple[tuple[float, float, float, float], ...] = ()
    shape_amp: float = 0.0
    side: float = 0.0  # +1 left hemisphere (u > 0), -1 right: the clot does not cross the falx

    def _scaled_radius(self, shape: Ellipsoid, p: PointSet, idx: np.ndarray) -> np.ndarray:
        """Normalised radius (float32, shape of ``idx``) in ``shape``: < 1 inside the lobulated surface."""
        q0, q1, q2 = shape.normalized(p.u[idx], p.v[idx], p.w[idx])
        rr = np.sqrt(q0 * q0 + q1 * q1 + q2 * q2) + np.float32(1e-6)
        bump = np.zeros(idx.shape, dtype=np.float32)
        for ku, kv, kw, phase in self.shape_waves:
            bump += np.sin((ku * q0 + kv * q1 + kw * q2) / rr + np.float32(phase))
        scale = np.float32(self.shape_amp / max(len(self.shape_waves), 1))
        return rr / (1 + scale * bump)

    def _candidates(self, p: PointSet) -> np.ndarray:
        """Indices of the parenchymal points in the box around the (lobulated) halo."""
        idx = box_indices((self.halo,), p.u, p.v, p.w, grow=1.0 + self.shape_amp)
        keep = np.isin(p.tissue[idx], (Tissue.GREY_MATTER, Tissue.WHITE_MATTER))
        if self.side:
            keep &= p.u[idx] * np.float32(self.side) > 1.0
        return idx[keep]

    def mask(self, anat: HeadAnatomy, p: PointSet, y_lps: np.ndarray) -> np.ndarray:
        out = np.zeros(p.u.shape, dtype=bool)
        idx = self._candidates(p)
        out[idx[self._scaled_radius(self.clot, p, idx) < 1]] = True
        return out

    def edema(self, anat: HeadAnatomy, p: PointSet, lesion: np.ndarray) -> np.ndarray:
        out = np.zeros(p.u.shape, dtype=bool)
        idx = self._candidates(p)
        out[idx[self._scaled_radius(self.halo, p, idx) < 1]] = True
        return out & ~lesion

    def hu(self, p: PointSet, idx: np.ndarray) -> np.ndarray:
        """Rim-to-core density (smoothstep over the normalised radius) plus the common texture."""
        s = self._scaled_radius(self.clot, p, idx)
        t = np.clip((1 - s) / np.float32(1 - self.core_fraction), 0, 1)
        profile = np.float32(self.rim_hu) + np.float32(self.core_hu - self.rim_hu) * t * t * (3 - 2 * t)
        return profile + super().hu(p, idx) - np.float32(self.hu_mean)


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
