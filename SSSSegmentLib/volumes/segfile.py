"""Write and read hemorrhage label maps: 3D Slicer ``.seg.nrrd`` and plain NIfTI/NRRD.

Label maps are uint8 arrays indexed [k, j, i] with the values of ``classes.HEMORRHAGE_CLASSES``
(0 background, 1 EDH .. 5 SDH). The ``.seg.nrrd`` form is one layer holding all five segments,
each named, coloured and coded with SNOMED CT terminology so Slicer shows them as a segmentation.

:func:`read_labelmap` is the project's one reader of label-map files (Slicer module, engine and
evaluation): it maps any Slicer segmentation (3D or 4D, LPS or RAS, cropped or not) onto our class
values.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..classes import (
    CLASS_BY_LABEL,
    HEMORRHAGE_CLASSES,
    LEGACY_TYPE_CODES,
    TERMINOLOGY_CATEGORY,
    TERMINOLOGY_TYPE,
    HemorrhageClass,
)
from ..errors import InputError, OutputError
from ..fsutil import atomic_path, check_writable_output
from .geometry import Geometry
from .io import check_nifti_can_store, full_suffix

SEG_SUFFIX = ".seg.nrrd"
PLAIN_LABEL_SUFFIXES = (".nii.gz", ".nii", ".nrrd")
LABEL_SUFFIXES = (SEG_SUFFIX, *PLAIN_LABEL_SUFFIXES)  # ".seg.nrrd" first: it also ends with ".nrrd"
LPS_SPACE = "left-posterior-superior"
_LPS_NAMES = (LPS_SPACE, "lps")
_RAS_NAMES = ("right-anterior-superior", "ras")
_CONVERSION_PARAMETERS = (
    "Collapse labelmaps|1|Merge the labelmaps into as few shared labelmaps as possible.&"
    "Compute surface normals|1|Compute surface normals.&"
    "Crop to reference image geometry|0|Crop the model to the extent of reference geometry.&"
    "Decimation factor|0.0|Desired reduction in the total number of polygons.&"
    "Fractional labelmap oversampling factor|1|Fractional labelmap oversampling factor.&"
    "Joint smoothing|0|Perform joint smoothing.&"
    "Oversampling factor|1|Oversampling factor.&"
    "Smoothing factor|0.5|Smoothing factor.&"
    "Threshold fraction|0.5|Threshold fraction."
)


def slicer_terminology_tag(hclass: HemorrhageClass) -> str:
    """Slicer's ``TerminologyEntry`` value for a class (category~type~modifier~region context~region~mod)."""
    return ("Segmentation category and type - 3D Slicer General Anatomy list"
            f"~{TERMINOLOGY_CATEGORY.as_slicer()}~{TERMINOLOGY_TYPE.as_slicer()}~^^"
            f"~Anatomic codes - DICOM master list~{hclass.anatomic_region.as_slicer()}~^^")


