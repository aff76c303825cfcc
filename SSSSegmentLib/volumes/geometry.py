"""Volume geometry in the DICOM/ITK patient frame (LPS), and the CT volume container.

Array convention everywhere in the engine: numpy arrays are indexed ``[k, j, i]`` (z, y, x), the
order SimpleITK's ``GetArrayFromImage`` returns. ``spacing_mm``, ``origin_lps`` and the columns of
``direction`` are given in ITK order (i, j, k). A voxel index (i, j, k) maps to the LPS point
``origin_lps + direction @ (spacing_mm * (i, j, k))``. Slicer's RAS is LPS with x and y negated.
A volume may be stored in any orientation (axial, coronal, sagittal, oblique); the inference
pipeline segments it on its axial working grid (:mod:`.orientation`) and returns labels on this grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Geometry:
    """Grid geometry of a 3D volume (LPS, ITK index order i, j, k)."""

    spacing_mm: tuple[float, float, float]
    origin_lps: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)  # row-major 3x3

    @property
    def direction_matrix(self) -> np.ndarray:
        """3x3 matrix whose columns are the i, j, k axis directions in LPS."""
        return np.asarray(self.direction, dtype=np.float64).reshape(3, 3)

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres (1 mL = 1000 mm^3)."""
        return float(np.prod(self.spacing_mm)) / 1000.0

    def ijk_to_lps(self) -> np.ndarray:
        """4x4 homogeneous matrix mapping (i, j, k, 1) to (L, P, S, 1) in mm."""
        m = np.eye(4)
        m[:3, :3] = self.direction_matrix @ np.diag(self.spacing_mm)
        m[:3, 3] = self.origin_lps
        return m

    def ijk_to_ras(self) -> np.ndarray:
        """4x4 homogeneous matrix mapping (i, j, k, 1) to Slicer's RAS in mm."""
        return np.diag([-1.0, -1.0, 1.0, 1.0]) @ self.ijk_to_lps()

    def to_sitk(self, image) -> None:  # noqa: ANN001  (SimpleITK.Image, imported lazily)
        """Copy this geometry onto a SimpleITK image in place."""
        image.SetSpacing(tuple(float(s) for s in self.spacing_mm))
        image.SetOrigin(tuple(float(o) for o in self.origin_lps))
        image.SetDirection(tuple(float(d) for d in self.direction))

    @classmethod
    def from_sitk(cls, image) -> Geometry:  # noqa: ANN001
        """Geometry of a 3D SimpleITK image."""
        return cls(
            spacing_mm=tuple(float(s) for s in image.GetSpacing()),
            origin_lps=tuple(float(o) for o in image.GetOrigin()),
            direction=tuple(float(d) for d in image.GetDirection()),
        )

    def is_orthonormal(self, atol: float = 1e-4) -> bool:
        """True when the axis directions are orthogonal unit vectors (not a sheared, gantry-tilt grid)."""
        d = self.direction_matrix
        return bool(np.allclose(d.T @ d, np.eye(3), atol=atol))

    def allclose(self, other: Geometry, atol: float = 1e-4) -> bool:
        """True when both grids map voxels to the same points (within ``atol`` mm / cosines)."""
        return bool(np.allclose(self.ijk_to_lps(), other.ijk_to_lps(), atol=atol))


@dataclass(frozen=True, eq=False)
class AcquiredPlanes:
    """The acquired slices of a resampled stack, already on the output's in-plane grid.

    ``hu_szyx``: float32 (S, J, I), acquired slice s (sorted along the normal) shifted onto the output
    grid's rows j and columns i (air outside the slice). Output slice k is the linear blend
    ``(1 - weight[k]) * plane[lower[k]] + weight[k] * plane[lower[k] + 1]``, so any per-plane map
    computed on these S planes (e.g. class probabilities) maps onto the output grid (K, J, I) by
    :meth:`to_grid`, exactly as the HU did. Only the blend along k is shared; no in-plane resampling.
    """

    hu_szyx: np.ndarray
    lower: np.ndarray  # (K,) int: the acquired plane at or below output slice k
    weight: np.ndarray  # (K,) float32 in [0, 1]: the weight of plane lower[k] + 1

    @property
    def n_planes(self) -> int:
        return int(self.hu_szyx.shape[0])

    @property
    def n_slices(self) -> int:
        return int(self.lower.shape[0])

    def to_grid(self, planes_szyx: np.ndarray | Mapping[int, np.ndarray], ks: slice | None = None) -> np.ndarray:
        """Per-plane maps (S, J, I) -> output slices ``ks`` (default all) of the grid, float32 (k, J, I).

        ``planes_szyx`` may also map plane s -> its (J, I) map, holding at least the planes ``ks`` needs.
        """
        ks = slice(None) if ks is None else ks
        lower, weight = self.lower[ks], self.weight[ks]
        out = np.empty((len(lower), *self.hu_szyx.shape[1:]), dtype=np.float32)
        for row, (s, w) in enumerate(zip(lower, weight, strict=True)):  # slice by slice: no volume-sized temporaries
            np.add((1.0 - w) * planes_szyx[s], w * planes_szyx[s + 1], out=out[row])
        return out


@dataclass(frozen=True)
class CTVolume:
    """A CT volume in Hounsfield units with its grid.

    ``hu_zyx``: float32 array, shape (K, J, I) = (slices, rows, columns), values in HU.
    ``source``: where it came from (path or description), for messages.
    ``notes``: log lines produced while reading (e.g. gantry-tilt resampling).
    ``planes``: for a DICOM stack resampled along k (gantry tilt, uneven spacing), its acquired slices on
    this grid's in-plane pixels and how they blend into ``hu_zyx`` (:class:`AcquiredPlanes`),
    so the model can look at the S acquired planes instead of the K resampled slices; None otherwise.
    ``warnings``: what makes the result less trustworthy (missing slices, ``slice_gaps``); also in
    ``notes``, and shown in the QC picture and the command's ``done`` event.
    """

    hu_zyx: np.ndarray
    geometry: Geometry
    source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    planes: AcquiredPlanes | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.hu_zyx.shape)  # type: ignore[return-value]

    def to_sitk(self, array_zyx: np.ndarray | None = None):  # noqa: ANN201
        """A SimpleITK image of ``array_zyx`` (default: the HU array) on this volume's grid."""
        import SimpleITK as sitk  # noqa: N813

        image = sitk.GetImageFromArray(self.hu_zyx if array_zyx is None else array_zyx)
        self.geometry.to_sitk(image)
        return image
