"""The drawn head of one phantom: pose, sizes, skull plates and deep structures (all analytic).

Head-local frame (u, v, w) in mm: u to the patient's left, v posterior, w superior, origin at the
centre of the cranial ellipsoid. ``HeadAnatomy.to_local`` maps LPS points into it. Every shape is a
closed-form function of (u, v, w), so tissues can be evaluated on any set of points (a slice window,
a few sample points) without building a 3D grid first.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from .config import Tissue


def _rotation(yaw_deg: float, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> np.ndarray:
    """3x3 rotation: yaw about w (superior), then roll about v, then pitch about u."""
    y, p, r = np.radians([yaw_deg, pitch_deg, roll_deg])
    rz = np.array([[np.cos(y), -np.sin(y), 0], [np.sin(y), np.cos(y), 0], [0, 0, 1]])
    ry = np.array([[np.cos(r), 0, np.sin(r)], [0, 1, 0], [-np.sin(r), 0, np.cos(r)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class Ellipsoid:
    """A solid ellipsoid in head-local mm: inside where ``|M (p - centre)| < 1``."""

    centre: tuple[float, float, float]
    matrix: tuple[float, ...]  # row-major 3x3 M
    radius: float  # largest semi-axis (bounding sphere)
    tissue: int = int(Tissue.CSF_VENTRICLE)

    @classmethod
    def make(cls, centre, semi_axes, yaw_deg: float = 0.0, tissue: int = int(Tissue.CSF_VENTRICLE)) -> Ellipsoid:
        """Ellipsoid with ``semi_axes`` (mm) along u, v, w, turned by ``yaw_deg`` about w."""
        m = np.diag(1.0 / np.asarray(semi_axes, dtype=float)) @ _rotation(yaw_deg).T
        return cls(tuple(float(c) for c in centre), tuple(m.ravel().tolist()), float(max(semi_axes)), int(tissue))

    def inside(self, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Boolean array (shape of ``u``): points inside. Cheap reject when the points' box misses it."""
        c, r = self.centre, self.radius
        if u.size == 0 or w.min() > c[2] + r or w.max() < c[2] - r or v.min() > c[1] + r or v.max() < c[1] - r:
            return np.zeros(u.shape, dtype=bool)
        m = self.matrix
        du, dv, dw = u - np.float32(c[0]), v - np.float32(c[1]), w - np.float32(c[2])
        q0 = m[0] * du + m[1] * dv + m[2] * dw
        q1 = m[3] * du + m[4] * dv + m[5] * dw
        q2 = m[6] * du + m[7] * dv + m[8] * dw
        return q0 * q0 + q1 * q1 + q2 * q2 < 1.0

    def normalized(self, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``M (p - centre)`` per point (three float32 arrays, shape of ``u``): inside where its norm < 1."""
        m, c = self.matrix, self.centre
        du, dv, dw = u - np.float32(c[0]), v - np.float32(c[1]), w - np.float32(c[2])
        return (
            np.float32(m[0]) * du + np.float32(m[1]) * dv + np.float32(m[2]) * dw,
            np.float32(m[3]) * du + np.float32(m[4]) * dv + np.float32(m[5]) * dw,
            np.float32(m[6]) * du + np.float32(m[7]) * dv + np.float32(m[8]) * dw,
        )

    def sample_interior(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` uniform random points inside, shape (n, 3), head-local mm."""
        d = rng.normal(size=(n, 3))
        d *= (rng.random(n) ** (1 / 3) / np.linalg.norm(d, axis=1))[:, None]
        return np.asarray(self.centre) + d @ np.linalg.inv(np.asarray(self.matrix).reshape(3, 3)).T


def box_indices(
    shapes: tuple[Ellipsoid, ...], u: np.ndarray, v: np.ndarray, w: np.ndarray, grow: float = 1.0
) -> np.ndarray:
    """Indices (int64, 1D) of the points inside the axis-aligned box around ``shapes`` (bounding spheres
    scaled by ``grow``): a cheap pre-filter before exact tests on a few points."""
    if not shapes or u.size == 0:
        return np.zeros(0, dtype=np.int64)
    c = np.asarray([e.centre for e in shapes])
    r = grow * np.asarray([e.radius for e in shapes])[:, None]
    lo, hi = (c - r).min(axis=0), (c + r).max(axis=0)
    keep = (w > lo[2]) & (w < hi[2])
    idx = np.flatnonzero(keep)
    keep = (u[idx] > lo[0]) & (u[idx] < hi[0]) & (v[idx] > lo[1]) & (v[idx] < hi[1])
    return idx[keep]


def segment_distance(u: np.ndarray, v: np.ndarray, seg: tuple[float, float, float, float]) -> np.ndarray:
    """Distance (mm, shape of ``u``) in the (u, v) plane from each point to the segment (u0, v0, u1, v1)."""
    u0, v0, u1, v1 = (np.float32(x) for x in seg)
    eu, ev = u1 - u0, v1 - v0
    t = np.clip(((u - u0) * eu + (v - v0) * ev) / (eu * eu + ev * ev), 0, 1)
    return np.sqrt((u - u0 - t * eu) ** 2 + (v - v0 - t * ev) ** 2)


@dataclass(frozen=True)
class Ridge:
    """A bony wedge on the cavity floor (petrous pyramid) along a (u, v) segment.

    ``segment``: (u0, v0, u1, v1) mm; ``height``: crest height above the middle fossa floor (mm);
    ``slope``: fall of its flanks (mm of height per mm across).
    """

    segment: tuple[float, float, float, float]
    height: float
    slope: float

    def top_w(self, u: np.ndarray, v: np.ndarray, middle_floor: float) -> np.ndarray:
        """Height w of the wedge's surface (float32, shape of ``u``); far below the floor away from it."""
        d = segment_distance(u, v, self.segment)
        return np.float32(middle_floor + self.height) - np.float32(self.slope) * d


@dataclass(frozen=True)
class AirCells:
    """Mastoid pneumatisation: air cells on a cubic lattice inside ``regions`` (thin bony septa between).

    ``walls``: the regions grown by a bony wall; they are carved out of the cranial cavity, so the cells
    never touch the brain. ``cell_mm``: lattice period; ``septum``: threshold on |sin| (larger = thicker
    septa); ``phase``: lattice offset (rad) along u, v, w.
    """

    regions: tuple[Ellipsoid, ...] = ()
    walls: tuple[Ellipsoid, ...] = ()
    cell_mm: float = 5.0
    septum: float = 0.3
    phase: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def inside(self, u: np.ndarray, v: np.ndarray, w: np.ndarray, walls: bool = False) -> np.ndarray:
        """Boolean (shape of ``u``): points inside any region (or any wall)."""
        out = np.zeros(u.shape, dtype=bool)
        for e in self.walls if walls else self.regions:
            out |= e.inside(u, v, w)
        return out

    def cells(self, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Boolean (shape of ``u``): points inside a cell of the lattice (off the septa)."""
        k = np.float32(np.pi / self.cell_mm)
        t = np.float32(self.septum)
        out = np.ones(u.shape, dtype=bool)
        for x, ph in zip((u, v, w), self.phase, strict=True):
            out &= np.abs(np.sin(k * x + np.float32(ph))) > t
        return out


class Plate(IntEnum):
    """Skull plates separated by sutures (an EDH stays on one plate)."""

    FRONTAL = 0
    PARIETAL_RIGHT = 1
    PARIETAL_LEFT = 2
    TEMPORAL_RIGHT = 3
    TEMPORAL_LEFT = 4
    OCCIPITAL = 5


@dataclass(frozen=True)
class HeadAnatomy:
    """All the random choices that make one head (mm, head-local frame unless stated)."""

    centre_lps: tuple[float, float, float]
    rotation: tuple[float, ...]  # row-major 3x3; columns are the u, v, w axes in LPS
    semi_axes: tuple[float, float, float]  # outer scalp surface along u, v, w
    deform: tuple[float, ...]  # 6 coefficients of the low-order shape harmonics
    scalp_mm: float
    skull_mm: float
    outer_table_mm: float
    inner_table_mm: float
    sas_mm: float  # convexity subarachnoid CSF layer
    cortex_mm: float
    sulcal_depth_mm: float
    sulcal_width_mm: float
    sulcal_waves: tuple[tuple[float, float, float, float], ...]  # (ku, kv, kw, phase), rad/mm
    sulcal_gradient: float  # rms gradient of the sulcal field (to express it in mm)
    skull_base: tuple[float, float, float]  # anterior, middle, posterior fossa floor heights w
    sutures: tuple[float, float, float]  # coronal v at w=0, lambdoid v at w=0, squamosal w
    deep_structures: tuple[Ellipsoid, ...]  # nuclei (GM) then ventricles (CSF), in paint order
    cisterns: tuple[Ellipsoid, ...]  # CSF spaces around the midbrain and suprasellar
    midbrain: Ellipsoid
    sinuses: tuple[Ellipsoid, ...]  # air cells below the skull base
    sylvian_w: float  # height of the Sylvian fissures
    falx_top_of_callosum: float  # the falx and interhemispheric fissure stop here (mid v)
    tissue_hu: tuple[float, ...]  # mean HU per Tissue code
    tissue_texture_hu: tuple[float, ...]  # amplitude of the smooth texture per Tissue code
    dura_mm: float = 0.0  # dura under the inner table and on the floor; also the tentorium thickness
    sagittal_sinus: tuple[float, float] = (0.0, 0.0)  # superior sagittal sinus: half-width at the table, depth
    petrous: tuple[Ridge, ...] = ()  # petrous ridges (right, left)
    mastoid: AirCells = AirCells()
    orbits: tuple[Ellipsoid, ...] = ()  # orbital fat cones then globes, painted in order (below the floor)
    calcifications: tuple[Ellipsoid, ...] = ()  # pineal, choroid plexus, basal ganglia (tissue = CALC_*)
    falx_plaques: tuple[Ellipsoid, ...] = ()  # calcified plaques, painted only on the falx / fissure

    @property
    def rotation_matrix(self) -> np.ndarray:
        return np.asarray(self.rotation, dtype=np.float64).reshape(3, 3)

    def to_local(self, points_lps: np.ndarray) -> np.ndarray:
        """LPS points (n, 3) -> head-local (n, 3)."""
        return (np.asarray(points_lps, dtype=np.float64) - np.asarray(self.centre_lps)) @ self.rotation_matrix

    def to_lps(self, points_local: np.ndarray) -> np.ndarray:
        """Head-local points (n, 3) -> LPS (n, 3)."""
        return np.asarray(points_local, dtype=np.float64) @ self.rotation_matrix.T + np.asarray(self.centre_lps)

    @property
    def ventricles(self) -> tuple[Ellipsoid, ...]:
        return tuple(e for e in self.deep_structures if e.tissue == Tissue.CSF_VENTRICLE)

    def surface_factor(self, du: np.ndarray, dv: np.ndarray, dw: np.ndarray) -> np.ndarray:
        """Harmonic deformation of the ellipsoid along unit directions (about 1 +- 0.05)."""
        c = self.deform
        return 1.0 + c[0] * dv + c[1] * dv * dv + c[2] * du * dv + c[3] * dw * dv + c[4] * du + c[5] * dw * dw

    def skull_thickness(self, dv: np.ndarray, dw: np.ndarray) -> np.ndarray:
        """Skull thickness (mm) along unit directions: thicker frontal/occipital, thinner at the vertex."""
        return self.skull_mm * (1.0 + 0.15 * dv * dv - 0.12 * dw * dw)

    def skull_base_w(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Height w of the cranial-cavity floor: the fossae (``smooth_floor_w``) raised by the petrous wedges."""
        floor = self.smooth_floor_w(u, v)
        for ridge in self.petrous:
            floor = np.maximum(floor, ridge.top_w(u, v, self.skull_base[1]))
        return floor

    def smooth_floor_w(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Height w of the fossae floor (anterior, middle, posterior fossa; sella bump)."""
        ant, mid, post = self.skull_base
        b = self.semi_axes[1]
        step1 = 1.0 / (1.0 + np.exp(-(v + 0.45 * b) / 4.0))
        step2 = 1.0 / (1.0 + np.exp(-(v - 0.1 * b) / 4.0))
        sella = 9.0 * np.exp(-((u / 12.0) ** 2) - ((v + 0.12 * b) / 14.0) ** 2)
        return ant + (mid - ant) * step1 + (post - mid) * step2 + sella

    def petrous_rise(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """How far (mm, shape of ``u``) the petrous wedges lift the floor at (u, v)."""
        return self.skull_base_w(u, v) - self.smooth_floor_w(u, v)

    def tentorium_w(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Height w of the tentorium (a tent over the posterior fossa, highest at the midline)."""
        b, c = self.semi_axes[1], self.semi_axes[2]
        return -0.2 * c - 0.3 * (v - 0.15 * b) - 0.12 * np.abs(u)

    def coronal_v(self, w: np.ndarray) -> np.ndarray:
        return self.sutures[0] + 0.3 * w

    def lambdoid_v(self, w: np.ndarray) -> np.ndarray:
        return self.sutures[1] + 0.25 * w

    def skull_plate(self, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``Plate`` code (int8, shape of ``u``) of the skull region over each head-local point."""
        plate = np.full(np.shape(u), Plate.FRONTAL, dtype=np.int8)
        middle = (v >= self.coronal_v(w)) & (v < self.lambdoid_v(w))
        left = u > 0
        upper = w > self.sutures[2]
        plate[middle & upper & ~left] = Plate.PARIETAL_RIGHT
        plate[middle & upper & left] = Plate.PARIETAL_LEFT
        plate[middle & ~upper & ~left] = Plate.TEMPORAL_RIGHT
        plate[middle & ~upper & left] = Plate.TEMPORAL_LEFT
        plate[v >= self.lambdoid_v(w)] = Plate.OCCIPITAL
        return plate

    def near_suture(self, u: np.ndarray, v: np.ndarray, w: np.ndarray, half_width: float = 0.5) -> np.ndarray:
        """True within ``half_width`` mm of a suture plane (meant for skull points)."""
        middle = (v >= self.coronal_v(w)) & (v < self.lambdoid_v(w))
        lines = (np.abs(v - self.coronal_v(w)) < half_width) | (np.abs(v - self.lambdoid_v(w)) < half_width)
        sagittal = middle & (np.abs(u) < half_width) & (w > self.sutures[2])
        squamosal = middle & (np.abs(w - self.sutures[2]) < half_width)
        return lines | sagittal | squamosal

    def suture_distance(self, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Approximate distance (mm) from each point to the nearest plate boundary (suture plane)."""
        middle = (v >= self.coronal_v(w)) & (v < self.lambdoid_v(w))
        far = np.float32(1e3)
        dist = np.minimum(np.abs(v - self.coronal_v(w)), np.abs(v - self.lambdoid_v(w)))
        dist = np.minimum(dist, np.where(middle, np.abs(w - self.sutures[2]), far))
        return np.minimum(dist, np.where(middle & (w > self.sutures[2]), np.abs(u), far))

    def sulcal_field_mm(self, du: np.ndarray, dv: np.ndarray, dw: np.ndarray) -> np.ndarray:
        """Smooth random field on the sphere of directions, scaled so |field| ~ mm to its zero lines.

        Its zero lines are the sulci (constant along a radius, so sulci run inward).
        """
        radius = np.float32(70.0)
        acc = np.zeros(np.shape(du), dtype=np.float32)
        for ku, kv, kw, phase in self.sulcal_waves:
            acc += np.sin((ku * du + kv * dv + kw * dw) * radius + np.float32(phase))
        return acc / np.float32(self.sulcal_gradient)

    def outer_surface_points(self, n: int = 2000) -> np.ndarray:
        """Points (n, 3) on the outer scalp surface, head-local mm (Fibonacci sphere directions)."""
        k = np.arange(n) + 0.5
        dw = 1 - 2 * k / n
        phi = np.pi * (1 + 5**0.5) * k
        dr = np.sqrt(1 - dw * dw)
        d = np.stack([dr * np.cos(phi), dr * np.sin(phi), dw], axis=1)
        a, b, c = self.semi_axes
        rho = np.sqrt((d[:, 0] / a) ** 2 + (d[:, 1] / b) ** 2 + (d[:, 2] / c) ** 2)
        f = self.surface_factor(d[:, 0], d[:, 1], d[:, 2])
        return d * (f / rho)[:, None]