def _terminology_codes(tags: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """((scheme, value) of the type, (scheme, value) of the anatomic region) in a segment's
    ``TerminologyEntry`` tag; ("", "") for a part that is missing."""
    match = re.search(r"TerminologyEntry:([^|]*)", tags)
    parts = match.group(1).split("~") if match else []

    def code(index: int) -> tuple[str, str]:
        fields = parts[index].split("^") if index < len(parts) else []
        return (fields[0], fields[1]) if len(fields) >= 2 else ("", "")

    return code(2), code(5)


def _class_by_terminology(tags: str) -> int | None:
    """Our label from the codes of a terminology tag: type Hemorrhage and an anatomic region that
    only one class has (Dura mater is EDH or SDH: not decided here), or a legacy type code."""
    (type_scheme, type_value), region = _terminology_codes(tags)
    if type_scheme != "SCT":
        return None
    if type_value in LEGACY_TYPE_CODES:
        return LEGACY_TYPE_CODES[type_value]
    if type_value != TERMINOLOGY_TYPE.value:
        return None
    labels = [c.label for c in HEMORRHAGE_CLASSES if (c.anatomic_region.scheme, c.anatomic_region.value) == region]
    return labels[0] if len(labels) == 1 else None


def _check_labels(labels_zyx: np.ndarray) -> np.ndarray:
    """``labels_zyx`` as uint8; ValueError unless 3D with values in 0..5."""
    labels = np.asarray(labels_zyx)
    if labels.ndim != 3:
        raise ValueError(f"label map must be 3D [k, j, i], got shape {labels.shape}")
    allowed = {0, *CLASS_BY_LABEL}
    present = {int(v) for v in np.unique(labels)}
    if not present <= allowed or (labels.dtype.kind == "f" and not np.all(labels == np.round(labels))):
        raise ValueError(f"label map holds values {sorted(present - allowed)} outside {sorted(allowed)}")
    return labels.astype(np.uint8)


def _extent_text(labels_zyx: np.ndarray, label: int) -> str:
    """Slicer's segment extent "i0 i1 j0 j1 k0 k1" (inclusive), or "0 -1 0 -1 0 -1" when empty."""
    k, j, i = np.nonzero(labels_zyx == label)
    if k.size == 0:
        return "0 -1 0 -1 0 -1"
    return f"{i.min()} {i.max()} {j.min()} {j.max()} {k.min()} {k.max()}"


def _space_fields(geometry: Geometry) -> dict:
    """NRRD ``space``, ``space directions`` (one row per axis i, j, k) and ``space origin`` (LPS)."""
    axes = geometry.direction_matrix * np.asarray(geometry.spacing_mm)[None, :]  # columns = axis vectors
    return {"space": LPS_SPACE, "space directions": axes.T + 0.0,  # + 0.0 turns -0 into 0
            "space origin": np.asarray(geometry.origin_lps, dtype=np.float64)}


def seg_nrrd_header(labels_zyx: np.ndarray, geometry: Geometry) -> dict:
    """Full pynrrd header of a one-layer Slicer segmentation holding all five classes."""
    header = {"dimension": 3, "kinds": ["domain"] * 3, "encoding": "gzip",
              **_space_fields(geometry),
              "Segmentation_MasterRepresentation": "Binary labelmap",
              "Segmentation_ContainedRepresentationNames": "Binary labelmap|",
              "Segmentation_ConversionParameters": _CONVERSION_PARAMETERS,
              "Segmentation_ReferenceImageExtentOffset": "0 0 0"}
    for n, hclass in enumerate(HEMORRHAGE_CLASSES):
        r, g, b = (c / 255.0 for c in hclass.color_rgb)
        header.update({
            f"Segment{n}_ID": hclass.key,
            f"Segment{n}_Name": hclass.name,
            f"Segment{n}_Color": f"{r:.6g} {g:.6g} {b:.6g}",
            f"Segment{n}_ColorAutoGenerated": "0",
            f"Segment{n}_Extent": _extent_text(labels_zyx, hclass.label),
            f"Segment{n}_LabelValue": str(hclass.label),
            f"Segment{n}_Layer": "0",
            f"Segment{n}_NameAutoGenerated": "0",
            f"Segment{n}_Tags": f"TerminologyEntry:{slicer_terminology_tag(hclass)}|",
        })
    return header


def write_labelmap(path: Path, labels_zyx: np.ndarray, geometry: Geometry, overwrite: bool = False) -> Path:
    """Write a label map [k, j, i] (values 0..5) on ``geometry``; the format follows the extension.

    ``.seg.nrrd``: a Slicer segmentation with all five classes as named, coloured, coded segments
    (also the empty ones). ``.nii``/``.nii.gz``/``.nrrd``: a plain uint8 label map. Atomic; raises
    OutputError for another extension, an existing file (unless ``overwrite``) or an unwritable
    directory, ValueError for an array that is not 3D or holds other values.
    """
    path = Path(path)
    is_seg = path.name.lower().endswith(SEG_SUFFIX)
    if not is_seg and full_suffix(path, PLAIN_LABEL_SUFFIXES) is None:
        raise OutputError(f"cannot write a label map to {path.name}: use {SEG_SUFFIX} (3D Slicer) "
                          f"or one of {', '.join(PLAIN_LABEL_SUFFIXES)}")
    labels = _check_labels(labels_zyx)
    check_nifti_can_store(path, geometry)
    check_writable_output(path, overwrite=overwrite)
    with atomic_path(path) as tmp:
        if is_seg:
            _write_seg_nrrd(tmp, labels, geometry)
        else:
            _write_plain_labelmap(tmp, labels, geometry)
    return path


def _write_seg_nrrd(path: Path, labels: np.ndarray, geometry: Geometry) -> None:
    import nrrd

    try:
        nrrd.write(str(path), labels, seg_nrrd_header(labels, geometry), index_order="C")
    except (OSError, nrrd.NRRDError) as exc:
        raise OutputError(f"could not write {path}: {exc}") from exc


def _write_plain_labelmap(path: Path, labels: np.ndarray, geometry: Geometry) -> None:
    import SimpleITK as sitk  # noqa: N813

    image = sitk.GetImageFromArray(labels)
    geometry.to_sitk(image)
    try:
        sitk.WriteImage(image, str(path), useCompression=True)
    except RuntimeError as exc:
        raise OutputError(f"could not write {path}: {str(exc).strip().splitlines()[-1]}") from exc


def read_labelmap(path: Path, strict: bool = True) -> tuple[np.ndarray, Geometry, dict[int, str]]:
    """Read a label map in OUR class values: (uint8 labels [k, j, i] 0..5, geometry, names).

    ``geometry`` is the file's own grid in LPS (a Slicer ``.seg.nrrd`` stored in RAS is converted;
    one Slicer cropped to the segments' extent keeps its cropped grid, whose origin says where it
    lies: padding it onto a reference grid is the caller's job, e.g. ``evaluation.on_grid_of``).
    ``names`` maps each class label to the name of the segment read for it (``.seg.nrrd``) or to the
    class name (plain NIfTI/NRRD: only the classes present).

    ``.seg.nrrd``: 3D (one layer) or Slicer's 4D form (one layer per group of segments, list axis
    first in the file); each segment is mapped to a class by name or ID (class key such as "IPH" or
    full name, case-insensitive), else by the codes of its terminology tag, else by a name that is
    just the class label number; later segments win where segments overlap. A
    ``.seg.nrrd`` without segment fields is read as a plain label map.

    ``strict`` (default): InputError for a segment that is not one of our classes (the message lists
    the accepted names) or a plain label value outside 0..5. ``strict=False`` drops those to
    background instead, for Slicer segmentations that hold the user's own segments beside ours.
    InputError also for a missing file, an unsupported extension or unreadable content.
    """
    path = Path(path)
    suffix = full_suffix(path, LABEL_SUFFIXES)
    if suffix is None:
        raise InputError(f"not a label map file (expected one of {', '.join(LABEL_SUFFIXES)}): {path}")
    if not path.is_file():
        raise InputError(f"label map does not exist: {path}")
    if suffix == SEG_SUFFIX:
        return _read_seg_nrrd(path, strict)
    return _read_plain_labelmap(path, strict)


def _class_labels(values: np.ndarray, path: Path, strict: bool) -> np.ndarray:
    """``values`` (a plain label map) as uint8 class labels; values outside 0..5 raise or become 0."""
    present = np.unique(values).tolist()
    bad = [v for v in present if v != int(v) or not 0 <= v <= max(CLASS_BY_LABEL)]
    if bad and strict:
        raise InputError(f"label values must be 0..{max(CLASS_BY_LABEL)}, found {bad[:10]}: {path}")
    if bad:
        values = np.where(np.isin(values, bad), 0, values)
    return np.asarray(values).astype(np.uint8)


def _class_names(labels: np.ndarray) -> dict[int, str]:
    """{label: class name} for the classes present in ``labels``."""
    return {int(v): CLASS_BY_LABEL[int(v)].name for v in np.unique(labels) if v != 0}


def _read_plain_labelmap(path: Path, strict: bool) -> tuple[np.ndarray, Geometry, dict[int, str]]:
    import SimpleITK as sitk  # noqa: N813

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"cannot read label map {path}: {str(exc).strip().splitlines()[-1]}") from exc
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"label map must be a 3D scalar image, got {image.GetDimension()}D with "
                         f"{image.GetNumberOfComponentsPerPixel()} component(s): {path}")
    labels = _class_labels(sitk.GetArrayFromImage(image), path, strict)
    return labels, Geometry.from_sitk(image), _class_names(labels)


