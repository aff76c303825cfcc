"""Synthetic hemorrhages inserted into a real (or phantom) bleed-free head CT, with BHSD labels.

Real backgrounds give the model real anatomy, skull bands and calcifications with known labels.
Arrays are indexed ``[k, j, i]``; ``Geometry.spacing_mm`` is ITK order (i, j, k); points are LPS mm
(x left, y posterior, z superior). The background must be free of blood: nothing here checks that.

Anatomy comes from the engine (``prompts.anatomy``): the intracranial cavity and the depth below the
inner table (mm). On top of it, per scan (``prepare_background``): an in-plane smoothed HU copy used to
tell CSF (0-20 HU, and nearer the scan's CSF level than its brain level) from parenchyma (25-40 HU),
and the scan's noise (std and grain of the high-pass residual of deep parenchyma).

Each lesion is a fractional occupancy ``f`` in [0, 1] per voxel: a signed distance ``phi`` (mm,
negative inside) is turned into the covered fraction of a voxel's width, ``clip(0.5 - phi / w, 0, 1)``
with ``w`` the in-plane pixel size, averaged over ``sub_slices`` positions across the slice thickness
(partial volume along k). CSF-replacing lesions (IVH, SAH) also scale ``f`` by the voxel's CSF
fraction. Then ``HU = (1 - f) * background + f * blood + noise * sqrt(1 - (1 - f)^2)`` (the noise of the
replaced part comes back, with the scan's std and grain); the label is the class where ``f > 0.5``.
Lesions never take bone (>= ``bone_hu``) or voxels outside the cavity, and never overlap.

Shapes (``depth`` = distance below the inner table, ``foot`` = the nearest inner-table point):

- EDH: biconvex lens on the calvaria: ``depth < H (1 - q^2)``, ``q = |foot - p0| / r`` (volume
  ``pi r^2 H / 2`` under a flat table: a paraboloid cap is half its cylinder).
- SDH: crescent: ``depth < T sqrt(1 - q^2)`` over a long elliptical footprint along the convexity,
  on one side of the midline (volume ``2/3 pi a b T`` before the midline cut).
- IPH: irregular ellipsoid in parenchyma, scaled until the labelled volume is the drawn one; dense
  core, less dense rim, unlabelled hypodense oedema ring.
- IVH: the dependent part (larger LPS y: posterior, the patient is supine) of a deep CSF component.
- SAH: blood in the sulcal CSF 3-15 mm below the inner table over a round patch.
"""

from __future__ import annotations

from .insertion_background import estimate_noise, prepare_background
from .insertion_config import Background, InsertedLesion, InsertionConfig, InsertionResult, NoiseModel
from .insertion_core import insert_into, insert_lesions
from .insertion_dataset import background_name, write_inserted_dataset

__all__ = [
    "Background",
    "InsertedLesion",
    "InsertionConfig",
    "InsertionResult",
    "NoiseModel",
    "background_name",
    "estimate_noise",
    "insert_into",
    "insert_lesions",
    "prepare_background",
    "write_inserted_dataset",
]
