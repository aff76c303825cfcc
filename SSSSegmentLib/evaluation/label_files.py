"""Label maps for evaluation: a file's labels on its own grid, and :func:`on_grid_of` for pairing.

Files are read with the project's one reader, ``volumes.segfile.read_labelmap`` (NIfTI, NRRD and
Slicer ``.seg.nrrd`` with segments mapped to our classes, in LPS). Slicer may crop a ``.seg.nrrd``
to the segments' extent; :func:`on_grid_of` puts such a crop back onto the truth grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..volumes.geometry import Geometry
from ..volumes.segfile import SEG_SUFFIX, read_labelmap

_SPACING_ATOL_MM = 1e-3
_ORIGIN_ATOL_MM = 1e-2
_DIRECTION_ATOL = 1e-3


@dataclass(frozen=True)
class LabelMap:
    """A label map: ``labels_zyx`` uint8 [k, j, i] with values 0..5, on ``geometry`` (LPS).

    ``may_be_cropped``: the file may hold only a sub-box of the reference grid (Slicer .seg.nrrd).
    """

    labels_zyx: np.ndarray
    geometry: Geometry
    source: str
    may_be_cropped: bool = False

    @classmethod
    def from_file(cls, path: Path) -> LabelMap:
        """Read ``path`` with ``read_labelmap`` (strict: unknown segments/values raise InputError)."""
        path = Path(path)
        labels_zyx, geometry, _ = read_labelmap(path)
        return cls(labels_zyx, geometry, str(path), may_be_cropped=path.name.lower().endswith(SEG_SUFFIX))

    @property
    def size_ijk(self) -> tuple[int, int, int]:
        k, j, i = self.labels_zyx.shape
        return (i, j, k)


def on_grid_of(pred: LabelMap, reference: LabelMap) -> np.ndarray:
    """``pred``'s labels [k, j, i] on ``reference``'s grid, or InputError when the grids differ.

    Spacing and direction must match. Size and origin must match too, except for a cropped
    .seg.nrrd lying inside the reference grid at a whole-voxel offset: it is zero-padded.
    """
    what = f"prediction {pred.source} vs truth {reference.source}"
    p, r = pred.geometry, reference.geometry
    if not np.allclose(p.spacing_mm, r.spacing_mm, rtol=1e-4, atol=_SPACING_ATOL_MM):
        raise InputError(
            f"voxel spacing differs: {_fmt(p.spacing_mm)} vs {_fmt(r.spacing_mm)} mm (i, j, k); {what}"
        )
    if not np.allclose(p.direction, r.direction, atol=_DIRECTION_ATOL):
        raise InputError(f"axis directions differ: {_fmt(p.direction)} vs {_fmt(r.direction)}; {what}")
    same_origin = np.allclose(p.origin_lps, r.origin_lps, atol=_ORIGIN_ATOL_MM)
    if pred.size_ijk == reference.size_ijk and same_origin:
        return pred.labels_zyx
    if pred.may_be_cropped:
        return _pad_crop(pred, reference, what)
    if pred.size_ijk != reference.size_ijk:
        raise InputError(
            f"volume size differs: {pred.size_ijk} vs {reference.size_ijk} voxels (i, j, k); {what}"
        )
    raise InputError(f"origin differs: {_fmt(p.origin_lps)} vs {_fmt(r.origin_lps)} mm (LPS); {what}")


def _pad_crop(pred: LabelMap, reference: LabelMap, what: str) -> np.ndarray:
    """Place a cropped label map into the reference grid (whole-voxel offset, fully inside)."""
    r = reference.geometry
    to_index = np.linalg.inv(r.direction_matrix @ np.diag(r.spacing_mm))
    offset = to_index @ (np.asarray(pred.geometry.origin_lps) - np.asarray(r.origin_lps))
    offset_ijk = np.round(offset).astype(int)
    inside = np.all(offset_ijk >= 0) and np.all(offset_ijk + pred.size_ijk <= reference.size_ijk)
    if not np.allclose(offset, offset_ijk, atol=1e-2) or not inside:
        raise InputError(
            f"grids do not match: size {pred.size_ijk} at voxel offset {_fmt(offset)} does not fit "
            f"inside {reference.size_ijk} voxels (i, j, k); {what}"
        )
    padded = np.zeros_like(reference.labels_zyx)
    (i0, j0, k0), (ni, nj, nk) = offset_ijk, pred.size_ijk
    padded[k0 : k0 + nk, j0 : j0 + nj, i0 : i0 + ni] = pred.labels_zyx
    return padded


def _fmt(values) -> str:  # noqa: ANN001
    return "(" + ", ".join(f"{float(v):.4g}" for v in values) + ")"
