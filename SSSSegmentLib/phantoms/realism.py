"""Realism check of phantoms: HU by distance from the skull's inner table (docs/phantoms.md).

Real thick-slice head CT shows a blood-density rim (50-90 HU) inside the skull, 1-4 mm from bone, that
is not blood. ``band_profile`` measures it on any volume: the share of intracranial voxels at blood
density and their median HU in distance bands from bone (> 300 HU), leaving out voxels near a label.
Arrays are indexed [k, j, i] (z, y, x; LPS); spacings are (z, y, x) in mm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..fsutil import atomic_path
from .config import Phantom

BONE_HU = 300.0
BAND_HU = (50.0, 90.0)  # acute blood density, as measured on real scans (docs/phantoms.md)
BANDS_MM: tuple[tuple[float, float], ...] = ((0.0, 1.5), (1.5, 2.5), (2.5, 4.0), (4.0, 8.0), (8.0, math.inf))
LABEL_MARGIN_VOXELS = 3
CAVITY_MARGIN_MM = 1.0  # closer voxels mix with bone on any scan
REPORT_NAME = "realism.md"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
REFERENCE_SCAN = Path("..") / "shared" / "data" / "ct_head_ge_tilted"  # relative to PROJECT_ROOT


@dataclass(frozen=True)
class BandProfile:
    """Per band of ``BANDS_MM``: share of intracranial voxels at blood density (None: no voxel), their
    median HU (None: no voxel) and the voxel count."""

    name: str
    blood_share: tuple[float | None, ...]
    median_hu: tuple[float | None, ...]
    voxels: tuple[int, ...]


def _in_plane(size: int) -> np.ndarray:
    """A (1, size, size) structuring element: operations act per axial slice."""
    return np.ones((1, size, size), dtype=bool)


def inside_skull(bone_zyx: np.ndarray) -> np.ndarray:
    """Bool (K, J, I): per axial slice, the skull closed (5x5 square, twice) and hole-filled."""
    closed = ndimage.binary_closing(bone_zyx, structure=_in_plane(5), iterations=2)
    cross = np.zeros((3, 3, 3), dtype=bool)
    cross[1] = ndimage.generate_binary_structure(2, 1)
    return ndimage.binary_fill_holes(closed, structure=cross)


def _bone_box(bone_zyx: np.ndarray, margin: int = 6) -> tuple[slice, ...]:
    """The bounding box of the bone voxels, ``margin`` voxels wider in-plane (the whole array without bone)."""
    found = ndimage.find_objects(bone_zyx.astype(np.uint8))
    if not found:
        return tuple(slice(0, n) for n in bone_zyx.shape)
    z, y, x = found[0]
    return z, *(slice(max(s.start - margin, 0), s.stop + margin) for s in (y, x))


def band_profile(
    hu_zyx: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    labels_zyx: np.ndarray | None = None,
    name: str = "",
) -> BandProfile:
    """The band profile of one CT volume ``hu_zyx`` (K, J, I) with voxel ``spacing_zyx`` (mm).

    Distances are 3D Euclidean (mm) to the nearest bone voxel (> ``BONE_HU``). Intracranial voxels are
    inside the skull (``inside_skull``) and more than ``CAVITY_MARGIN_MM`` from bone; voxels within
    ``LABEL_MARGIN_VOXELS`` (city-block) of a label > 0 in ``labels_zyx`` are left out.
    """
    box = _bone_box(hu_zyx > BONE_HU)
    hu = hu_zyx[box]
    bone = hu > BONE_HU
    distance = ndimage.distance_transform_edt(~bone, sampling=spacing_zyx)
    cavity = inside_skull(bone) & (distance > CAVITY_MARGIN_MM)
    if labels_zyx is not None and labels_zyx[box].any():
        near = ndimage.binary_dilation(
            labels_zyx[box] > 0, structure=ndimage.generate_binary_structure(3, 1), iterations=LABEL_MARGIN_VOXELS
        )
        cavity &= ~near
    values, dist = hu[cavity], distance[cavity]
    lo_hu, hi_hu = BAND_HU
    shares, medians, counts = [], [], []
    for lo, hi in BANDS_MM:
        v = values[(dist > lo) & (dist <= hi)]
        counts.append(int(v.size))
        shares.append(float(((v > lo_hu) & (v < hi_hu)).mean()) if v.size else None)
        medians.append(float(np.median(v)) if v.size else None)
    return BandProfile(name, tuple(shares), tuple(medians), tuple(counts))


def summarise(profiles: Sequence[BandProfile], name: str) -> tuple[BandProfile, BandProfile, BandProfile]:
    """Min, median and max over ``profiles`` of each band's share and median HU (taken separately)."""
    out = []
    for label, reduce in (("min", np.min), ("median", np.median), ("max", np.max)):
        shares, medians = [], []
        for b in range(len(BANDS_MM)):
            s = [p.blood_share[b] for p in profiles if p.blood_share[b] is not None]
            m = [p.median_hu[b] for p in profiles if p.median_hu[b] is not None]
            shares.append(float(reduce(s)) if s else None)
            medians.append(float(reduce(m)) if m else None)
        counts = tuple(int(sum(p.voxels[b] for p in profiles)) for b in range(len(BANDS_MM)))
        out.append(BandProfile(f"{name} {label}", tuple(shares), tuple(medians), counts))
    return out[0], out[1], out[2]


