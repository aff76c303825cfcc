"""Scalar volume nodes <-> :class:`CTVolume` (exact geometry, RAS <-> LPS).

A volume node stores its voxels as vtkImageData (i fastest, so numpy sees them as [k, j, i]) and
its grid as the IJKToRAS matrix. The engine works in LPS (ITK/DICOM): LPS = diag(-1, -1, 1) RAS.

Parent transforms: a *linear* parent transform is applied to the geometry of the returned
CTVolume (the node itself is not changed, nothing is hardened), so the engine sees the volume
where Slicer displays it. A non-linear (warping) transform cannot be expressed as a grid and is
refused with :class:`InputError`: harden it first (Data module, right-click, "Harden transform").
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..volumes.geometry import CTVolume, Geometry

RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
ORTHONORMAL_TOLERANCE = 1e-4


def numpy_from_vtk_matrix(matrix) -> np.ndarray:  # noqa: ANN001  (vtkMatrix4x4)
    """A 4x4 float64 array copy of a vtkMatrix4x4."""
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=np.float64)


def vtk_matrix_from_numpy(array: np.ndarray):  # noqa: ANN201  (vtkMatrix4x4)
    """A vtkMatrix4x4 holding the 4x4 ``array``."""
    import vtk

    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def geometry_from_ijk_to_ras(ijk_to_ras: np.ndarray) -> Geometry:
    """The LPS :class:`Geometry` of a grid given by its 4x4 IJK-to-RAS matrix.

    Raises InputError when the matrix has shear or zero spacing (not a voxel grid ITK can hold).
    """
    ijk_to_lps = RAS_FROM_LPS @ np.asarray(ijk_to_ras, dtype=np.float64)
    axes = ijk_to_lps[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    if np.any(spacing <= 0):
        raise InputError(f"volume grid has zero spacing: {spacing.tolist()}")
    direction = axes / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=ORTHONORMAL_TOLERANCE):
        raise InputError("volume grid is sheared (axes not orthogonal): resample it before segmenting")
    return Geometry(
        spacing_mm=tuple(float(s) for s in spacing),
        origin_lps=tuple(float(o) for o in ijk_to_lps[:3, 3]),
        direction=tuple(float(d) for d in direction.ravel()),
    )


def world_ijk_to_ras(node) -> np.ndarray:  # noqa: ANN001  (vtkMRMLVolumeNode)
    """The node's IJK-to-RAS matrix in world coordinates (a linear parent transform applied).

    Raises InputError when the node is under a non-linear transform.
    """
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    ijk_to_ras = numpy_from_vtk_matrix(matrix)
    transform_node = node.GetParentTransformNode()
    if transform_node is None:
        return ijk_to_ras
    if not transform_node.IsTransformToWorldLinear():
        raise InputError(
            f"volume '{node.GetName()}' is under a non-linear transform '{transform_node.GetName()}': "
            "harden the transform (Data module, right-click, Harden transform) before segmenting"
        )
    to_world = vtk.vtkMatrix4x4()
    transform_node.GetMatrixTransformToWorld(to_world)
    return numpy_from_vtk_matrix(to_world) @ ijk_to_ras


def volume_node_to_ct(volume_node) -> CTVolume:  # noqa: ANN001  (vtkMRMLScalarVolumeNode)
    """The voxels (float32 copy, [k, j, i]) and LPS world geometry of a scalar volume node."""
    import slicer.util

    if volume_node is None or volume_node.GetImageData() is None:
        raise InputError("no volume selected, or the volume has no voxels")
    if volume_node.GetImageData().GetNumberOfScalarComponents() != 1:
        raise InputError(f"volume '{volume_node.GetName()}' is not a scalar (single-component) volume")
    hu_zyx = np.array(slicer.util.arrayFromVolume(volume_node), dtype=np.float32, copy=True)
    if hu_zyx.ndim != 3:
        raise InputError(f"volume '{volume_node.GetName()}' is not 3D (shape {hu_zyx.shape})")
    geometry = geometry_from_ijk_to_ras(world_ijk_to_ras(volume_node))
    return CTVolume(hu_zyx=hu_zyx, geometry=geometry, source=f"Slicer volume '{volume_node.GetName()}'")


def image_data_from_array(array_zyx: np.ndarray):  # noqa: ANN201  (vtkImageData)
    """A vtkImageData (origin 0, spacing 1, identity directions) holding a deep copy of ``array_zyx``."""
    import vtk
    from vtk.util import numpy_support

    array = np.ascontiguousarray(array_zyx)
    image = vtk.vtkImageData()
    image.SetDimensions(int(array.shape[2]), int(array.shape[1]), int(array.shape[0]))
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(array.ravel(), deep=True))
    return image


def ct_to_volume_node(ct: CTVolume, scene, name: str = "CT"):  # noqa: ANN001, ANN201
    """Add a vtkMRMLScalarVolumeNode named ``name`` to ``scene`` with ``ct``'s voxels and exact grid."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetIJKToRASMatrix(vtk_matrix_from_numpy(ct.geometry.ijk_to_ras()))
    node.SetAndObserveImageData(image_data_from_array(ct.hu_zyx.astype(np.float32, copy=False)))
    node.CreateDefaultDisplayNodes()
    return node
