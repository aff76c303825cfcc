"""Draw a ``HeadAnatomy`` from a seeded generator (sizes, pose, brain folding, ventricles, HU)."""

from __future__ import annotations

import numpy as np

from .anatomy import Ellipsoid, HeadAnatomy, _rotation
from .config import TISSUE_HU_RANGE, Tissue

GM, CSF = int(Tissue.GREY_MATTER), int(Tissue.CSF_VENTRICLE)

# Smooth-texture amplitude per tissue (HU); per-case means are drawn at least this far inside the range.
_TEXTURE_HU = {
    Tissue.AIR: 0.0,
    Tissue.SCALP: 8.0,
    Tissue.BONE_CORTICAL: 60.0,
    Tissue.BONE_DIPLOE: 50.0,
    Tissue.SUTURE: 15.0,
    Tissue.GREY_MATTER: 1.5,
    Tissue.WHITE_MATTER: 1.5,
    Tissue.CSF_VENTRICLE: 1.5,
    Tissue.CSF_SULCI: 1.5,
    Tissue.FALX: 8.0,
    Tissue.EDEMA: 1.5,
}


def _tissue_hu(rng: np.random.Generator) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-tissue mean HU drawn inside ``TISSUE_HU_RANGE`` (leaving room for the texture), and amplitudes."""
    means, amps = [], []
    for tissue in Tissue:
        lo, hi = TISSUE_HU_RANGE[tissue]
        amp = _TEXTURE_HU[tissue]
        span = max(hi - lo - 2 * amp, 0.0)
        means.append(float(lo + amp + rng.uniform(0.15, 0.85) * span))
        amps.append(amp)
    if means[Tissue.GREY_MATTER] - means[Tissue.WHITE_MATTER] < 6.0:  # keep grey-white contrast visible
        means[Tissue.WHITE_MATTER] = means[Tissue.GREY_MATTER] - 6.0 - rng.uniform(0, 3)
        means[Tissue.WHITE_MATTER] = min(max(means[Tissue.WHITE_MATTER], 23.5), 30.5)
    return tuple(means), tuple(amps)


def _sulcal_waves(rng: np.random.Generator, n: int = 12) -> tuple[tuple[tuple[float, float, float, float], ...], float]:
    """Random plane waves over directions (wavelength ~20-32 mm on a 70 mm sphere) and their rms gradient."""
    waves, grad2 = [], 0.0
    for _ in range(n):
        k_dir = rng.normal(size=3)
        k_dir /= np.linalg.norm(k_dir)
        k = 2 * np.pi / rng.uniform(20.0, 32.0)
        waves.append((*(float(x) for x in k_dir * k), float(rng.uniform(0, 2 * np.pi))))
        grad2 += k * k / 3.0  # mean square of d/dmm along the surface: k^2 * (1/2) * (2/3)
    return tuple(waves), float(np.sqrt(grad2))


def _ventricles(rng: np.random.Generator, scale: float, lift: float) -> tuple[Ellipsoid, ...]:
    """Lateral (frontal horn, body, atrium, temporal horn), third and fourth ventricles."""
    s = scale
    out = []
    for side in (1.0, -1.0):
        out += [
            Ellipsoid.make((side * 8.5, -24, 10 + lift), (4.5 * s, 13, 7 * s), 18 * side),
            Ellipsoid.make((side * 12, -2, 16 + lift), (5 * s, 20, 5.5 * s), 0.0),
            Ellipsoid.make((side * 18, 24, 9 + lift), (7 * s, 14, 9 * s), -25 * side),
            Ellipsoid.make((side * 27, -8, -16 + lift), (3 * s, 11, 3.5 * s), -15 * side),
        ]
    out.append(Ellipsoid.make((0, -2, -5 + lift), (2.0 * s, 12, 8), 0.0))
    out.append(Ellipsoid.make((0, 32, -36), (6, 3.5, 6), 0.0))
    return tuple(out)


def _nuclei(lift: float) -> tuple[Ellipsoid, ...]:
    """Deep grey nuclei: caudate heads, lentiform nuclei, thalami."""
    out = []
    for side in (1.0, -1.0):
        out += [
            Ellipsoid.make((side * 14, -17, 9 + lift), (4, 7, 7), 0.0, GM),
            Ellipsoid.make((side * 24, -6, 0 + lift), (5, 13, 9), 10 * side, GM),
            Ellipsoid.make((side * 9, 8, 0 + lift), (7, 11, 8), 0.0, GM),
        ]
    return tuple(out)


def _pose(rng: np.random.Generator) -> np.ndarray:
    """Head rotation: yaw +-10 deg, pitch and roll +-5 deg."""
    return _rotation(rng.uniform(-10, 10), rng.uniform(-5, 5), rng.uniform(-5, 5))


def sample_anatomy(rng: np.random.Generator) -> HeadAnatomy:
    """A random adult head; centre at LPS (dx, dy, 0) with a few mm of shift (the grid sets z later)."""
    a, b = rng.uniform(140, 165) / 2, rng.uniform(175, 200) / 2
    c = rng.uniform(0.86, 0.95) * b
    lift = float(rng.uniform(4, 10))
    vent_scale = float(rng.uniform(0.9, 1.5))
    waves, gradient = _sulcal_waves(rng)
    hu, texture = _tissue_hu(rng)
    x_scale = a / 75.0
    base = (-0.24 * c + rng.uniform(-3, 3), -0.46 * c + rng.uniform(-3, 3), -0.62 * c + rng.uniform(-3, 3))
    return HeadAnatomy(
        centre_lps=(float(rng.uniform(-6, 6)), float(rng.uniform(-6, 6)), 0.0),
        rotation=tuple(_pose(rng).ravel().tolist()),
        semi_axes=(float(a), float(b), float(c)),
        deform=tuple(float(x) for x in rng.uniform(-1, 1, 6) * np.array([0.03, 0.04, 0.02, 0.04, 0.015, 0.03])),
        scalp_mm=float(rng.uniform(4, 7)),
        skull_mm=float(rng.uniform(4.5, 7)),
        outer_table_mm=float(rng.uniform(1.5, 2.2)),
        inner_table_mm=float(rng.uniform(1.2, 1.8)),
        sas_mm=float(rng.uniform(0.8, 2.0) * (0.7 + 0.3 * vent_scale)),
        cortex_mm=float(rng.uniform(2.5, 3.5)),
        sulcal_depth_mm=float(rng.uniform(9, 15)),
        sulcal_width_mm=float(rng.uniform(1.2, 2.2) * (0.7 + 0.3 * vent_scale)),
        sulcal_waves=waves,
        sulcal_gradient=gradient,
        skull_base=tuple(float(x) for x in base),
        sutures=(
            float(-0.1 * b + rng.uniform(-5, 5)),
            float(0.45 * b + rng.uniform(-5, 5)),
            float(rng.uniform(-10, 0)),
        ),
        deep_structures=tuple(_scale_u(e, x_scale) for e in _nuclei(lift) + _ventricles(rng, vent_scale, lift)),
        cisterns=(
            Ellipsoid.make((0, 8, -24), (15, 15, 9), 0.0, int(Tissue.CSF_SULCI)),
            Ellipsoid.make((0, -13, -27), (11, 8, 5), 0.0, int(Tissue.CSF_SULCI)),
        ),
        midbrain=Ellipsoid.make((0, 9, -24), (11.5, 11, 9.5), 0.0, int(Tissue.WHITE_MATTER)),
        sinuses=(
            Ellipsoid.make((0, -0.97 * b, -0.18 * c), (14, 6, 9), 0.0, int(Tissue.AIR)),
            Ellipsoid.make((0, -0.5 * b, base[0] - 16), (13, 18, 8), 0.0, int(Tissue.AIR)),
        ),
        sylvian_w=float(rng.uniform(-12, -4) + lift),
        falx_top_of_callosum=float(16 + lift + 5.5 * vent_scale + 6),
        tissue_hu=hu,
        tissue_texture_hu=texture,
    )


def _scale_u(e: Ellipsoid, factor: float) -> Ellipsoid:
    """Move an ellipsoid's centre sideways with the head width (shapes keep their size)."""
    return Ellipsoid(((e.centre[0] * factor), e.centre[1], e.centre[2]), e.matrix, e.radius, e.tissue)