def _band_name(lo: float, hi: float) -> str:
    return f"> {lo:g} mm" if math.isinf(hi) else f"{lo:g}-{hi:g} mm"


def format_band_table(profiles: Sequence[BandProfile]) -> str:
    """A markdown table: one row per profile, cells 'share% (median HU)' per band ('-' when empty)."""
    lines = [
        "| volume | " + " | ".join(_band_name(lo, hi) for lo, hi in BANDS_MM) + " |",
        "|---" * (len(BANDS_MM) + 1) + "|",
    ]
    for p in profiles:
        pairs = zip(p.blood_share, p.median_hu, strict=True)
        cells = ["-" if s is None else f"{100 * s:.0f}% ({m:.0f} HU)" for s, m in pairs]
        lines.append(f"| {p.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reference_scan_path(root: Path = PROJECT_ROOT) -> Path:
    """Where the real reference scan (GE, DICOM folder) is expected, relative to the project root."""
    return (root / REFERENCE_SCAN).resolve()


def reference_profile(root: Path = PROJECT_ROOT) -> BandProfile | None:
    """The band profile of the real reference scan (gantry tilt resampled), or None when it is absent."""
    from ..volumes.io import read_volume

    path = reference_scan_path(root)
    if not path.is_dir():
        return None
    volume = read_volume(path)
    return band_profile(volume.hu_zyx, volume.geometry.spacing_mm[::-1], name=f"real scan ({path.name})")


def realism_report(profiles: Sequence[BandProfile], reference: BandProfile | None, reference_path: Path) -> str:
    """Markdown report: the generated set's min / median / max per band beside the real scan, then each case."""
    lo, hi = BAND_HU
    parts = [
        "# Phantom realism: HU by distance from the skull",
        "",
        f"Share of intracranial voxels at {lo:g}-{hi:g} HU (and their median HU) by distance from bone "
        f"(> {BONE_HU:g} HU), leaving out voxels within {LABEL_MARGIN_VOXELS} voxels of a label. "
        "The first band holds voxels 1-1.5 mm from bone (closer ones are left out).",
        "",
        "Why it matters: real thick-slice head CT shows a band of blood density 1-4 mm inside the skull that "
        "is not blood (the bone's point spread, the slice profile reaching the skull above and below, beam "
        "hardening). A model trained on phantoms without that band calls it epidural or subdural blood, so "
        "the phantoms' range should cover the real scan's.",
        "",
    ]
    rows = list(summarise(profiles, f"phantoms ({len(profiles)} cases)")) if profiles else []
    if reference is not None:
        rows.append(reference)
    else:
        parts += [f"Real reference scan not found at {reference_path}: no comparison.", ""]
    parts += [format_band_table(rows), "", "## Cases", "", format_band_table(profiles), ""]
    return "\n".join(parts)


def phantom_profile(phantom: Phantom, name: str) -> BandProfile:
    """The band profile of a generated phantom (its labels left out)."""
    return band_profile(phantom.hu_zyx, phantom.geometry.spacing_mm[::-1], phantom.labels_zyx, name=name)


def write_realism_report(out_dir: Path, profiles: Sequence[BandProfile], root: Path = PROJECT_ROOT) -> Path:
    """Write ``out_dir``/realism.md: ``profiles`` beside the real reference scan (when present); its path."""
    path = Path(out_dir) / REPORT_NAME
    with atomic_path(path) as tmp:
        tmp.write_text(realism_report(profiles, reference_profile(root), reference_scan_path(root)))
    return path
