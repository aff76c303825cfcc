"""Configuration and records of lesion insertion (``insertion``): what to insert, the prepared
background, the rendered and the inserted lesion. Arrays are ``[k, j, i]``; points LPS mm."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import InputError
from ..prompts.anatomy import CavityConfig
from ..volumes.geometry import Geometry

Range = tuple[float, float]
Crop = tuple[slice, slice, slice]


@dataclass(frozen=True)
class InsertionConfig:
    """What to insert and how. Ranges are (low, high); a range with low == high fixes the value."""

    blood_hu: Range = (50.0, 90.0)  # acute blood, mean per lesion (texture stays inside)
    texture_hu: float = 4.0  # amplitude of the smooth clot texture
    texture_grain_mm: float = 4.0
    bone_hu: float = 200.0  # voxels at or above are never replaced
    sub_slices: int = 5  # occupancy samples across one slice thickness
    smooth_mm: float = 1.0  # in-plane gaussian sigma of the HU copy used for CSF / parenchyma
    parenchyma_hu: Range = (25.0, 40.0)
    csf_hu: Range = (-10.0, 20.0)  # CSF density (0-20 HU; the low end leaves room for noise), see csf_max_hu
    edh_thickness_mm: Range = (5.0, 30.0)
    edh_radius_mm: Range = (15.0, 50.0)
    sdh_thickness_mm: Range = (3.0, 20.0)
    sdh_length_mm: Range = (70.0, 140.0)  # full length of the footprint along the convexity
    sdh_width_mm: Range = (40.0, 80.0)
    convexity_min_z_mm: float = -20.0  # EDH/SDH centre: at most this far below the cavity centroid (LPS z)
    max_floor_cos: float = 0.3  # ... where the inward normal points up at most this much (not a floor)
    iph_volume_ml: Range = (0.5, 120.0)  # drawn log-uniform
    iph_min_depth_mm: float = 10.0
    iph_core_hu: Range = (70.0, 90.0)
    iph_rim_hu: Range = (45.0, 60.0)
    iph_irregularity: float = 0.15  # relative amplitude of the radius wobble
    iph_oedema_fraction: Range = (0.15, 0.4)  # oedema ring width / clot radius (2-12 mm)
    iph_oedema_drop_hu: Range = (4.0, 12.0)
    ivh_min_depth_mm: float = 20.0
    ivh_fill_fraction: Range = (0.2, 0.7)  # share of the ventricle below the fluid level
    sah_depth_mm: Range = (3.0, 15.0)
    sah_patch_radius_mm: Range = (15.0, 40.0)
    max_lesions: int = 3  # random cases: 1..max_lesions different classes
    min_placed_fraction: float = 0.4  # a try is kept when this share of the drawn volume got in
    min_lesion_ml: float = 0.05
    max_tries: int = 30
    cavity: CavityConfig = field(default_factory=CavityConfig)

    def __post_init__(self) -> None:
        if self.sub_slices < 1 or self.max_tries < 1 or self.max_lesions < 1:
            raise InputError("InsertionConfig: sub_slices, max_tries and max_lesions must be >= 1")
        ranges = {k: v for k, v in asdict(self).items() if isinstance(v, tuple) and len(v) == 2}
        bad = [k for k, (lo, hi) in ranges.items() if k != "cavity" and not lo <= hi]
        if bad:
            raise InputError(f"InsertionConfig: ranges must be (low, high): {', '.join(bad)}")


@dataclass(frozen=True)
class NoiseModel:
    """Image noise of a scan: std (HU) and in-plane grain (gaussian sigma, pixels, of filtered white noise)."""

    std_hu: float
    grain_px: float


@dataclass(frozen=True)
class Background:
    """A bleed-free head CT prepared for insertion. Arrays (K, J, I) on the scan grid.

    ``depth_mm``: distance below the inner table (0 outside the cavity); ``smooth_hu``: in-plane
    smoothed HU; ``ventricles``: int32 labels of the deep CSF spaces (>= ``ivh_min_depth_mm``, >= 0.5 mL);
    ``convexity_kji``: (n, 3) indices of cavity voxels at the inner table of the calvaria;
    ``brain_hu`` / ``csf_hu``: typical parenchyma and CSF HU of this scan; ``csf_max_hu``: the CSF-density
    bound used here, ``min(config.csf_hu[1], (csf_hu + brain_hu) / 2)`` (a voxel more CSF than tissue; dark
    white matter stays out); ``centre_lps``: centroid of the cavity (LPS mm).
    """

    hu_zyx: np.ndarray
    geometry: Geometry
    cavity: np.ndarray
    depth_mm: np.ndarray
    smooth_hu: np.ndarray
    ventricles: np.ndarray
    convexity_kji: np.ndarray
    noise: NoiseModel
    brain_hu: float
    csf_hu: float
    csf_max_hu: float
    centre_lps: tuple[float, float, float]
    source: str = ""


@dataclass(frozen=True)
class InsertedLesion:
    """One inserted lesion: class key, centre (LPS mm), labelled volume (f > 0.5) and occupancy volume (mL),
    mean blood HU drawn, and the drawn size parameters (mm / mL)."""

    key: str
    centre_lps: tuple[float, float, float]
    volume_ml: float
    occupancy_ml: float
    blood_hu: float
    size: dict[str, float]


@dataclass(frozen=True)
class InsertionResult:
    """``hu_zyx`` float32 (K, J, I) with the lesions; ``labels_zyx`` uint8 BHSD labels; one record per lesion."""

    hu_zyx: np.ndarray
    labels_zyx: np.ndarray
    lesions: tuple[InsertedLesion, ...]
    noise: NoiseModel


@dataclass(frozen=True)
class _Rendered:
    """One lesion on a crop of the grid: occupancy, blood HU and optional oedema weight, all crop-shaped."""

    crop: Crop
    occupancy: np.ndarray
    blood_hu: np.ndarray
    centre_lps: np.ndarray
    size: dict[str, float]
    expected_ml: float = 0.0  # drawn volume (0: none, then min_lesion_ml applies)
    oedema: np.ndarray | None = None
    oedema_drop_hu: float = 0.0
