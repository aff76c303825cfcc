"""Missing slices in a DICOM series: gaps between neighbouring slices along the slice normal.

A series with deleted or lost files still reads as a volume: the reader blends the two slices on
either side of a gap into the slices it makes up there, so whatever lay in the gap is invisible and
volumes across it are guesses. The rule (heights in mm along the slice normal, LPS):

- a **gap** is a step between neighbouring slices larger than ``GAP_RATIO`` (1.5) × their slice
  thickness (DICOM SliceThickness, the larger of the two slices'; the series' median step when the
  tag is missing). One missing 5 mm slice makes a 10 mm step, 2 × the thickness. Series that change
  thickness on purpose (the GE scan: 4 mm slices at the skull base, 7 mm above) have no gap. Gaps
  are warned in the log, in the QC picture and in the ``done`` event (``warnings``);
- a gap also larger than ``REFUSE_GAP_MM`` (15 mm) is refused (InputError, exit code 2): a whole
  bleed of up to about 1.8 mL (a 15 mm ball) could lie in it unseen, so neither a finding's volume
  nor "no hemorrhage found" would mean anything. With 5 mm slices that is two or more missing
  slices in a row; with 2.5 mm slices, six or more. Re-export or re-send the complete series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

GAP_RATIO = 1.5
REFUSE_GAP_MM = 15.0


@dataclass(frozen=True)
class SliceGap:
    """One gap: between sorted slices ``below`` and ``below + 1`` (0-based, bottom to top), ``size_mm``
    apart along the normal, where slices of ``slice_mm`` were expected."""

    below: int
    size_mm: float
    slice_mm: float

    @property
    def missing(self) -> int:
        """About how many slices are missing in the gap."""
        return max(1, round(self.size_mm / self.slice_mm) - 1)

    def text(self) -> str:
        return (f"{self.size_mm:.1f} mm between slices {self.below} and {self.below + 1} (counted from the "
                f"bottom), about {self.missing} missing slice(s) of {self.slice_mm:.1f} mm")


def find_gaps(heights_mm: np.ndarray, thickness_mm: np.ndarray | None = None) -> list[SliceGap]:
    """The gaps of a stack whose slices lie at ``heights_mm`` (S,), sorted upward along the normal, with
    slice thicknesses ``thickness_mm`` (S,) in the same order (0 or NaN where unknown)."""
    steps = np.diff(np.asarray(heights_mm, dtype=np.float64))
    if steps.size < 2:
        return []
    expected = np.full(steps.shape, float(np.median(steps)))
    if thickness_mm is not None:
        pair = np.fmax(np.asarray(thickness_mm, np.float64)[:-1], np.asarray(thickness_mm, np.float64)[1:])
        expected = np.where(pair > 0, pair, expected)  # NaN > 0 is False: the median step
    return [SliceGap(int(s), float(steps[s]), float(expected[s]))
            for s in np.flatnonzero(steps > GAP_RATIO * expected)]


def gap_warnings(heights_mm: np.ndarray, thickness_mm: np.ndarray | None, source: str) -> tuple[str, ...]:
    """One warning line per gap of the series ``source`` (see :func:`find_gaps`); InputError when a gap
    is wider than REFUSE_GAP_MM."""
    gaps = find_gaps(heights_mm, thickness_mm)
    worst = max(gaps, key=lambda gap: gap.size_mm, default=None)
    if worst is not None and worst.size_mm > REFUSE_GAP_MM:
        raise InputError(f"the DICOM series in {source} has missing slices: a gap of {worst.text()}; gaps over "
                         f"{REFUSE_GAP_MM:.0f} mm can hide a whole bleed, so it is not segmented (send the "
                         "complete series)")
    return tuple(f"WARNING: missing slices: a gap of {gap.text()}; findings in the gap are not seen and "
                 "volumes across it are estimates" for gap in gaps)
