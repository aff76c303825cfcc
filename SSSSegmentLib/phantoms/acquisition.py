"""Scan grid and scanner effects: field of view, tissue texture, in-plane blur, noise, calibration.

Arrays are (K, J, I) float32 HU on an axial grid (LPS, identity direction).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from scipy import ndimage

from ..volumes.geometry import Geometry
from .anatomy import HeadAnatomy
from .config import PhantomConfig, ScannerProfile


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


def apply_scanner(rng: np.random.Generator, hu: np.ndarray, scanner: ScannerProfile, spacing_mm: float) -> np.ndarray:
    """In-plane blur, correlated noise, calibration offset, circular FOV padding; float32 (K, J, I)."""
    out = hu
    if scanner.inplane_blur_mm > 0:
        out = ndimage.gaussian_filter(out, sigma=(0.0, *(2 * [scanner.inplane_blur_mm / spacing_mm])), truncate=3.0)
    if scanner.noise_std_hu > 0:
        noise = rng.standard_normal(size=out.shape, dtype=np.float32)
        noise = ndimage.gaussian_filter(noise, sigma=(0.0, 0.6, 0.6), truncate=3.0)
        noise *= np.float32(scanner.noise_std_hu / max(float(noise[0].std()), 1e-6))
        out = out + noise
    out = out + np.float32(scanner.hu_offset)
    j_n, i_n = out.shape[1:]
    jj, ii = np.ogrid[:j_n, :i_n]
    outside = (jj - (j_n - 1) / 2) ** 2 + (ii - (i_n - 1) / 2) ** 2 > (min(j_n, i_n) / 2) ** 2
    out[:, outside] = np.float32(scanner.padding_hu)
    return np.clip(out, -1024.0, 3071.0).astype(np.float32, copy=False)