def _geometry_from_nrrd(header: dict, path: Path) -> Geometry:
    """LPS geometry of the three spatial axes of a NRRD header (an RAS space is converted)."""
    space = str(header.get("space", "")).lower()
    if space not in _LPS_NAMES + _RAS_NAMES:
        raise InputError(f"{path}: unsupported NRRD space {space!r} (need left-posterior-superior)")
    rows = [np.asarray(d, dtype=np.float64) for d in header.get("space directions", [])]
    spatial = [d for d in rows if d.shape == (3,) and np.all(np.isfinite(d))]
    if len(spatial) != 3:
        raise InputError(f"{path}: needs three spatial 'space directions', found {len(spatial)}")
    axes = np.stack(spatial, axis=1)  # columns = axis vectors i, j, k
    origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=np.float64)
    if space in _RAS_NAMES:
        flip = np.diag([-1.0, -1.0, 1.0])
        axes, origin = flip @ axes, flip @ origin
    spacing = np.linalg.norm(axes, axis=0)
    return Geometry(spacing_mm=tuple(float(s) for s in spacing), origin_lps=tuple(float(o) for o in origin),
                    direction=tuple(float(x) for x in (axes / spacing[None, :]).ravel()))


def _segment_fields(header: dict) -> list[dict[str, str]]:
    """Per segment N (0, 1, ...): its header fields without the ``Segment<N>_`` prefix."""
    fields: dict[int, dict[str, str]] = {}
    for key, value in header.items():
        match = re.fullmatch(r"Segment(\d+)_(\w+)", key)
        if match:
            fields.setdefault(int(match.group(1)), {})[match.group(2)] = str(value)
    return [fields[n] for n in sorted(fields)]


