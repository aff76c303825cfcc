"""The 3D continuity rule of SSS's prompt generator, turned into a per-component decision.

Paper sketch: slide windows of N consecutive slices along k, N from S/3 to S/2 (S = slices in the
volume); in each window the continuity score is C = |largest 26-connected 3D piece| / |class
foreground in the window|; a window with C >= tau is "continuous".

How we decide per component (the paper scores whole class volumes, which would also reject a
class with two genuine lesions of similar size, e.g. bilateral SDH):

* A component spanning at least ``min_slices`` slices (default 2) is itself 3D-continuous: it
  passes. (Tiny two-slice specks are left to the volume rule.)
* A component confined to one slice passes only when the window score supports it: among all
  windows (every N, every start) that contain its slice, at least ``min_window_fraction`` must be
  continuous (C >= tau) *with this component as their largest piece*; and, since one thick slice is
  weak evidence, it must also hold at least ``single_slice_min_ml`` (a stronger volume bar than the
  general one) and ``allow_single_slice`` must be on. So one compact lesion on one 5 mm slice with
  no clutter around passes, while one-slice specks scattered over many slices fail (each window
  holds several of them, so C is small).

Window sizes: N in [ceil(S/3), floor(S/2)], each end clamped to [2, S] (N = S = 1 for a one-slice
volume). Window piece sizes come from per-slice voxel counts of the 3D components: a component's
part inside a window counts as one piece (exact unless the component leaves the slab and comes
back, which only overstates C for such rare shapes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from SSSSegmentLib.errors import SSSSegError
from SSSSegmentLib.prompts.outcome import RuleOutcome


@dataclass(frozen=True)
class ContinuityConfig:
    """Configuration of the 3D continuity rule (see the module docstring)."""

    enabled: bool = True
    tau: float = 0.8
    min_slices: int = 2
    allow_single_slice: bool = True
    single_slice_min_ml: float = 0.1
    min_window_fraction: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.tau <= 1.0 or not 0.0 <= self.min_window_fraction <= 1.0:
            raise SSSSegError("continuity.tau must be in (0, 1] and continuity.min_window_fraction in [0, 1]")
        if self.min_slices < 1:
            raise SSSSegError("continuity.min_slices must be >= 1")


def window_sizes(n_slices: int) -> range:
    """Window lengths N from ceil(S/3) to floor(S/2), clamped to [2, S] (at least one size)."""
    if n_slices < 1:
        raise SSSSegError("continuity needs a volume with at least one slice")
    low = min(max(2, math.ceil(n_slices / 3)), n_slices)
    high = min(max(2, n_slices // 2), n_slices)
    return range(low, max(high, low) + 1)


def window_support(slice_counts: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Per component and slice: (windows containing the slice, windows where it is the continuous piece).

    ``slice_counts``: int (n_components, S) voxels of each component per slice. Returns two int
    arrays of shape (n_components, S): ``total[c, k]`` = number of windows containing slice k (the
    same for every c), ``support[c, k]`` = number of those windows with C >= tau whose largest
    piece is component c.
    """
    n_comp, n_slices = slice_counts.shape
    cumulative = np.concatenate([np.zeros((n_comp, 1), np.int64), np.cumsum(slice_counts, axis=1)], axis=1)
    total = np.zeros(n_slices, np.int64)
    support = np.zeros((n_comp, n_slices), np.int64)
    for size in window_sizes(n_slices):
        pieces = cumulative[:, size:] - cumulative[:, :-size]  # (n_comp, n_windows)
        foreground = pieces.sum(axis=0)
        winner = pieces.argmax(axis=0)
        continuous = (foreground > 0) & (pieces.max(axis=0) >= tau * foreground)
        for start in range(n_slices - size + 1):
            total[start : start + size] += 1
            if continuous[start]:
                support[winner[start], start : start + size] += 1
    return np.broadcast_to(total, support.shape), support


def continuity_outcomes(slice_counts: np.ndarray, volumes_ml: np.ndarray, cfg: ContinuityConfig) -> list[RuleOutcome]:
    """The continuity decision for every component of one class volume.

    ``slice_counts``: int (n_components, S) voxels per component per volume slice; ``volumes_ml``:
    (n_components,) component volumes in mL.
    """
    if slice_counts.shape[0] == 0:
        return []
    total, support = window_support(slice_counts, cfg.tau)
    outcomes = []
    for comp, counts in enumerate(slice_counts):
        occupied = np.flatnonzero(counts)
        if occupied.size >= cfg.min_slices:
            outcomes.append(RuleOutcome(True, f"spans {occupied.size} slices (>= {cfg.min_slices})"))
            continue
        outcomes.append(
            _single_slice_outcome(
                support[comp, occupied].sum(), total[comp, occupied].sum(), float(volumes_ml[comp]), cfg
            )
        )
    return outcomes


def _single_slice_outcome(supported: int, windows: int, volume_ml: float, cfg: ContinuityConfig) -> RuleOutcome:
    if not cfg.allow_single_slice:
        return RuleOutcome(False, "confined to one slice (single-slice components not allowed)")
    fraction = supported / windows if windows else 0.0
    if fraction < cfg.min_window_fraction:
        return RuleOutcome(
            False,
            f"one slice, continuous piece in {supported}/{windows} windows "
            f"(< {cfg.min_window_fraction:.0%}, tau {cfg.tau})",
        )
    if volume_ml < cfg.single_slice_min_ml:
        return RuleOutcome(False, f"one slice and {volume_ml:.3f} mL < {cfg.single_slice_min_ml} mL")
    return RuleOutcome(True, f"one slice, continuous piece in {supported}/{windows} windows, {volume_ml:.3f} mL")
