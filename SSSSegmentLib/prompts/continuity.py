"""The 3D continuity rule of SSS's prompt generator, turned into a per-component decision.

Paper sketch: slide windows of N consecutive slices along k, N from S/3 to S/2 (S = slices in the
volume); in each window the continuity score is C = |largest 26-connected 3D piece| / |class
foreground in the window|; a window with C >= tau is "continuous".

How we decide per component (the paper scores whole class volumes, which would also reject a
class with two genuine lesions of similar size, e.g. bilateral SDH): every component, whatever
the number of slices it spans, is scored over the windows that contain any of its slices. A window
*supports* the component when it is continuous (C >= tau) with this component as its largest
piece, or when the component's piece holds at least ``min_piece_share`` of the window's class
foreground (one of a few genuine lesions). The component passes when at least
``min_window_fraction`` of its windows support it. So one lesion alone passes, two lesions of
similar size both pass, and scattered specks or scattered multi-slice fragments fail: each window
holds many of them, so each fragment's share is small and no window is continuous.

A component confined to one slice is weaker evidence (one thick slice): it must also hold at least
``single_slice_min_ml`` (a stronger volume bar than the general one), and ``allow_single_slice``
must be on.

Window sizes: the sketch's N in [ceil(S/3), floor(S/2)] (S = slices in the volume), but no taller
than ``window_mm`` (default 50-75 mm): N in [min(ceil(S/3), ceil(low / s_k)), min(floor(S/2),
floor(high / s_k))] for slices of ``s_k`` mm. S/3 to S/2 was written for BHSD's thick-slice scans
(about 30 slices of 5 mm: 50-75 mm, where both agree); counted in slices alone, a 1.5 mm scan that also
covers the neck (160 slices) gets windows of 80-120 mm, a third of the head or more, which hold every
fragment of the class, so no fragment's share is large enough. With ``window_mm`` null (or no slice
spacing given) only the sketch's rule applies. Each end is clamped to [2, S] (N = S = 1 for a
one-slice volume); the log states the windows in mm and in slices.

Pieces on thin slices: a piece is what one thick slice would join. On BHSD's 5 mm slices two parts
of one lesion on neighbouring slices (5 mm apart) touch and make one 26-connected piece; on 1-1.5 mm
slices the model's output on one slice in between can dip below the threshold and cut the same lesion
into two or three pieces, each too small a share of its windows. So the rule scores *groups*: parts
of the class whose voxels are at most ``join_mm`` (default 5 mm) apart along k and touch in-plane
(``join_reach``: max(1, floor(join_mm / s_k)) slices: one, plain 26-connectivity, on slices thicker
than 2.5 mm, so thick-slice scans are scored as before; 3 on 1.5 mm slices, 5 on 1 mm ones) are one
piece, and every component of a group gets the group's decision. Null: 26-connected components alone.

Window piece sizes come from per-slice voxel counts of the 3D components: a component's
part inside a window counts as one piece (exact unless the component leaves the slab and comes
back, which only overstates C for such rare shapes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from SSSSegmentLib.errors import SSSSegError
from SSSSegmentLib.prompts.outcome import RuleOutcome


@dataclass(frozen=True)
class ContinuityConfig:
    """Configuration of the 3D continuity rule (see the module docstring)."""

    enabled: bool = True
    tau: float = 0.8
    min_piece_share: float = 0.3
    allow_single_slice: bool = True
    single_slice_min_ml: float = 0.1
    min_window_fraction: float = 0.5
    window_mm: tuple[float, float] | None = (50.0, 75.0)
    join_mm: float | None = 5.0

    def __post_init__(self) -> None:
        if self.window_mm is not None and not 0.0 < self.window_mm[0] <= self.window_mm[1]:
            raise SSSSegError("continuity.window_mm must be [low, high] mm with 0 < low <= high (or null)")
        if not 0.0 < self.tau <= 1.0 or not 0.0 <= self.min_window_fraction <= 1.0:
            raise SSSSegError("continuity.tau must be in (0, 1] and continuity.min_window_fraction in [0, 1]")
        if not 0.0 < self.min_piece_share <= 1.0:
            raise SSSSegError("continuity.min_piece_share must be in (0, 1]")
        if self.join_mm is not None and not self.join_mm > 0.0:
            raise SSSSegError("continuity.join_mm must be a positive number of mm (or null)")


def window_sizes(n_slices: int, slice_mm: float | None = None, window_mm: tuple[float, float] | None = None
                 ) -> range:
    """Window lengths N in slices: ceil(S/3) to floor(S/2), each end no more than ceil(low / slice_mm)
    and floor(high / slice_mm) for ``window_mm`` (low, high) and a slice spacing ``slice_mm`` when both
    are given. Clamped to [2, S] (at least one size)."""
    if n_slices < 1:
        raise SSSSegError("continuity needs a volume with at least one slice")
    low_n, high_n = math.ceil(n_slices / 3), n_slices // 2
    if slice_mm and window_mm:
        low_n = min(low_n, math.ceil(window_mm[0] / slice_mm - 1e-9))
        high_n = min(high_n, math.floor(window_mm[1] / slice_mm + 1e-9))
    low = min(max(2, low_n), n_slices)
    high = min(max(2, high_n), n_slices)
    return range(low, max(high, low) + 1)


def _windows_text(sizes: range, slice_mm: float | None) -> str:
    n = f"{sizes.start}-{sizes.stop - 1} slices"
    if not slice_mm:
        return f"windows of {n}"
    return f"windows of {sizes.start * slice_mm:.0f}-{(sizes.stop - 1) * slice_mm:.0f} mm ({n})"


def window_support(slice_counts: np.ndarray, tau: float, min_share: float, sizes: range | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per component: (windows that contain it, windows that support it).

    ``slice_counts``: int (n_components, S) voxels of each component per slice. A window supports a
    component it contains when the window is continuous (C >= ``tau``) with the component as its
    largest piece, or the component's piece is at least ``min_share`` of the window's foreground.
    ``sizes``: the window lengths (default ``window_sizes(S)``). Returns two int64 arrays of shape (n_components,).
    """
    n_comp, n_slices = slice_counts.shape
    cumulative = np.concatenate([np.zeros((n_comp, 1), np.int64), np.cumsum(slice_counts, axis=1)], axis=1)
    total = np.zeros(n_comp, np.int64)
    support = np.zeros(n_comp, np.int64)
    for size in sizes or window_sizes(n_slices):
        pieces = cumulative[:, size:] - cumulative[:, :-size]  # (n_comp, n_windows)
        foreground = pieces.sum(axis=0)
        contains = pieces > 0
        winner = np.zeros_like(contains)
        winner[pieces.argmax(axis=0), np.arange(pieces.shape[1])] = True
        continuous = (foreground > 0) & (pieces.max(axis=0) >= tau * foreground)
        supported = contains & ((winner & continuous) | (pieces >= min_share * foreground))
        total += contains.sum(axis=1)
        support += supported.sum(axis=1)
    return total, support


