"""Class location priors, from the distance of each voxel to the inner table of the skull.

* EDH and SDH (``extra_axial_classes``) lie along the inner table: their closest voxel is within
  ``extra_axial_max_min_mm`` of it and their median voxel within ``extra_axial_max_median_mm``.
* IPH is parenchymal: at most ``iph_max_near_fraction`` of its voxels within ``iph_near_mm`` of
  the inner table (a lobar bleed may reach the cortex, but not lie flat against the skull).
* IVH proxy (no ventricle segmentation exists): the ventricles are deep and hold CSF, so the
  median voxel must be at least ``ivh_min_median_depth_mm`` from the inner table, and at least
  ``ivh_min_csf_fraction`` of the in-plane shell of ``ivh_csf_radius_mm`` around the component
  (inside the cavity) must have CSF density ``ivh_csf_hu`` (set the fraction to 0 to drop the CSF
  test, e.g. for casts filling whole ventricles).
* SAH: no prior beyond being intracranial.

When the scan has no skull (distances are +inf) the rule passes and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from SSSSegmentLib.classes import CLASS_BY_LABEL
from SSSSegmentLib.errors import SSSSegError
from SSSSegmentLib.prompts.anatomy import inplane_disk
from SSSSegmentLib.prompts.components import ComponentView
from SSSSegmentLib.prompts.outcome import RuleOutcome
from SSSSegmentLib.prompts.rules import check_class_keys


@dataclass(frozen=True)
class LocationPriorConfig:
    """Thresholds of the class location priors (mm, HU); see the module docstring."""

    enabled: bool = True
    extra_axial_classes: tuple[str, ...] = ("EDH", "SDH")
    extra_axial_max_min_mm: float = 3.0
    extra_axial_max_median_mm: float = 15.0
    iph_near_mm: float = 2.0
    iph_max_near_fraction: float = 0.5
    ivh_min_median_depth_mm: float = 15.0
    ivh_csf_hu: tuple[float, float] = (0.0, 20.0)
    ivh_csf_radius_mm: float = 5.0
    ivh_min_csf_fraction: float = 0.02

    def __post_init__(self) -> None:
        check_class_keys(self.extra_axial_classes, "location_prior.extra_axial_classes")
        if len(self.ivh_csf_hu) != 2 or self.ivh_csf_hu[0] > self.ivh_csf_hu[1]:
            raise SSSSegError(f"location_prior.ivh_csf_hu must be [low, high], got {list(self.ivh_csf_hu)}")
        if self.ivh_csf_radius_mm < 0:
            raise SSSSegError("location_prior.ivh_csf_radius_mm must be >= 0")


def location_prior_rule(view: ComponentView, distance_crop: np.ndarray, cfg: LocationPriorConfig) -> RuleOutcome:
    """``distance_crop``: float32 mm to the inner table over the view's crop (0 outside the cavity)."""
    distances = distance_crop[view.mask]
    if distances.size and not np.isfinite(distances).any():
        return RuleOutcome(True, "no skull found in the scan; location prior skipped")
    key = CLASS_BY_LABEL[view.label].key
    if key in cfg.extra_axial_classes:
        return _along_inner_table(key, distances, cfg)
    if key == "IPH":
        return _parenchymal(distances, cfg)
    if key == "IVH":
        return _ventricular(view, distance_crop, cfg)
    return RuleOutcome(True, f"no location prior for {key}")


def _along_inner_table(key: str, distances: np.ndarray, cfg: LocationPriorConfig) -> RuleOutcome:
    closest, median = float(distances.min()), float(np.median(distances))
    ok = closest <= cfg.extra_axial_max_min_mm and median <= cfg.extra_axial_max_median_mm
    text = (
        f"{key} nearest voxel {closest:.1f} mm (limit {cfg.extra_axial_max_min_mm}), median {median:.1f} mm "
        f"(limit {cfg.extra_axial_max_median_mm}) from the inner table"
    )
    return RuleOutcome(ok, text if ok else f"not along the skull: {text}")


def _parenchymal(distances: np.ndarray, cfg: LocationPriorConfig) -> RuleOutcome:
    near = float(np.mean(distances <= cfg.iph_near_mm))
    ok = near <= cfg.iph_max_near_fraction
    relation = "<=" if ok else ">"
    return RuleOutcome(
        ok,
        f"IPH {near:.0%} of voxels within {cfg.iph_near_mm} mm of the inner table "
        f"({relation} {cfg.iph_max_near_fraction:.0%})",
    )


def _csf_fraction(view: ComponentView, distance_crop: np.ndarray, cfg: LocationPriorConfig) -> float:
    """Fraction of CSF-density voxels in the in-plane shell around the component (inside the cavity)."""
    s_j, s_i = view.spacing_zyx[1], view.spacing_zyx[2]
    disk = inplane_disk(cfg.ivh_csf_radius_mm, (s_j, s_i))
    shell = ndimage.binary_dilation(view.mask, structure=disk) & ~view.mask & (distance_crop > 0)
    if not shell.any():
        return 0.0
    shell_hu = view.hu[shell]
    return float(np.mean((shell_hu >= cfg.ivh_csf_hu[0]) & (shell_hu <= cfg.ivh_csf_hu[1])))


def _ventricular(view: ComponentView, distance_crop: np.ndarray, cfg: LocationPriorConfig) -> RuleOutcome:
    depth = float(np.median(distance_crop[view.mask]))
    if depth < cfg.ivh_min_median_depth_mm:
        return RuleOutcome(
            False,
            f"IVH too superficial: median {depth:.1f} mm from the inner table (< {cfg.ivh_min_median_depth_mm} mm)",
        )
    if cfg.ivh_min_csf_fraction <= 0:
        return RuleOutcome(True, f"IVH deep: median {depth:.1f} mm from the inner table")
    csf = _csf_fraction(view, distance_crop, cfg)
    ok = csf >= cfg.ivh_min_csf_fraction
    relation = ">=" if ok else "<"
    return RuleOutcome(
        ok,
        f"IVH median depth {depth:.1f} mm; CSF-density neighbours {csf:.0%} "
        f"({relation} {cfg.ivh_min_csf_fraction:.0%})",
    )
