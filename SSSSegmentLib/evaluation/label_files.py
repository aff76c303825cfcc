"""Read label maps for evaluation: NIfTI / NRRD (SimpleITK) and Slicer ``.seg.nrrd`` (pynrrd).

Every reader returns a :class:`LabelMap`: BHSD labels (0 background, 1..5 per
``SSSSegmentLib.classes``) as uint8 ``[k, j, i]`` with the grid in LPS (``Geometry``).

A Slicer ``.seg.nrrd`` stores either one 3D labelmap layer or a 4D array with one layer per
(group of) segment(s), the list axis first in the file; header fields ``Segment<N>_Layer``,
``Segment<N>_LabelValue``, ``Segment<N>_Name``, ``Segment<N>_ID`` and ``Segment<N>_Tags`` say which
voxels belong to which segment. Segments are mapped to our classes by name or ID (class key such
as "IPH" or full name, case-insensitive), else by the SNOMED CT type code in the terminology tag,
else by a name that is just the label number. Slicer may crop the stored array to the segments'
extent; :func:`on_grid_of` puts such a crop back onto the reference grid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..classes import CLASS_BY_LABEL, HEMORRHAGE_CLASSES
from ..errors import InputError
from ..volumes.geometry import Geometry

LABEL_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd")  # longest first: ".seg.nrrd" before ".nrrd"
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

    @property
    def size_ijk(self) -> tuple[int, int, int]:
        k, j, i = self.labels_zyx.shape
        return (i, j, k)


def label_suffix(path: Path) -> str | None:
    """The supported label-file extension of ``path`` (e.g. ".nii.gz"), or None if unsupported."""
    name = Path(path).name.lower()
    return next((s for s in LABEL_SUFFIXES if name.endswith(s)), None)


def read_label_map(path: Path) -> LabelMap:
    """Read a label map from .nii.gz, .nii, .nrrd or Slicer .seg.nrrd (InputError when unusable)."""
    path = Path(path)
    suffix = label_suffix(path)
    if suffix is None:
        raise InputError(f"not a label file (expected one of {', '.join(LABEL_SUFFIXES)}): {path}")
    if not path.is_file():
        raise InputError(f"label file not found: {path}")
    return _read_seg_nrrd(path) if suffix == ".seg.nrrd" else _read_with_sitk(path)


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


def _read_with_sitk(path: Path) -> LabelMap:
    import SimpleITK as sitk  # noqa: N813

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise InputError(f"cannot read label file {path}: {str(err).strip().splitlines()[-1]}") from err
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"label file must be a 3D scalar image, got {image.GetDimension()}D with "
            f"{image.GetNumberOfComponentsPerPixel()} component(s): {path}"
        )
    labels = _checked_labels(sitk.GetArrayFromImage(image), path)
    return LabelMap(labels, Geometry.from_sitk(image), str(path))


def _read_seg_nrrd(path: Path) -> LabelMap:
    import nrrd

    try:
        data, header = nrrd.read(str(path), index_order="C")
    except (nrrd.NRRDError, OSError, ValueError) as err:
        raise InputError(f"cannot read segmentation file {path}: {err}") from err
    if data.ndim == 3:
        layers = data[..., np.newaxis]
    elif data.ndim == 4 and str(header.get("kinds", ["list"])[0]) in ("list", "vector", "none"):
        layers = data  # C order puts the file's first (list) axis last: [k, j, i, layer]
    else:
        raise InputError(
            f"segmentation must be 3D or 4D with a leading list axis, got shape {data.shape}: {path}"
        )
    segments = _segment_fields(header)
    if segments:
        labels = _labels_from_segments(layers, segments, path)
    else:  # a plain labelmap stored under a .seg.nrrd name
        labels = _checked_labels(layers[..., 0], path) if layers.shape[-1] == 1 else None
        if labels is None:
            raise InputError(f"4D segmentation without Segment<N>_ header fields: {path}")
    return LabelMap(labels, _nrrd_geometry(header, path), str(path), may_be_cropped=True)


def _segment_fields(header: dict) -> list[dict[str, str]]:
    """Per segment N (0, 1, ...): its header fields without the ``Segment<N>_`` prefix."""
    fields: dict[int, dict[str, str]] = {}
    for key, value in header.items():
        match = re.fullmatch(r"Segment(\d+)_(\w+)", key)
        if match:
            fields.setdefault(int(match.group(1)), {})[match.group(2)] = str(value)
    return [fields[n] for n in sorted(fields)]


def _labels_from_segments(layers: np.ndarray, segments: list[dict[str, str]], path: Path) -> np.ndarray:
    """Our label map from the segment layers (later segments win where segments overlap)."""
    labels = np.zeros(layers.shape[:3], dtype=np.uint8)
    unmapped = []
    for n, segment in enumerate(segments):
        our_label = _class_of_segment(segment)
        if our_label is None:
            unmapped.append(segment.get("Name", segment.get("ID", f"Segment{n}")))
            continue
        layer = int(segment.get("Layer", n if layers.shape[-1] > 1 else 0))
        if not 0 <= layer < layers.shape[-1]:
            raise InputError(f"segment {n} refers to layer {layer} of {layers.shape[-1]}: {path}")
        labels[layers[..., layer] == int(segment.get("LabelValue", 1))] = our_label
    if unmapped:
        accepted = ", ".join(f"{c.key} ({c.name})" for c in HEMORRHAGE_CLASSES)
        raise InputError(
            f"segments not recognised as hemorrhage classes: {unmapped}; name them {accepted}: {path}"
        )
    return labels


def _class_of_segment(segment: dict[str, str]) -> int | None:
    """Our label for a segment (by name/ID, SNOMED type code, or bare label number), else None."""
    for text in (segment.get("Name", ""), segment.get("ID", "")):
        wanted = text.strip().lower()
        for cls in HEMORRHAGE_CLASSES:
            if wanted in (cls.key.lower(), cls.name.lower()):
                return cls.label
    tags = segment.get("Tags", "")
    for cls in HEMORRHAGE_CLASSES:
        if f"{cls.property_type.scheme}^{cls.property_type.value}^" in tags:
            return cls.label
    name = segment.get("Name", "").strip()
    return int(name) if name.isdigit() and int(name) in CLASS_BY_LABEL else None


def _nrrd_geometry(header: dict, path: Path) -> Geometry:
    """LPS geometry of the three spatial axes of a NRRD header (RAS spaces are converted)."""
    rows = [np.asarray(r, dtype=np.float64) for r in header.get("space directions", [])]
    axes = [r for r in rows if r is not None and r.shape == (3,) and np.all(np.isfinite(r))]
    if len(axes) != 3:
        raise InputError(f"segmentation lacks three spatial 'space directions': {path}")
    flip = np.array([-1.0, -1.0, 1.0]) if _is_ras(header.get("space", "")) else np.ones(3)
    spacing = [float(np.linalg.norm(a)) for a in axes]
    columns = np.stack([flip * a / s for a, s in zip(axes, spacing, strict=True)], axis=1)
    origin = flip * np.asarray(header.get("space origin", np.zeros(3)), dtype=np.float64)
    return Geometry(tuple(spacing), tuple(float(o) for o in origin), tuple(float(d) for d in columns.ravel()))


def _is_ras(space: str) -> bool:
    return str(space).lower() in ("right-anterior-superior", "ras")


def _checked_labels(array: np.ndarray, path: Path) -> np.ndarray:
    """``array`` as uint8 labels, or InputError when it holds values other than 0..5."""
    values = np.unique(array)
    bad = [v for v in values.tolist() if v != int(v) or not 0 <= v <= max(CLASS_BY_LABEL)]
    if bad:
        raise InputError(f"label values must be 0..{max(CLASS_BY_LABEL)}, found {bad[:10]}: {path}")
    return array.astype(np.uint8)


def _fmt(values) -> str:  # noqa: ANN001
    return "(" + ", ".join(f"{float(v):.4g}" for v in values) + ")"
