"""Lossless reorientation of a volume to the engine's axial working orientation, and back.

The model segments slice by slice along the array's k axis, so it must see axial slices (the
phantoms it was trained on are LPS, identity direction: i -> L, j -> P, k -> S). A coronal or
sagittal grid is brought to that orientation by permuting and flipping its axes: the same voxels
(no interpolation) on a grid whose direction columns are the closest of +L, +P, +S. The labels
found there are mapped back by the inverse permutation, so they lie exactly on the input grid.

Frames: arrays are indexed [k, j, i] (numpy), axes are numbered in ITK order (0 = i, 1 = j,
2 = k), directions are LPS (see :mod:`.geometry`). Orientation codes name, for the i, j and k
axes in turn, the patient direction each axis *increases towards* (ITK/DICOMOrient convention:
identity direction = "LPS"; a typical coronal DICOM series is "LIP", a sagittal one "PIR").
An oblique grid (axes not along the patient axes, e.g. a tilted scan) is permuted to its closest
axes, like SimpleITK's DICOMOrient; its slices stay oblique by the reported angle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .geometry import CTVolume, Geometry

AXIAL_ORIENTATION = "LPS"  # working orientation: identity direction, k = superior
_POSITIVE = "LPS"  # letter of each LPS axis' positive direction
_NEGATIVE = "RAI"
_PLANE_OF_SLICE_AXIS = ("sagittal", "coronal", "axial")  # slices normal to L, P, S
OBLIQUE_DEG = 1.0  # axes farther than this from a patient axis make the grid "oblique"


@dataclass(frozen=True)
class Reorientation:
    """An axis permutation and flips taking an input grid to the axial working grid.

    ``source_axis[a]``: the input ITK axis (0 = i, 1 = j, 2 = k) that working axis ``a`` runs along.
    ``flip[a]``: True when working axis ``a`` runs opposite to that input axis.
    ``input_code`` / ``oblique_deg``: the input's orientation code and how far (degrees) its
    farthest axis lies from the patient axis it was assigned to.
    """

    source_axis: tuple[int, int, int] = (0, 1, 2)
    flip: tuple[bool, bool, bool] = (False, False, False)
    input_code: str = AXIAL_ORIENTATION
    oblique_deg: float = 0.0

    @property
    def is_identity(self) -> bool:
        return self.source_axis == (0, 1, 2) and not any(self.flip)

    @property
    def input_plane(self) -> str:
        """"axial", "coronal" or "sagittal": the plane the input's k-slices are closest to."""
        return _PLANE_OF_SLICE_AXIS[self.source_axis.index(2)]

    def _numpy_axes(self) -> tuple[int, ...]:
        """``np.transpose`` axes taking an input [k, j, i] array to working [k', j', i'] order."""
        return tuple(2 - self.source_axis[2 - n] for n in range(3))

    def _numpy_flips(self) -> tuple[int, ...]:
        """Numpy axes of the working array that are reversed."""
        return tuple(n for n in range(3) if self.flip[2 - n])

    def working_shape_zyx(self, shape_zyx: tuple[int, ...]) -> tuple[int, ...]:
        """The working-grid shape (K', J', I') of an input array shape (K, J, I)."""
        return tuple(int(shape_zyx[n]) for n in self._numpy_axes())

    def to_working(self, array_zyx: np.ndarray) -> np.ndarray:
        """The input-grid array (K, J, I) on the working grid (K', J', I'): a view, no copy."""
        return np.flip(np.transpose(array_zyx, self._numpy_axes()), self._numpy_flips())

    def to_input(self, array_zyx: np.ndarray) -> np.ndarray:
        """A working-grid array (K', J', I') back on the input grid (K, J, I): a view, no copy."""
        return np.transpose(np.flip(array_zyx, self._numpy_flips()), np.argsort(self._numpy_axes()))

    def working_geometry(self, geometry: Geometry, shape_zyx: tuple[int, ...]) -> Geometry:
        """The working grid of an input grid ``geometry`` with array shape ``shape_zyx`` (K, J, I).

        Its voxel (i', j', k') is the same LPS point as the input voxel it was taken from.
        """
        size_ijk = np.asarray(shape_zyx[::-1], dtype=np.float64)
        axes = geometry.direction_matrix
        columns, spacing, corner = [], [], np.zeros(3)
        for a in range(3):
            src = self.source_axis[a]
            columns.append(-axes[:, src] if self.flip[a] else axes[:, src])
            spacing.append(float(geometry.spacing_mm[src]))
            corner[src] = size_ijk[src] - 1 if self.flip[a] else 0.0
        origin = geometry.ijk_to_lps() @ np.append(corner, 1.0)
        return Geometry(spacing_mm=tuple(spacing), origin_lps=tuple(float(x) for x in origin[:3]),
                        direction=tuple(float(x) + 0.0 for x in np.column_stack(columns).ravel()))

    def describe(self) -> str:
        """One log line saying what was done, e.g. "input is coronal (LIP); segmenting on axial planes (...)"."""
        oblique = self.oblique_deg > OBLIQUE_DEG
        angle = f", {self.oblique_deg:.1f}° off the patient axes" if oblique else ""
        if self.input_plane == "axial":
            head = (f"input is {'oblique ' if oblique else ''}axial ({self.input_code}{angle}); "
                    f"segmenting it with its axes reordered to {AXIAL_ORIENTATION}")
        else:
            closest = "the closest " if oblique else ""
            head = (f"input is {'oblique ' if oblique else ''}{self.input_plane} ({self.input_code}{angle}); "
                    f"segmenting on {closest}axial planes")
        return f"{head} (lossless axis permutation to {AXIAL_ORIENTATION}; labels are mapped back to the input grid)"


