"""Settings of an interactive refinement session (frozen; every value is a plain number)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..errors import SSSSegError


@dataclass(frozen=True)
class InteractiveConfig:
    """How clicks become masks, how far masks propagate, what the session keeps.

    cache_slices: most slice embeddings kept; the ones farthest from the slice last worked on go first.
    encode_batch: slices encoded at once when propagation reaches uncached slices.
    mask_threshold: decoder probability above which a pixel joins the mask.
    click_box_mm: side of the box put around a lone click (no box given, no coarse component under it).
    coarse_fg_threshold: the coarse head's bleed probability (1 - P(background)) that makes the
        component under a click; its bounding box becomes the click's box.
    max_click_box_mm: a coarse component wider than this is not used as the click's box.
    box_pad_px: slice pixels added around a mask's bounding box when it becomes a box prompt.
    box_margin_px: a decoder mask may not reach further than this outside its box (as ``refine``).
    max_negatives: other classes' segments given to the decoder as negative points, per prompt.
    propagate: carry a new mask to the neighbouring slices until the lesion ends.
    max_propagation_slices: at most this many slices on each side of the clicked one.
    min_area_mm2: a propagated mask smaller than this ends the lesion.
    min_area_ratio: so does one smaller than this share of the previous slice's mask.
    coarse_union: join the coarse head's bleed pixels (``coarse_fg_threshold``) inside the box to
        the decoder's mask (the decoder alone misses lesions it was not trained well on).
    blood_hu: (low, high) mean HU a propagated mask must have to count as blood (acute blood is
        about 40-100 HU), measured without bone; outside it the lesion has ended.
    bone_hu: pixels denser than this are bone or calcification: never part of a mask.
    undo_depth: interactions that can be undone.
    negative_redecode: a negative click on a segment (not the object being drawn) first asks the
        decoder which part of the segment to keep (``edits.separate_region``); the whole segment
        under it is removed only when the decoder keeps nothing.
    """

    cache_slices: int = 64
    encode_batch: int = 4
    mask_threshold: float = 0.5
    click_box_mm: float = 24.0
    coarse_fg_threshold: float = 0.5
    max_click_box_mm: float = 90.0
    box_pad_px: int = 2
    box_margin_px: int = 8
    max_negatives: int = 4
    propagate: bool = True
    max_propagation_slices: int = 40
    min_area_mm2: float = 4.0
    min_area_ratio: float = 0.2
    coarse_union: bool = True
    blood_hu: tuple[float, float] = (35.0, 110.0)
    bone_hu: float = 200.0
    undo_depth: int = 30
    negative_redecode: bool = True

    def __post_init__(self) -> None:
        if self.cache_slices < 1 or self.encode_batch < 1 or self.undo_depth < 1:
            raise SSSSegError("cache_slices, encode_batch and undo_depth must be at least 1")
        if not 0.0 < self.mask_threshold < 1.0 or not 0.0 < self.coarse_fg_threshold < 1.0:
            raise SSSSegError("mask_threshold and coarse_fg_threshold must lie strictly between 0 and 1")
        if self.click_box_mm <= 0 or self.max_click_box_mm <= 0 or self.min_area_mm2 < 0:
            raise SSSSegError("click_box_mm and max_click_box_mm must be positive, min_area_mm2 >= 0")
        if not self.blood_hu[0] < self.blood_hu[1] < self.bone_hu:
            raise SSSSegError(f"blood_hu must be (low, high) with low < high < bone_hu, got {self.blood_hu}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> InteractiveConfig:
        """Build from a plain mapping (e.g. ``yaml.safe_load``); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SSSSegError(f"unknown interactive setting(s): {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(known))}")
        args = dict(values)
        if "blood_hu" in args:
            args["blood_hu"] = tuple(float(v) for v in args["blood_hu"])
        return cls(**args)
