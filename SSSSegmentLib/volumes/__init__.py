"""Volume I/O and geometry (DICOM, NIfTI, NRRD, .seg.nrrd).

Public API: :func:`read_volume`, :func:`write_volume`, :func:`validate_ct`,
:func:`write_labelmap`, :func:`read_labelmap`, :class:`Geometry`, :class:`CTVolume`.
Importing this package loads numpy only; SimpleITK, pydicom, pynrrd and scipy load on first use.
"""

from .checks import validate_ct
from .geometry import CTVolume, Geometry
from .io import read_volume, write_volume
from .segfile import read_labelmap, write_labelmap

__all__ = ["CTVolume", "Geometry", "read_labelmap", "read_volume", "validate_ct", "write_labelmap",
           "write_volume"]