def _closest_patient_axes(units: np.ndarray) -> list[int]:
    """For each input axis (unit column of the LPS direction), the patient axis (0 L, 1 P, 2 S) it is assigned to.

    Greedy on |cosine|: the best-aligned (patient, input) axis pair is fixed first, then the best of
    the rest, so even a strongly oblique grid gets a permutation.
    """
    cosines = np.abs(units)
    assigned = [-1, -1, -1]
    for _ in range(3):
        _, patient, column = max((cosines[p, c], p, c) for p in range(3) for c in range(3)
                                 if assigned[c] < 0 and p not in assigned)
        assigned[column] = patient
    return assigned


def axial_reorientation(geometry: Geometry) -> Reorientation:
    """The permutation/flips that bring ``geometry``'s grid to the closest LPS (axial) axes."""
    direction = geometry.direction_matrix
    units = direction / np.linalg.norm(direction, axis=0, keepdims=True)
    patient_axis = _closest_patient_axes(units)
    source = [patient_axis.index(a) for a in range(3)]
    flip = [bool(direction[a, source[a]] < 0) for a in range(3)]
    worst_cos = min(abs(float(units[patient_axis[c], c])) for c in range(3))
    oblique = math.degrees(math.acos(min(1.0, worst_cos)))
    code = "".join(_POSITIVE[p] if direction[p, c] > 0 else _NEGATIVE[p] for c, p in enumerate(patient_axis))
    return Reorientation(tuple(source), tuple(flip), code, oblique)  # type: ignore[arg-type]


def to_axial(volume: CTVolume) -> tuple[CTVolume, Reorientation]:
    """``volume`` on its axial working grid (contiguous HU [k', j', i'], same voxels) and the mapping used.

    An input already in the working orientation is returned as is.
    """
    reorientation = axial_reorientation(volume.geometry)
    if reorientation.is_identity:
        return volume, reorientation
    hu = np.ascontiguousarray(reorientation.to_working(volume.hu_zyx))
    geometry = reorientation.working_geometry(volume.geometry, volume.shape_zyx)
    notes = (*volume.notes, reorientation.describe())
    return CTVolume(hu, geometry, source=volume.source, notes=notes), reorientation
