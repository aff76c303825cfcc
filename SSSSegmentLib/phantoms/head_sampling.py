"""Draw a ``HeadAnatomy`` from a seeded generator (sizes, pose, brain folding, ventricles, HU)."""

from __future__ import annotations

import numpy as np

from .anatomy import AirCells, Ellipsoid, HeadAnatomy, Ridge, _rotation
from .config import TISSUE_HU_RANGE, Tissue

GM, CSF = int(Tissue.GREY_MATTER), int(Tissue.CSF_VENTRICLE)

# Probability per case that each physiological calcification is present (adult head CT).
P_PINEAL, P_CHOROID, P_FALX, P_BASAL = 0.65, 0.6, 0.35, 0.2
P_MASTOID = 0.9  # pneumatised mastoids (else sclerotic: petrous bone only)

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
    Tissue.DURA: 3.0,
    Tissue.CALC_PINEAL: 30.0,
    Tissue.CALC_CHOROID: 20.0,
    Tissue.CALC_FALX: 40.0,
    Tissue.CALC_BASAL: 15.0,
    Tissue.ORBIT_FAT: 5.0,
    Tissue.GLOBE: 2.0,
    Tissue.CALC_RIM: 5.0,
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
    """Head rotation as patients lie in the gantry: yaw and roll +-12 deg, pitch (chin up/down) +-20 deg."""
    return _rotation(rng.uniform(-12, 12), rng.uniform(-20, 20), rng.uniform(-12, 12))


def _ellipsoid(rng: np.random.Generator, centre, radius: float, stretch, tissue: Tissue) -> Ellipsoid:
    """A roundish blob: semi-axes ``radius`` times a factor drawn per axis from ``stretch`` (lo, hi)."""
    axes = radius * rng.uniform(*stretch, size=3)
    return Ellipsoid.make(centre, axes, float(rng.uniform(0, 180)), int(tissue))


def _calcifications(rng: np.random.Generator, lift: float, x_scale: float) -> tuple[Ellipsoid, ...]:
    """Pineal (behind the third ventricle), choroid plexus glomus (both atria), globus pallidus specks.

    Diameters 3-8 mm for pineal and glomus; specks 1.4-3.6 mm. Centres follow ``_ventricles``/``_nuclei``.
    """
    out = []
    if rng.random() < P_PINEAL:  # the third ventricle ends at v = 10 mm
        r = rng.uniform(1.5, 4.0)
        centre = (0.0, 10.0 + r + rng.uniform(0.5, 2.5), -4.0 + lift + rng.uniform(-1.0, 2.0))
        out.append(_ellipsoid(rng, centre, r, (0.75, 1.0), Tissue.CALC_PINEAL))
    if rng.random() < P_CHOROID:  # atria at (+-18, 24, 9 + lift); the glomus lies in their dependent part
        for side in (1.0, -1.0):
            r = rng.uniform(1.5, 4.0)
            centre = (side * (18 * x_scale + rng.uniform(-1.5, 1.5)), 24 + rng.uniform(0, 4), 7 + lift)
            out.append(_ellipsoid(rng, centre, r, (0.8, 1.3), Tissue.CALC_CHOROID))
    if rng.random() < P_BASAL:  # globus pallidus: the medial part of the lentiform nucleus
        for side in (1.0, -1.0):
            pallidus = Ellipsoid.make((side * 19 * x_scale, -4, lift - 1), (3, 6, 4), 10 * side)
            for point in pallidus.sample_interior(rng, int(rng.integers(3, 9))):
                out.append(_ellipsoid(rng, point, rng.uniform(0.7, 1.8), (0.8, 1.2), Tissue.CALC_BASAL))
    return tuple(out)


def _falx_plaques(rng: np.random.Generator, semi_axes, callosum_w: float) -> tuple[Ellipsoid, ...]:
    """0-3 thin calcified plaques on the falx (above the callosum, below the vertex), with ``P_FALX``."""
    if rng.random() >= P_FALX:
        return ()
    _, b, c = semi_axes
    out = []
    for _ in range(int(rng.integers(1, 4))):
        v = rng.uniform(-0.55, 0.45) * b
        top = (c - 14) * np.sqrt(max(1 - (v / (b - 12)) ** 2, 0.0)) - 4  # roughly under the inner table
        if top < callosum_w + 12:
            continue
        w = rng.uniform(callosum_w + 8, top)
        axes = (rng.uniform(0.5, 1.2), rng.uniform(3, 10), rng.uniform(2, 6))
        out.append(Ellipsoid.make((0.0, v, w), axes, 0.0, int(Tissue.CALC_FALX)))
    return tuple(out)


