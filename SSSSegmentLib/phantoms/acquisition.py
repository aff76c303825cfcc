"""Scan grid and scanner effects: field of view, tissue texture, in-plane blur, noise, calibration, and the
per-case artefacts that make real thick-slice CT show a blood-density rim inside the skull
(docs/phantoms.md): a slice sensitivity profile wider than the slice, a point spread with a wide tail, beam
hardening near the skull with cupping, streaks at the skull base, and a truncated field of view.

Arrays are (K, J, I) float32 HU on an axial grid (LPS, identity direction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from ..volumes.geometry import Geometry
from .anatomy import HeadAnatomy
from .config import INTRACRANIAL, PhantomConfig, ScannerProfile

BONE_HU = 300.0  # bone for the distance maps
DENSE_BONE_HU = 700.0  # petrous bone, for the skull-base streaks
P_TRUNCATED_FOV = 0.1


@dataclass(frozen=True)
class Artefacts:
    """Per-case scanner artefacts (``draw_artefacts``); every value is 0 (or 1 for ``ssp_width``) when clean.

    ``strength``: the drawn strength in [0, 1] that scales the rest. ``ssp_width``: slice sensitivity
    profile reach / nominal thickness (1 = flat box; above, the box blurred along z by a gaussian of
    sigma (ssp_width - 1) * thickness / 2, so the profile tails into the neighbouring slices).
    ``psf_core_mm``: gaussian sigma added to the scanner's in-plane blur. ``psf_tail_mm`` and
    ``psf_tail_weight``: a wide low-weight gaussian tail of the point spread. ``bh_hu`` and
    ``bh_length_mm``: beam-hardening boost of intracranial HU, bh_hu * exp(-d / bh_length_mm) at
    in-plane distance d from the skull. ``cupping_hu``: a broad boost, cupping_hu * (1 - d / 40 mm)^2.
    ``streak_hu``: amplitude of dark/bright streaks between dense bone at the skull base.
    ``fov_cut_mm``: the circular field of view cuts this far into the head (0: the head fits).
    """

    strength: float = 0.0
    ssp_width: float = 1.0
    psf_core_mm: float = 0.0
    psf_tail_mm: float = 0.0
    psf_tail_weight: float = 0.0
    bh_hu: float = 0.0
    bh_length_mm: float = 0.0
    cupping_hu: float = 0.0
    streak_hu: float = 0.0
    fov_cut_mm: float = 0.0


def draw_artefacts(rng: np.random.Generator, config: PhantomConfig, scanner: ScannerProfile) -> Artefacts:
    """Draw one case's artefacts: strength s ~ U(config.artefact_strength) * scanner.artefact_scale; each
    effect at s * U(0.7, 1) of its range (so s = 0 is clean and s = 1 is the strong end)."""
    strength = float(rng.uniform(*config.artefact_strength)) * scanner.artefact_scale

    def scaled(lo: float, hi: float) -> float:
        return lo + (hi - lo) * strength * float(rng.uniform(0.7, 1.0))

    truncated = rng.uniform() < P_TRUNCATED_FOV and scanner.artefact_scale > 0
    return Artefacts(
        strength=strength,
        ssp_width=scaled(1.0, 1.6),
        psf_core_mm=scaled(0.0, 0.65),
        psf_tail_mm=float(rng.uniform(2.0, 4.0)),
        psf_tail_weight=scaled(0.0, 0.05),
        bh_hu=scaled(0.0, 20.0),
        bh_length_mm=scaled(2.0, 8.0),
        cupping_hu=scaled(0.0, 8.0),
        streak_hu=scaled(0.0, 40.0),
        fov_cut_mm=float(rng.uniform(3.0, 15.0)) if truncated else 0.0,
    )


def sub_slice_count(thickness_mm: float, sub_slice_mm: float) -> int:
    """Odd number of sub-slices of at most about ``sub_slice_mm`` per slice."""
    n = max(1, math.ceil(thickness_mm / sub_slice_mm - 1e-6))
    return n if n % 2 else n + 1


def make_grid(
    rng: np.random.Generator, anat: HeadAnatomy, config: PhantomConfig, thickness_mm: float
) -> tuple[HeadAnatomy, Geometry, tuple[int, int, int]]:
    """Choose pixel spacing and slices; place the head in z so the scan covers skull base to vertex.

    The grid centre is LPS (0, 0, 0). Returns the anatomy with its final centre, the geometry and
    the shape (K, J, I).
    """
    surface = anat.to_lps(anat.outer_surface_points(1500))
    radius_xy = float(np.sqrt(surface[:, 0] ** 2 + surface[:, 1] ** 2).max()) + 4.0
    spacing = rng.uniform(*config.pixel_spacing_mm) * 512.0 / config.matrix
    spacing = max(spacing, 2.0 * radius_xy / config.matrix)  # the circular FOV must hold the head
    bottom_rel = anat.skull_base[2] - rng.uniform(3.0, 12.0)
    top_rel = float(surface[:, 2].max()) + rng.uniform(1.0, 8.0)
    k_n = config.num_slices or math.ceil((top_rel - bottom_rel) / thickness_mm)
    z0 = -(k_n - 1) / 2 * thickness_mm
    # a given slice count is centred on the head; otherwise the first slice starts below the skull base
    centre_z = -(bottom_rel + top_rel) / 2 if config.num_slices else z0 - thickness_mm / 2 - bottom_rel
    anat = replace(anat, centre_lps=(anat.centre_lps[0], anat.centre_lps[1], float(centre_z)))
    half = -(config.matrix - 1) / 2 * spacing
    geometry = Geometry(
        spacing_mm=(float(spacing), float(spacing), float(thickness_mm)),
        origin_lps=(float(half), float(half), float(z0)),
    )
    return anat, geometry, (int(k_n), config.matrix, config.matrix)


def add_tissue_texture(
    rng: np.random.Generator,
    hu: np.ndarray,
    tissue: np.ndarray,
    lesion_index: np.ndarray,
    amplitude_by_tissue: tuple[float, ...],
) -> None:
    """Add a smooth field in [-1, 1] (about 8 mm grain in-plane) times each tissue's amplitude, in place.

    Blood voxels (``lesion_index`` > 0) keep their own texture.
    """
    k_n, j_n, i_n = hu.shape
    coarse = rng.uniform(-1.0, 1.0, size=(k_n, max(j_n // 16, 2), max(i_n // 16, 2))).astype(np.float32)
    field = ndimage.zoom(
        coarse, (1.0, j_n / coarse.shape[1], i_n / coarse.shape[2]), order=1, grid_mode=True, mode="nearest"
    )
    amp = np.asarray(amplitude_by_tissue, dtype=np.float32)[tissue]
    amp[lesion_index > 0] = 0.0
    hu += amp * field[:, :j_n, :i_n]


def _skull_distance_mm(hu: np.ndarray, spacing_mm: float) -> np.ndarray:
    """In-plane distance (mm) from each voxel to the nearest bone (> ``BONE_HU``) of its slice; float32
    (K, J, I), 1000 on slices without bone. Computed on pixels of about 1 mm (bone max-pooled)."""
    k_n, j_n, i_n = hu.shape
    f = max(1, int(1.0 // spacing_mm))
    bone = hu[:, : j_n // f * f, : i_n // f * f] > BONE_HU
    bone = bone.reshape(k_n, j_n // f, f, i_n // f, f).any(axis=(2, 4))
    if not bone.any():
        return np.full(hu.shape, 1000.0, dtype=np.float32)
    d = ndimage.distance_transform_edt(~bone, sampling=(1e4, f * spacing_mm, f * spacing_mm))
    d = np.minimum(d, 1000.0).astype(np.float32).repeat(f, axis=1).repeat(f, axis=2)
    return np.pad(d, ((0, 0), (0, j_n - d.shape[1]), (0, i_n - d.shape[2])), mode="edge")


def _line_profile(
    jj: np.ndarray, ii: np.ndarray, point: np.ndarray, angle: float, width: float
) -> np.ndarray:
    """exp(-(d / width)^2 / 2) of the distance d (pixels) of each (jj, ii) to the line through ``point``."""
    d = (jj - point[0]) * np.cos(angle) - (ii - point[1]) * np.sin(angle)
    return np.exp(-0.5 * (d / width) ** 2).astype(np.float32)


def _skull_base_streaks(rng: np.random.Generator, hu: np.ndarray, spacing_mm: float, amplitude: float) -> np.ndarray:
    """Streaks (float32 HU, K, J, I) on the lowest slices with much dense bone (petrous region): a dark
    band along the line joining the dense bone left and right of the midline, and a few dark or bright
    streaks through dense bone at random angles."""
    out = np.zeros(hu.shape, dtype=np.float32)
    dense = hu > DENSE_BONE_HU
    lowest = max(1, hu.shape[0] // 3)
    count = dense[:lowest].sum(axis=(1, 2))
    if amplitude <= 0 or count.max() < 20:
        return out
    jj, ii = np.ogrid[: hu.shape[1], : hu.shape[2]]
    mid = (hu.shape[2] - 1) / 2
    for k in np.flatnonzero(count > 0.5 * count.max()):
        pts = np.argwhere(dense[k])
        left, right = pts[pts[:, 1] < mid], pts[pts[:, 1] >= mid]
        a = amplitude * float(rng.uniform(0.5, 1.0))
        if left.size and right.size:
            c0, c1 = left.mean(axis=0), right.mean(axis=0)
            angle = float(np.arctan2(c1[0] - c0[0], c1[1] - c0[1]))
            out[k] -= a * _line_profile(jj, ii, c0, angle, rng.uniform(1.5, 3.0) / spacing_mm)
        for _ in range(int(rng.integers(2, 5))):
            point = pts[rng.integers(len(pts))].astype(float)
            sign = 1.0 if rng.uniform() < 0.5 else -1.0
            width = rng.uniform(1.0, 2.5) / spacing_mm
            out[k] += sign * a * rng.uniform(0.3, 0.8) * _line_profile(jj, ii, point, rng.uniform(0, np.pi), width)
    return out


def apply_beam_hardening(
    rng: np.random.Generator, hu: np.ndarray, tissue: np.ndarray, spacing_mm: float, artefacts: Artefacts
) -> None:
    """Add beam hardening near the skull, cupping and skull-base streaks to intracranial voxels, in place.

    ``hu`` and ``tissue`` (K, J, I); distances are measured in-plane on the rendered ``hu``. Labels are
    never touched: blood HU near the skull get the same boost as any intracranial voxel.
    """
    if artefacts.bh_hu <= 0 and artefacts.cupping_hu <= 0 and artefacts.streak_hu <= 0:
        return
    d = _skull_distance_mm(hu, spacing_mm)
    boost = np.float32(artefacts.bh_hu) * np.exp(-d / np.float32(max(artefacts.bh_length_mm, 1e-3)))
    boost += np.float32(artefacts.cupping_hu) * (1.0 - np.minimum(d / np.float32(40.0), 1.0)) ** 2
    boost += _skull_base_streaks(rng, hu, spacing_mm, artefacts.streak_hu)
    inside = np.isin(tissue, INTRACRANIAL)
    hu[inside] += boost[inside]


def _point_spread(hu: np.ndarray, scanner: ScannerProfile, spacing_mm: float, artefacts: Artefacts) -> np.ndarray:
    """In-plane blur: a gaussian core (scanner blur + drawn extra) plus the drawn wide low-weight tail."""
    core_mm = scanner.inplane_blur_mm + artefacts.psf_core_mm
    out = hu
    if core_mm > 0:
        out = ndimage.gaussian_filter(hu, sigma=(0.0, *(2 * [core_mm / spacing_mm])), truncate=3.0)
    if artefacts.psf_tail_weight > 0:
        tail = ndimage.gaussian_filter(hu, sigma=(0.0, *(2 * [artefacts.psf_tail_mm / spacing_mm])), truncate=2.5)
        w = np.float32(artefacts.psf_tail_weight)
        out = (1 - w) * out + w * tail
    return out


def _fov_radius(hu: np.ndarray, spacing_mm: float, artefacts: Artefacts) -> float:
    """Radius (pixels) of the circular field of view: the matrix's, or ``fov_cut_mm`` inside the head."""
    j_n, i_n = hu.shape[1:]
    radius = min(j_n, i_n) / 2
    if artefacts.fov_cut_mm > 0:
        head = np.argwhere((hu > -500).any(axis=0))
        if head.size:
            r_head = float(np.sqrt(((head - [(j_n - 1) / 2, (i_n - 1) / 2]) ** 2).sum(axis=1)).max())
            radius = min(radius, r_head - artefacts.fov_cut_mm / spacing_mm)
    return radius