def continuity_outcomes(slice_counts: np.ndarray, volumes_ml: np.ndarray, cfg: ContinuityConfig,
                        slice_mm: float | None = None) -> list[RuleOutcome]:
    """The continuity decision for every component of one class volume.

    ``slice_counts``: int (n_components, S) voxels per component per volume slice; ``volumes_ml``:
    (n_components,) component volumes in mL; ``slice_mm``: the slice spacing s_k (None: windows
    counted in slices, the sketch's S/3 to S/2).
    """
    if slice_counts.shape[0] == 0:
        return []
    slice_mm = slice_mm if cfg.window_mm else None
    sizes = window_sizes(slice_counts.shape[1], slice_mm, cfg.window_mm)
    total, support = window_support(slice_counts, cfg.tau, cfg.min_piece_share, sizes)
    windows = _windows_text(sizes, slice_mm)
    outcomes = []
    for comp, counts in enumerate(slice_counts):
        n_slices = int(np.count_nonzero(counts))
        fraction = support[comp] / total[comp] if total[comp] else 0.0
        scored = (
            f"spans {n_slices} slice(s){f' ({n_slices * slice_mm:.0f} mm)' if slice_mm else ''}, supported by "
            f"{support[comp]}/{total[comp]} {windows} "
            f"({'>=' if fraction >= cfg.min_window_fraction else '<'} {cfg.min_window_fraction:.0%}; "
            f"tau {cfg.tau}, share {cfg.min_piece_share})"
        )
        if fraction < cfg.min_window_fraction:
            outcomes.append(RuleOutcome(False, f"scattered: {scored}"))
        elif n_slices == 1:
            outcomes.append(_single_slice_outcome(float(volumes_ml[comp]), scored, cfg))
        else:
            outcomes.append(RuleOutcome(True, scored))
    return outcomes


