"""A user's prompt on one slice: checked against the volume, then kept in slice pixel indices.

Frames: points and boxes arrive as voxel indices (IJK; i = column, j = row, k = slice) of the
session's volume, as Slicer's IJK or ``CTVolume.hu_zyx[k, j, i]`` index them. Fractions are allowed
(a click between voxel centres) and rounded to the nearest voxel. Anything outside the volume is
refused with a :class:`PromptError` that says where the volume ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..classes import CLASS_BY_KEY, CLASS_BY_LABEL
from ..errors import PromptError


@dataclass(frozen=True, eq=False)
class SlicePrompt:
    """Checked prompt: class ``label`` (1..5) on slice ``slice_k``.

    positive_ji / negative_ji: int (P, 2) voxel rows (j, i) on that slice.
    box_ji: (j0, i0, j1, i1) inclusive voxel corners (j0 <= j1, i0 <= i1), or None.
    """

    label: int
    slice_k: int
    positive_ji: np.ndarray
    negative_ji: np.ndarray
    box_ji: tuple[int, int, int, int] | None = None

    @property
    def has_positive(self) -> bool:
        return bool(len(self.positive_ji)) or self.box_ji is not None


def class_label(value: int | str) -> int:
    """BHSD label (1..5) of a class given as its label or its key ("EDH" ... "SDH")."""
    if isinstance(value, str):
        hclass = CLASS_BY_KEY.get(value.strip().upper())
        if hclass is None:
            raise PromptError(f"unknown class {value!r}: use one of {', '.join(CLASS_BY_KEY)}")
        return hclass.label
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) not in CLASS_BY_LABEL:
        names = ", ".join(f"{c.label} ({c.key})" for c in CLASS_BY_LABEL.values())
        raise PromptError(f"unknown class {value!r}: use one of {names}")
    return int(value)


def check_slice(slice_k: float, n_slices: int) -> int:
    """``slice_k`` as an index of one of the ``n_slices`` slices, or PromptError."""
    if not np.isfinite(slice_k):
        raise PromptError(f"slice index {slice_k!r} is not a number")
    k = int(round(float(slice_k)))
    if abs(float(slice_k) - k) > 0.5 or not 0 <= k < n_slices:
        raise PromptError(f"slice {slice_k} is not in the volume: it has slices 0..{n_slices - 1}")
    return k


def make_prompt(
    label: int | str,
    slice_k: float,
    shape_zyx: tuple[int, int, int],
    positive: Sequence[Sequence[float]] = (),
    negative: Sequence[Sequence[float]] = (),
    box: Sequence[float] | None = None,
) -> SlicePrompt:
    """Check a prompt against a volume of ``shape_zyx`` (K, J, I).

    positive / negative: points as (i, j) or (i, j, k) voxel coordinates; a given k must be ``slice_k``.
    box: (i0, j0, i1, j1), two opposite corner voxels (inclusive, any order), on ``slice_k``.
    """
    k = check_slice(slice_k, shape_zyx[0])
    pos = _points_ji(positive, k, shape_zyx, "positive")
    neg = _points_ji(negative, k, shape_zyx, "negative")
    box_ji = None if box is None else _box_ji(box, k, shape_zyx)
    if not len(pos) and not len(neg) and box_ji is None:
        raise PromptError("a prompt needs at least one point or a box")
    return SlicePrompt(class_label(label), k, pos, neg, box_ji)


def _points_ji(points: Sequence[Sequence[float]], k: int, shape_zyx: tuple[int, int, int], kind: str) -> np.ndarray:
    """Int (P, 2) rows (j, i) of ``points`` given as (i, j) or (i, j, k)."""
    array = np.asarray(points, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if array.ndim != 2 or array.shape[1] not in (2, 3):
        raise PromptError(f"{kind} points must be rows (i, j) or (i, j, k), got shape {array.shape}")
    rows = []
    for point in array:
        if array.shape[1] == 3 and abs(point[2] - k) > 0.5:
            raise PromptError(f"{kind} point {_fmt(point)} is not on slice {k}: a prompt lies on one slice")
        rows.append(_voxel_ji(point[:2], k, shape_zyx, f"{kind} point"))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 2)


def _box_ji(box: Sequence[float], k: int, shape_zyx: tuple[int, int, int]) -> tuple[int, int, int, int]:
    corners = np.asarray(box, dtype=np.float64)
    if corners.shape != (4,):
        raise PromptError(f"a box is (i0, j0, i1, j1), got {len(corners.ravel())} numbers")
    (ja, ia), (jb, ib) = (_voxel_ji(c, k, shape_zyx, "box corner") for c in corners.reshape(2, 2))
    if ja == jb or ia == ib:
        raise PromptError(f"box {_fmt(corners)} on slice {k} is empty: it must span at least 2 voxels in i and j")
    return min(ja, jb), min(ia, ib), max(ja, jb), max(ia, ib)


def _voxel_ji(point_ij: np.ndarray, k: int, shape_zyx: tuple[int, int, int], kind: str) -> tuple[int, int]:
    """(j, i) of the voxel nearest to (i, j); PromptError outside the slice."""
    if not np.all(np.isfinite(point_ij)):
        raise PromptError(f"{kind} {_fmt(point_ij)} is not a number")
    i, j = (int(round(v)) for v in point_ij)
    if not (0 <= i < shape_zyx[2] and 0 <= j < shape_zyx[1]):
        raise PromptError(f"{kind} (i, j) = {_fmt(point_ij)} on slice {k} lies outside the volume: "
                          f"columns i are 0..{shape_zyx[2] - 1}, rows j are 0..{shape_zyx[1] - 1}")
    return j, i


def _fmt(values: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:g}" for v in np.ravel(values)) + ")"