def class_of_segment(segment: dict[str, str]) -> int | None:
    """Our label for a Slicer segment's fields (``Name``, ``ID``, ``Tags``), or None when not ours.

    By name or ID (class key or full name, case-insensitive), else by the terminology tag's codes
    (type Hemorrhage with the class's anatomic region, or a legacy type code), else by a name that
    is just a class label number.
    """
    for text in (segment.get("Name", ""), segment.get("ID", "")):
        wanted = text.strip().lower()
        for hclass in HEMORRHAGE_CLASSES:
            if wanted in (hclass.key.lower(), hclass.name.lower()):
                return hclass.label
    by_codes = _class_by_terminology(segment.get("Tags", ""))
    if by_codes is not None:
        return by_codes
    name = segment.get("Name", "").strip()
    return int(name) if name.isdigit() and int(name) in CLASS_BY_LABEL else None


def _read_seg_nrrd(path: Path, strict: bool) -> tuple[np.ndarray, Geometry, dict[int, str]]:
    import nrrd

    try:
        data, header = nrrd.read(str(path), index_order="C")
    except (nrrd.NRRDError, OSError, ValueError) as exc:
        raise InputError(f"cannot read segmentation {path}: {exc}") from exc
    if data.ndim == 3:
        layers = data[..., np.newaxis]
    elif data.ndim == 4 and str(header.get("kinds", ["list"])[0]) in ("list", "vector", "none"):
        layers = data  # C order puts the file's first (list) axis last: [k, j, i, layer]
    else:
        raise InputError(f"segmentation must be 3D or 4D with a leading list axis, "
                         f"got shape {data.shape}: {path}")
    geometry = _geometry_from_nrrd(header, path)
    segments = _segment_fields(header)
    if segments:
        labels, names = _labels_from_segments(layers, segments, path, strict)
        return labels, geometry, names
    if layers.shape[-1] != 1:
        raise InputError(f"4D segmentation without Segment<N>_ header fields: {path}")
    labels = _class_labels(layers[..., 0], path, strict)  # a plain label map under a .seg.nrrd name
    return labels, geometry, _class_names(labels)


def _labels_from_segments(layers: np.ndarray, segments: list[dict[str, str]], path: Path,
                          strict: bool) -> tuple[np.ndarray, dict[int, str]]:
    """Class labels [k, j, i] and {label: segment name} from segment layers [k, j, i, layer]."""
    labels = np.zeros(layers.shape[:3], dtype=np.uint8)
    names: dict[int, str] = {}
    unmapped = []
    for n, segment in enumerate(segments):
        name = segment.get("Name", segment.get("ID", f"Segment{n}"))
        our_label = class_of_segment(segment)
        if our_label is None:
            unmapped.append(name)
            continue
        layer = int(segment.get("Layer", n if layers.shape[-1] > 1 else 0))
        if not 0 <= layer < layers.shape[-1]:
            raise InputError(f"segment {n} refers to layer {layer} of {layers.shape[-1]}: {path}")
        labels[layers[..., layer] == int(segment.get("LabelValue", 1))] = our_label
        names[our_label] = name
    if unmapped and strict:
        accepted = ", ".join(f"{c.key} ({c.name})" for c in HEMORRHAGE_CLASSES)
        raise InputError(f"segments not recognised as hemorrhage classes: {unmapped}; "
                         f"name them {accepted}: {path}")
    return labels, names