def _single_slice_outcome(volume_ml: float, scored: str, cfg: ContinuityConfig) -> RuleOutcome:
    if not cfg.allow_single_slice:
        return RuleOutcome(False, "confined to one slice (single-slice components not allowed)")
    if volume_ml < cfg.single_slice_min_ml:
        return RuleOutcome(False, f"one slice and {volume_ml:.3f} mL < {cfg.single_slice_min_ml} mL")
    return RuleOutcome(True, f"{scored}, {volume_ml:.3f} mL")


def join_reach(slice_mm: float | None, join_mm: float | None) -> int:
    """Slices along k across which two parts of a class join into one piece: max(1, floor(join_mm /
    slice_mm)); 1 (26-connectivity) without a slice spacing or with ``join_mm`` null."""
    if not slice_mm or not join_mm:
        return 1
    return max(1, math.floor(join_mm / slice_mm + 1e-9))


def continuity_groups(component_labels: np.ndarray, reach: int) -> np.ndarray:
    """int64 (n,): the group (0-based) of each component of ``component_labels`` (int (K, J, I) over a
    crop, 0 = not this class, 1..n = component id): components whose voxels are at most ``reach``
    slices apart along k and touch in-plane (8-neighbours) share a group. ``reach`` 1: each component is
    its own group (they are 26-connected components already)."""
    n = int(component_labels.max()) if component_labels.size else 0
    if reach <= 1 or n == 0:
        return np.arange(n, dtype=np.int64)
    mask = component_labels > 0
    reached = mask.copy()
    for step in range(1, reach):  # each voxel also covers the reach - 1 slices above it: 26-connected
        reached[step:] |= mask[:-step]  # to a voxel reach slices up
    groups, _ = ndimage.label(reached, structure=np.ones((3, 3, 3), dtype=bool))
    first = np.zeros(n + 1, dtype=np.int64)
    first[component_labels.ravel()] = groups.ravel()  # any voxel of a component gives its group
    _, dense = np.unique(first[1:], return_inverse=True)
    return dense.astype(np.int64)


def grouped_outcomes(slice_counts: np.ndarray, volumes_ml: np.ndarray, groups: np.ndarray, cfg: ContinuityConfig,
                     slice_mm: float | None = None) -> list[RuleOutcome]:
    """``continuity_outcomes`` of the groups (``continuity_groups``), each component taking its group's:
    ``slice_counts`` (n, S) and ``volumes_ml`` (n,) are summed per group first."""
    if slice_counts.shape[0] == 0:
        return []
    n_groups = int(groups.max()) + 1
    counts = np.zeros((n_groups, slice_counts.shape[1]), dtype=np.int64)
    np.add.at(counts, groups, slice_counts)
    volumes = np.bincount(groups, weights=volumes_ml, minlength=n_groups)
    by_group = continuity_outcomes(counts, volumes, cfg, slice_mm)
    members = np.bincount(groups, minlength=n_groups)
    return [by_group[g] if members[g] == 1 else RuleOutcome(
        by_group[g].passed, f"{by_group[g].reason}; scored as one piece with {members[g] - 1} other part(s) "
        f"within {cfg.join_mm:g} mm along k") for g in groups]
