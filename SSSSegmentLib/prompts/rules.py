"""Physical-constraint rules on one component: volume, blood density, inside the skull.

Each rule is a frozen config plus a pure function ``rule(view, ..., cfg) -> RuleOutcome``; the
``enabled`` flag is honoured by the caller (the generator), not by the function.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from SSSSegmentLib.classes import CLASS_BY_KEY, CLASS_BY_LABEL
from SSSSegmentLib.errors import SSSSegError
from SSSSegmentLib.prompts.components import ComponentView
from SSSSegmentLib.prompts.outcome import RuleOutcome


def check_class_keys(keys: tuple[str, ...], where: str) -> None:
    """Raise when a key is not a hemorrhage class key (EDH, IPH, IVH, SAH, SDH)."""
    unknown = [k for k in keys if k not in CLASS_BY_KEY]
    if unknown:
        raise SSSSegError(f"{where}: unknown class key(s) {unknown} (known: {sorted(CLASS_BY_KEY)})")


@dataclass(frozen=True)
class MinVolumeConfig:
    """Drop components smaller than ``min_ml``; ``per_class_min_ml`` overrides it per class key."""

    enabled: bool = True
    min_ml: float = 0.05
    per_class_min_ml: tuple[tuple[str, float], ...] = field(default=(), metadata={"class_map": True})

    def __post_init__(self) -> None:
        check_class_keys(tuple(k for k, _ in self.per_class_min_ml), "min_volume.per_class_min_ml")
        if self.min_ml < 0 or any(v < 0 for _, v in self.per_class_min_ml):
            raise SSSSegError("min_volume thresholds must be >= 0 mL")

    def min_ml_for(self, label: int) -> float:
        return dict(self.per_class_min_ml).get(CLASS_BY_LABEL[label].key, self.min_ml)


def min_volume_rule(view: ComponentView, cfg: MinVolumeConfig) -> RuleOutcome:
    """Component volume (voxel count x voxel volume from the spacing) must reach the class minimum."""
    limit, volume = cfg.min_ml_for(view.label), view.volume_ml
    verdict = ">=" if volume >= limit else "<"
    return RuleOutcome(volume >= limit, f"{volume:.3f} mL {verdict} {limit} mL")


@dataclass(frozen=True)
class BloodDensityConfig:
    """Mean HU of the component in the raw CT must lie in [min_hu, max_hu] (acute blood ~40-100 HU).

    Components of at least ``erode_min_voxels`` voxels are measured on their interior (in-plane
    erosion by ``erode_px`` pixels, slices are thick so k is not eroded) to limit partial-volume
    mixing with brain, CSF or bone at the rim; when the interior is empty the whole component is used.

    ``exclude_voxels_above_hu``: a voxel denser than this is bone or calcification, never blood, so
    it is removed from the candidates before components are formed (None keeps every voxel). The
    coarse head works on cells of several mm, so an EDH/SDH mask along the inner table otherwise
    takes in skull voxels, whose ~1000 HU would push the component's mean far above ``max_hu``.
    """

    enabled: bool = True
    min_hu: float = 40.0
    max_hu: float = 100.0
    erode_min_voxels: int = 500
    erode_px: int = 1
    exclude_voxels_above_hu: float | None = 200.0

    def __post_init__(self) -> None:
        if self.min_hu > self.max_hu:
            raise SSSSegError(f"blood_density.min_hu {self.min_hu} exceeds max_hu {self.max_hu}")
        if self.exclude_voxels_above_hu is not None and self.exclude_voxels_above_hu <= self.max_hu:
            raise SSSSegError("blood_density.exclude_voxels_above_hu must exceed max_hu (or be null)")


def measured_voxels(view: ComponentView, cfg: BloodDensityConfig) -> np.ndarray:
    """Bool mask over the view's crop of the voxels whose HU the density rule averages."""
    if view.n_voxels < cfg.erode_min_voxels or cfg.erode_px <= 0:
        return view.mask
    cross = ndimage.generate_binary_structure(2, 1)[None]
    interior = ndimage.binary_erosion(view.mask, structure=cross, iterations=cfg.erode_px)
    return interior if interior.any() else view.mask


def blood_density_rule(view: ComponentView, cfg: BloodDensityConfig) -> RuleOutcome:
    """Mean raw HU over the component (its interior when large) within the configured range."""
    measured = measured_voxels(view, cfg)
    mean_hu = float(view.hu[measured].mean())
    where = "interior" if measured is not view.mask else "all voxels"
    ok = cfg.min_hu <= mean_hu <= cfg.max_hu
    relation = "within" if ok else "outside"
    return RuleOutcome(ok, f"mean {mean_hu:.1f} HU ({where}) {relation} [{cfg.min_hu}, {cfg.max_hu}] HU")


@dataclass(frozen=True)
class IntracranialConfig:
    """At least ``min_inside_fraction`` of the voxels must lie in the intracranial cavity.

    With ``skip_without_skull`` the rule passes (saying so) when the scan shows no skull at all
    (e.g. a skull-stripped volume), instead of dropping everything.
    """

    enabled: bool = True
    min_inside_fraction: float = 0.9
    skip_without_skull: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_inside_fraction <= 1.0:
            raise SSSSegError("intracranial.min_inside_fraction must be in [0, 1]")


def intracranial_rule(
    view: ComponentView,
    cavity_crop: np.ndarray,
    skull_found: bool,
    cfg: IntracranialConfig,
    open_slices: np.ndarray | None = None,
) -> RuleOutcome:
    """``cavity_crop``: bool cavity over the view's crop (on slices whose skull ring was not closed, the
    weaker fallback region: inside the head, away from the scalp); ``skull_found``: the cavity is not
    empty; ``open_slices``: bool over the crop's slices, True where the ring was not closed (None: all
    closed). Voxels on open slices are judged by the fallback region only, and the reason says so.
    """
    if not skull_found and cfg.skip_without_skull:
        return RuleOutcome(True, "no skull found in the scan; intracranial rule skipped")
    inside = float(np.count_nonzero(cavity_crop & view.mask)) / max(view.n_voxels, 1)
    ok = inside >= cfg.min_inside_fraction
    relation = ">=" if ok else "<"
    on_open = 0 if open_slices is None else int(np.count_nonzero(view.mask[open_slices]))
    if not on_open:
        return RuleOutcome(ok, f"{inside:.0%} of voxels inside the skull ({relation} {cfg.min_inside_fraction:.0%})")
    limit = f"({relation} {cfg.min_inside_fraction:.0%})"
    if on_open == view.n_voxels:
        return RuleOutcome(ok, f"{inside:.0%} of voxels inside the head away from the scalp {limit}; all on slices "
                               "whose skull ring was not closed (no skull test there)")
    return RuleOutcome(ok, f"{inside:.0%} of voxels inside the skull or, for the {on_open / view.n_voxels:.0%} on "
                           f"slices whose skull ring was not closed, inside the head away from the scalp {limit}")