def apply_scanner(
    rng: np.random.Generator,
    hu: np.ndarray,
    scanner: ScannerProfile,
    spacing_mm: float,
    artefacts: Artefacts = Artefacts(),  # noqa: B008 (frozen, immutable)
) -> np.ndarray:
    """Point spread, correlated noise, calibration offset, circular FOV padding; float32 (K, J, I)."""
    radius = _fov_radius(hu, spacing_mm, artefacts)
    out = _point_spread(hu, scanner, spacing_mm, artefacts)
    if scanner.noise_std_hu > 0:
        noise = rng.standard_normal(size=out.shape, dtype=np.float32)
        noise = ndimage.gaussian_filter(noise, sigma=(0.0, 0.6, 0.6), truncate=3.0)
        noise *= np.float32(scanner.noise_std_hu / max(float(noise[0].std()), 1e-6))
        out = out + noise
    out = out + np.float32(scanner.hu_offset)
    j_n, i_n = out.shape[1:]
    jj, ii = np.ogrid[:j_n, :i_n]
    outside = (jj - (j_n - 1) / 2) ** 2 + (ii - (i_n - 1) / 2) ** 2 > radius**2
    out[:, outside] = np.float32(scanner.padding_hu)
    return np.clip(out, -1024.0, 3071.0).astype(np.float32, copy=False)
