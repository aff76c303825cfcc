"""Draw hemorrhages for one head: which classes, where, how big (specks to > 30 mL), how dense."""

from __future__ import annotations

import numpy as np

from .anatomy import Ellipsoid, HeadAnatomy
from .config import BLOOD_HU_RANGE, LESION_KEYS, PhantomConfig, Tissue
from .lesions import (
    TEXTURE_HU,
    ConvexityLesion,
    LesionSpec,
    ParenchymalLesion,
    SubarachnoidLesion,
    VentricularLesion,
)
from .tissues import classify


def _log_lerp(lo: float, hi: float, q: float) -> float:
    """Size between ``lo`` and ``hi`` on a log scale (q = 0 smallest, 1 largest)."""
    return float(lo * (hi / lo) ** q)


def _common(rng: np.random.Generator, key: str, centre) -> dict:
    lo, hi = max(BLOOD_HU_RANGE[0], 50.0), BLOOD_HU_RANGE[1]  # a uniform clot: acute blood, 50-90 HU
    waves = tuple(
        (
            *(float(x) for x in rng.normal(size=3) / 1.7 * 2 * np.pi / rng.uniform(6, 14)),
            float(rng.uniform(0, 6.3)),
        )
        for _ in range(3)
    )
    return {
        "key": key,
        "hu_mean": float(rng.uniform(lo + TEXTURE_HU + 1, hi - TEXTURE_HU - 1)),
        "texture": waves,
        "centre_local": tuple(float(x) for x in centre),
    }


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x)


def _inner_table_radius(anat: HeadAnatomy, d: np.ndarray) -> float | None:
    """Distance (mm) from the head centre to the inner table along unit ``d``, or None (skull base)."""
    r = np.arange(5.0, 130.0, 0.5)
    pts = np.outer(r, d)
    p = classify(anat, pts[:, 0], pts[:, 1], pts[:, 2])
    brain = np.flatnonzero(np.isin(p.tissue, (Tissue.GREY_MATTER, Tissue.WHITE_MATTER, Tissue.CSF_SULCI, Tissue.DURA)))
    cavity_end = np.flatnonzero(p.depth_inner >= 0)
    if brain.size == 0 or cavity_end.size == 0 or cavity_end.max() != brain.max():
        return None
    return float(r[brain.max()])


def _convexity_direction(rng: np.random.Generator, anat: HeadAnatomy, min_lateral: float) -> tuple:
    """A direction over the convexity (above the skull base) and the inner-table radius there."""
    for _ in range(200):
        d = _unit(rng.normal(size=3) * np.array([1.0, 1.0, 0.7]) + np.array([0, 0, 0.35]))
        if abs(d[0]) < min_lateral:
            continue
        r = _inner_table_radius(anat, d)
        if r is not None and r * d[2] > anat.skull_base[1] + 25:
            return d, r
    raise RuntimeError("could not place a convexity lesion")  # pragma: no cover (anatomy always has one)