def _petrous(rng: np.random.Generator, a: float, b: float) -> tuple[Ridge, ...]:
    """Petrous wedges: from the apex beside the clivus, posterolaterally at about 40 deg to the midline;
    crest 6-12 mm above the middle fossa floor, flanks falling 1-1.8 mm per mm."""
    out = []
    for side in (-1.0, 1.0):
        u0, v0 = rng.uniform(14, 18), rng.uniform(-0.08, -0.02) * b
        u1 = 0.62 * a * rng.uniform(0.95, 1.05)
        v1 = v0 + (u1 - u0) * rng.uniform(0.7, 1.0)
        segment = (side * u0, v0, side * u1, v1)
        out.append(Ridge(tuple(float(x) for x in segment), float(rng.uniform(6, 12)), float(rng.uniform(1.0, 1.8))))
    return tuple(out)


def _mastoid(rng: np.random.Generator, petrous: tuple[Ridge, ...], post_floor: float) -> AirCells:
    """Air cells behind the lateral end of each petrous ridge, around the posterior fossa floor level."""
    if rng.random() >= P_MASTOID:
        return AirCells()
    regions, walls = [], []
    for ridge in petrous:
        u1, v1 = ridge.segment[2], ridge.segment[3]
        centre = (u1 * rng.uniform(0.85, 0.95), v1 + rng.uniform(4, 10), post_floor + rng.uniform(0, 8))
        axes, yaw = rng.uniform(8, 12, size=3), float(rng.uniform(-20, 20))
        regions.append(Ellipsoid.make(centre, axes, yaw, int(Tissue.AIR)))
        walls.append(Ellipsoid.make(centre, axes + 3.0, yaw, int(Tissue.BONE_CORTICAL)))
    return AirCells(
        tuple(regions),
        tuple(walls),
        float(rng.uniform(3, 6)),
        float(rng.uniform(0.15, 0.45)),
        tuple(float(x) for x in rng.uniform(0, np.pi, 3)),
    )


def _orbits(rng: np.random.Generator, semi_axes, ant_floor: float) -> tuple[Ellipsoid, ...]:
    """Orbital fat cones and globes (radius 11-12.5 mm) under the anterior fossa, just behind the face."""
    a, b, c = semi_axes
    fats, globes = [], []
    for side in (-1.0, 1.0):
        u, w = side * rng.uniform(0.38, 0.44) * a, ant_floor - rng.uniform(15, 19)
        front = -b * np.sqrt(max(1 - (u / a) ** 2 - (w / c) ** 2, 0.05))
        r = rng.uniform(11, 12.5)
        v = front + r + rng.uniform(1, 3)
        globes.append(Ellipsoid.make((u, v, w), (r, r, r), 0.0, int(Tissue.GLOBE)))
        fat_axes = (rng.uniform(11, 14), rng.uniform(14, 17), rng.uniform(10, 12))
        fats.append(Ellipsoid.make((u, v + rng.uniform(8, 11), w), fat_axes, side * 15.0, int(Tissue.ORBIT_FAT)))
    return (*fats, *globes)


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
    callosum = float(16 + lift + 5.5 * vent_scale + 6)
    petrous = _petrous(rng, a, b)
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
        falx_top_of_callosum=callosum,
        tissue_hu=hu,
        tissue_texture_hu=texture,
        dura_mm=float(rng.uniform(0.5, 1.5)),
        sagittal_sinus=(float(rng.uniform(2.5, 4.5)), float(rng.uniform(5, 8))),
        petrous=petrous,
        mastoid=_mastoid(rng, petrous, base[2]),
        orbits=_orbits(rng, (a, b, c), base[0]),
        calcifications=_calcifications(rng, lift, x_scale),
        falx_plaques=_falx_plaques(rng, (a, b, c), callosum),
    )


def _scale_u(e: Ellipsoid, factor: float) -> Ellipsoid:
    """Move an ellipsoid's centre sideways with the head width (shapes keep their size)."""
    return Ellipsoid(((e.centre[0] * factor), e.centre[1], e.centre[2]), e.matrix, e.radius, e.tissue)
