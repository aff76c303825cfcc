"""The benchmark's CT volumes: the real GE head CT, a 512x512x40 phantom, a 512x512x240 thin-slice CT.

The phantom and the thin-slice volume are written once as NRRD into a cache folder (default
``~/.cache/sssseg-bench``) and reused. The thin-slice volume is the real scan resampled along k
(linear) to 0.625 mm, as modern scanners reconstruct head CT: 240 slices or close to it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from SSSSegmentLib.volumes import read_volume, write_volume
from SSSSegmentLib.volumes.geometry import CTVolume, Geometry

REAL_SCAN = Path(__file__).resolve().parents[2] / "shared" / "data" / "ct_head_ge_tilted"
DEFAULT_CACHE = Path.home() / ".cache" / "sssseg-bench"
THIN_MM = 0.625
PHANTOM_SLICES = 40
PHANTOM_SEED = 7


def resample_k(volume: CTVolume, spacing_k_mm: float) -> CTVolume:
    """``volume`` (K, J, I) linearly resampled along k to ``spacing_k_mm``, same first slice and axes."""
    sx, sy, sz = volume.geometry.spacing_mm
    k_out = int(np.floor((volume.shape_zyx[0] - 1) * sz / spacing_k_mm)) + 1
    pos = np.arange(k_out) * (spacing_k_mm / sz)
    lower = np.minimum(np.floor(pos).astype(int), volume.shape_zyx[0] - 2)
    w = (pos - lower).astype(np.float32)[:, None, None]
    hu = (1.0 - w) * volume.hu_zyx[lower] + w * volume.hu_zyx[lower + 1]
    geometry = Geometry((sx, sy, spacing_k_mm), volume.geometry.origin_lps, volume.geometry.direction)
    return CTVolume(hu.astype(np.float32), geometry, source=f"{volume.source} at {spacing_k_mm} mm")


def phantom_volume() -> CTVolume:
    """A 512 x 512 x 40 phantom with an IPH and an SDH (seeded)."""
    from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom

    config = PhantomConfig(matrix=512, num_slices=PHANTOM_SLICES, lesion_keys=("IPH", "SDH"))
    phantom = generate_phantom(PHANTOM_SEED, config)
    return CTVolume(phantom.hu_zyx.astype(np.float32), phantom.geometry, source="phantom")


def prepare_inputs(cache: Path = DEFAULT_CACHE, real_scan: Path = REAL_SCAN) -> dict[str, Path]:
    """{volume name: path}: the real scan (when present), the phantom and the thin-slice volume."""
    cache.mkdir(parents=True, exist_ok=True)
    inputs: dict[str, Path] = {}
    if real_scan.is_dir():
        inputs["GE head CT (28 tilted slices)"] = real_scan
    phantom = cache / f"phantom_512x512x{PHANTOM_SLICES}.nrrd"
    if not phantom.is_file():
        write_volume(phantom, phantom_volume())
    inputs[f"phantom 512x512x{PHANTOM_SLICES}"] = phantom
    if real_scan.is_dir():
        thin = cache / "ge_thin_0.625mm.nrrd"
        if not thin.is_file():
            write_volume(thin, resample_k(read_volume(real_scan), THIN_MM))
        inputs[f"GE at {THIN_MM} mm ({read_volume(thin).shape_zyx[0]} slices)"] = thin
    return inputs