def _tangent_axes(d: np.ndarray, towards: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit tangents at ``d``: the first along ``towards`` projected on the tangent plane."""
    t1 = _unit(towards - (towards @ d) * d)
    return t1, np.cross(d, t1)


def _edh(rng: np.random.Generator, anat: HeadAnatomy, q: float) -> LesionSpec:
    d, r = _convexity_direction(rng, anat, 0.0)
    thickness = _log_lerp(3.0, 30.0, q)
    half = np.radians(_log_lerp(9.0, 32.0, q))
    t1, t2 = _tangent_axes(d, _unit(rng.normal(size=3)))
    rim = d * (r - 0.5)
    plate = int(anat.skull_plate(rim[:1], rim[1:2], rim[2:])[0])
    return ConvexityLesion(
        **_common(rng, "EDH", d * (r - thickness / 3)),
        direction=tuple(d),
        axis1=tuple(t1),
        axis2=tuple(t2),
        half_angles=(half, half * rng.uniform(0.7, 1.0)),
        thickness=thickness,
        power=1.0,
        plate=plate,
    )


def _sdh(rng: np.random.Generator, anat: HeadAnatomy, q: float) -> LesionSpec:
    d, r = _convexity_direction(rng, anat, 0.35)
    thickness = _log_lerp(2.0, 15.0, q)
    half = np.radians(_log_lerp(14.0, 58.0, q))
    t1, t2 = _tangent_axes(d, np.array([0.0, 1.0, 0.0]))
    return ConvexityLesion(
        **_common(rng, "SDH", d * (r - thickness / 2)),
        direction=tuple(d),
        axis1=tuple(t1),
        axis2=tuple(t2),
        half_angles=(half, half * rng.uniform(0.45, 0.75)),
        thickness=thickness,
        power=0.35,
        side=float(np.sign(d[0])),
    )


def _sah(rng: np.random.Generator, anat: HeadAnatomy, q: float) -> LesionSpec:
    radius = _log_lerp(5.0, 38.0, q)
    if rng.random() < 0.45:  # basal: suprasellar / perimesencephalic cisterns, Sylvian fissures
        cistern = anat.cisterns[int(rng.integers(len(anat.cisterns)))]
        centre = np.asarray(cistern.centre) + rng.uniform(-4, 4, 3)
    else:  # convexity sulci
        d, r = _convexity_direction(rng, anat, 0.0)
        centre = d * (r - anat.sas_mm - 0.4 * anat.sulcal_depth_mm)
    return SubarachnoidLesion(**_common(rng, "SAH", centre), radius=radius)


def _iph_centre(rng: np.random.Generator, anat: HeadAnatomy, radius: float) -> np.ndarray:
    """A parenchymal point at least ``0.6 radius`` + 3 mm below the inner table (deep nuclei or lobar)."""
    a, b, c = anat.semi_axes
    nuclei = [e for e in anat.deep_structures if e.tissue == Tissue.GREY_MATTER]
    for _ in range(100):
        if rng.random() < 0.45:
            pts = nuclei[int(rng.integers(len(nuclei)))].sample_interior(rng, 8)
        else:
            pts = rng.uniform([-0.7 * a, -0.7 * b, anat.skull_base[1] + 15], [0.7 * a, 0.7 * b, 0.6 * c], (8, 3))
        p = classify(anat, pts[:, 0], pts[:, 1], pts[:, 2])
        ok = np.isin(p.tissue, (Tissue.GREY_MATTER, Tissue.WHITE_MATTER)) & (p.depth_inner > 0.6 * radius + 3)
        if ok.any():
            return pts[int(np.flatnonzero(ok)[0])]
    raise RuntimeError("could not place an IPH")  # pragma: no cover


def _iph(rng: np.random.Generator, anat: HeadAnatomy, q: float) -> LesionSpec:
    """IPH from a speck (radius 2.5 mm) to about 120 mL (radius 32 mm); lobulated when large.

    Core 72-86 HU over 20-65 % of the radius, rim 49-58 HU (texture +-4 HU on top), oedema 1-9 mm wide.
    """
    radius = _log_lerp(2.5, 32.0, q)
    centre = _iph_centre(rng, anat, radius)
    axes = radius * np.array([1.0, rng.uniform(0.75, 1.0), rng.uniform(0.7, 1.0)])
    yaw = rng.uniform(0, 180)
    rim = rng.uniform(1.0, 3.0) + rng.uniform(0.03, 0.2) * radius
    waves = tuple((*(float(x) for x in rng.normal(size=3) * 1.6), float(rng.uniform(0, 6.3))) for _ in range(3))
    return ParenchymalLesion(
        **_common(rng, "IPH", centre),
        clot=Ellipsoid.make(centre, axes, yaw),
        halo=Ellipsoid.make(centre, axes + rim, yaw),
        core_hu=float(rng.uniform(72.0, 86.0)),
        rim_hu=float(rng.uniform(49.0, 58.0)),
        core_fraction=float(rng.uniform(0.2, 0.65)),
        shape_waves=waves,
        shape_amp=float(rng.uniform(0.05, 0.25) * min(1.0, radius / 8.0)),
        side=float(np.sign(centre[0])),
    )


def _ivh(rng: np.random.Generator, anat: HeadAnatomy, q: float) -> LesionSpec:
    side = float(rng.choice([-1.0, 0.0, 1.0]))
    vents = [e for e in anat.ventricles if side == 0 or e.centre[0] * side > 3]
    pts = np.concatenate([e.sample_interior(rng, 400) for e in vents])
    y = anat.to_lps(pts)[:, 1]
    fraction = _log_lerp(0.03, 1.0, q)  # share of the ventricle filled, from the dependent side
    level = float(np.quantile(y, 1.0 - fraction)) - (5.0 if fraction > 0.97 else 0.0)
    dependent = pts[y > level]
    centre = dependent.mean(axis=0) if len(dependent) else pts.mean(axis=0)
    return VentricularLesion(**_common(rng, "IVH", centre), level_y_lps=level, side=side)


_SAMPLERS = {"EDH": _edh, "SDH": _sdh, "SAH": _sah, "IPH": _iph, "IVH": _ivh}


def sample_lesions(rng: np.random.Generator, anat: HeadAnatomy, config: PhantomConfig) -> tuple[LesionSpec, ...]:
    """The lesions of one case, in paint order (a later lesion wins where two overlap)."""
    if config.lesion_keys is not None:
        keys = list(config.lesion_keys)
    elif rng.random() < config.p_no_lesion or config.max_lesions == 0:
        keys = []
    else:
        keys = list(rng.choice(LESION_KEYS, size=int(rng.integers(1, config.max_lesions + 1))))
    lo, hi = config.lesion_size_quantiles
    return tuple(_SAMPLERS[str(k)](rng, anat, float(rng.uniform(lo, hi))) for k in keys)
