"""Labels of the engine's grid on the source DICOM images' own pixels (for DICOM SEG frames).

The engine segments on its grid (:class:`~SSSSegmentLib.volumes.geometry.Geometry`): the acquired slices
when the series was even and untilted, otherwise an orthogonal grid the slices were resampled onto
(gantry tilt, uneven spacing). A DICOM SEG frame must lie on a source image's plane, so each source
pixel (column i', row j' of an image with ImagePositionPatient ``p``, row and column directions
``r``, ``c`` and PixelSpacing ``(dy, dx)``) sits at the LPS point ``p + i'·dx·r + j'·dy·c`` and takes
the label of the grid voxel whose centre is nearest to that point (nearest neighbour: labels are
categories, never blended). Points outside the grid get background. On an untilted, evenly spaced
series the grid is the stack of source images and the mapping is the identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..volumes.geometry import Geometry

EXACT_TOLERANCE_VOXELS = 1e-3  # a source pixel this close to a voxel centre counts as on the grid


@dataclass(frozen=True)
class PlaneLabels:
    """Labels on the source images: ``frames`` uint8 (S, rows, columns), frame s on source image s
    (in the order given); ``exact`` is True when every source pixel lies on a voxel centre of the grid
    (the labels were copied, not looked up by nearest voxel)."""

    frames: np.ndarray
    exact: bool


def image_points_lps(header, rows: int, columns: int) -> np.ndarray:  # noqa: ANN001  (pydicom.Dataset)
    """LPS points (mm) of every pixel of one DICOM image, shape (3, rows · columns), row-major (j', i')."""
    orientation = np.asarray([float(v) for v in header.ImageOrientationPatient])
    row_dir, col_dir = orientation[:3], orientation[3:]
    spacing_between_rows, spacing_between_columns = (float(v) for v in header.PixelSpacing)
    jj, ii = np.mgrid[0:rows, 0:columns]
    position = np.asarray([float(v) for v in header.ImagePositionPatient])
    return (position[:, None] + row_dir[:, None] * (ii.ravel() * spacing_between_columns)
            + col_dir[:, None] * (jj.ravel() * spacing_between_rows))


def labels_on_images(labels_zyx: np.ndarray, geometry: Geometry, headers: Sequence) -> PlaneLabels:
    """The label map ``labels_zyx`` (uint8 (K, J, I) on ``geometry``) on each source image's pixels.

    ``headers``: the source images' DICOM headers (ImagePositionPatient, ImageOrientationPatient,
    PixelSpacing, Rows, Columns). Nearest voxel per pixel; background outside the grid.
    """
    lps_to_ijk = np.linalg.inv(geometry.ijk_to_lps())
    shape_kji = np.asarray(labels_zyx.shape)
    frames = []
    worst = 0.0
    for header in headers:
        rows, columns = int(header.Rows), int(header.Columns)
        ijk = lps_to_ijk[:3, :3] @ image_points_lps(header, rows, columns) + lps_to_ijk[:3, 3:]
        nearest = np.rint(ijk).astype(np.int64)
        worst = max(worst, float(np.abs(ijk - nearest).max()))
        i, j, k = nearest
        inside = (i >= 0) & (j >= 0) & (k >= 0) & (i < shape_kji[2]) & (j < shape_kji[1]) & (k < shape_kji[0])
        frame = np.zeros(rows * columns, dtype=np.uint8)
        frame[inside] = labels_zyx[k[inside], j[inside], i[inside]]
        frames.append(frame.reshape(rows, columns))
    return PlaneLabels(np.stack(frames), exact=worst <= EXACT_TOLERANCE_VOXELS)
