"""Where the intracranial cavity is known, and the weaker test on the slices where it is not.

A slice's cavity is *known* (``CavityMap.closed_k``) when its skull ring encloses it (``anatomy``:
with the in-plane closings, the image edge of a cut field of view, or borrowed from closed
neighbours), when the slice holds no skull, or when it *continues* a known slice next to it: its
cavity holds at least ``continued_area_ratio`` of that neighbour's (the skull base and the vertex,
where the ring leaks through foramina and air cells and the cavity shrinks slice by slice, but does
not vanish from one slice to the next as it does under a missing bone flap). A slice whose ring
closed is still not known when the cavity it encloses was cut off from the cavity's largest piece by
slices whose ring is open (the vertex above a missing flap or an open burr hole; ``anatomy``).

On every other slice the intracranial rule abstains from "outside the skull" and reads
``CavityMap.fallback`` instead: inside the head's outer contour, at least ``fallback_scalp_margin_mm``
from the scalp (``head_contour.fallback_region``), and within ``fallback_reach_mm`` of the in-plane
convex hull of the nearest known slice's cavity (the cavity's outline does not jump between slices),
plus whatever cavity the slice has. Arrays are ``[k, j, i]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from SSSSegmentLib.prompts.anatomy import CavityConfig, cavity_and_closed, spacing_zyx
from SSSSegmentLib.prompts.head_contour import fallback_region
from SSSSegmentLib.volumes.geometry import Geometry


@dataclass(frozen=True, eq=False)
class CavityMap:
    """The cavity and where it is known (see the module docstring).

    ``mask``: bool (K, J, I), the intracranial cavity. ``closed_k``: bool (K,), slices whose cavity is
    known. ``fallback``: bool (K, J, I), on the other slices the weaker region, False on known slices.
    ``scalp_margin_mm``: the margin that region keeps from the head's outer contour.
    """

    mask: np.ndarray
    closed_k: np.ndarray
    fallback: np.ndarray
    scalp_margin_mm: float

    def effective(self) -> np.ndarray:
        """Bool (K, J, I): the cavity where it is known, the cavity or the fallback region elsewhere."""
        return self.mask | self.fallback

    def open_runs(self) -> list[tuple[int, int]]:
        """Runs (first, last) of consecutive slices whose cavity is not known, in order."""
        ks = np.flatnonzero(~self.closed_k)
        if not ks.size:
            return []
        breaks = np.flatnonzero(np.diff(ks) > 1)
        starts, ends = np.r_[0, breaks + 1], np.r_[breaks, ks.size - 1]
        return [(int(ks[a]), int(ks[b])) for a, b in zip(starts, ends, strict=True)]

    def note(self) -> str | None:
        """One log line when some slices' cavity is not known, else None."""
        runs = self.open_runs()
        if not runs:
            return None
        where = ", ".join(f"{a}-{b}" for a, b in runs)
        return (f"skull ring not closed on {np.count_nonzero(~self.closed_k)} of {self.closed_k.size} slice(s) "
                f"(slices {where}): the intracranial rule abstains there and falls back to inside the head's "
                f"outer contour, >= {self.scalp_margin_mm} mm from the scalp")


def continued_slices(area_k: np.ndarray, closed_k: np.ndarray, ratio: float) -> np.ndarray:
    """Bool (K,): ``closed_k`` grown slice by slice, up and down, to each slice whose cavity area
    ``area_k`` is positive and at least ``ratio`` times that of its known neighbour."""
    known = closed_k.copy()
    for order in (range(1, known.size), range(known.size - 2, -1, -1)):
        for k in order:
            nb = k - 1 if order.step == 1 else k + 1
            if not known[k] and known[nb] and area_k[k] > 0 and area_k[k] >= ratio * area_k[nb]:
                known[k] = True
    return known


def _reach(cavity_ji: np.ndarray, reach_mm: float, spacing_ji: tuple[float, float]) -> np.ndarray:
    """Bool (J, I): within ``reach_mm`` of the convex hull of a slice's cavity (all False when empty)."""
    if not cavity_ji.any():
        return np.zeros(cavity_ji.shape, dtype=bool)
    from skimage.morphology import convex_hull_image  # only for slices whose ring is open

    hull = convex_hull_image(cavity_ji)
    return ndimage.distance_transform_edt(~hull, sampling=spacing_ji) <= reach_mm


def cavity_map(hu_zyx: np.ndarray, geometry: Geometry, cfg: CavityConfig | None = None) -> CavityMap:
    """``CavityMap`` of a CT (K, J, I) in HU on ``geometry``."""
    cfg = cfg or CavityConfig()
    cavity, closed_k, body = cavity_and_closed(hu_zyx, geometry, cfg)
    known = continued_slices(np.count_nonzero(cavity, axis=(1, 2)), closed_k, cfg.continued_area_ratio)
    spacing_ji = spacing_zyx(geometry)[1:]
    fallback = np.zeros(hu_zyx.shape, dtype=bool)
    known_ks = np.flatnonzero(known & cavity.any(axis=(1, 2)))
    for k in np.flatnonzero(~known):
        region = fallback_region(hu_zyx[k], body[k], spacing_ji, cfg.fallback_scalp_margin_mm, cfg.bone_hu,
                                 cfg.min_content_hu)
        if known_ks.size:
            nearest = known_ks[np.argmin(np.abs(known_ks - k))]
            region &= _reach(cavity[nearest], cfg.fallback_reach_mm, spacing_ji)
        fallback[k] = region & ~cavity[k]
    return CavityMap(cavity, known, fallback, cfg.fallback_scalp_margin_mm)
