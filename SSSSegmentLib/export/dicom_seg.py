"""Write a segmentation as a DICOM Segmentation object (SEG, SOP class 1.2.840.10008.5.1.4.1.1.66.4).

One SEG per run, written with ``highdicom`` beside (or instead of) the ``.seg.nrrd``:

- **one segment per class** the engine looks for, all five (EDH, IPH, IVH, SAH, SDH), in the BHSD
  order, so segment number = label value; an empty class keeps its segment and has no frame (when
  nothing at all was found, highdicom writes every frame of every segment, empty);
- each segment: label (the class name), description (the class key), SNOMED CT category
  *Morphologically Abnormal Structure* and type *Hemorrhage* with the class's anatomic region
  (:mod:`..classes`), algorithm type AUTOMATIC with the algorithm's identification (SSSSegment, its
  version, the model file's name, sha256 and preset as parameters) and the class colour as the
  recommended display colour (CIELab);
- **frames on the source images' planes** (binary, one per image and non-empty segment), each
  referencing its source image's SOP Instance UID; labels of a resampled series (gantry tilt, uneven
  spacing) are mapped back onto the acquired planes by nearest voxel (:mod:`.source_planes`);
- the source's Patient and Study module attributes (highdicom copies them; Type 2 ones the source
  lacks are written empty, nothing is invented), its Frame of Reference, a new Series and SOP
  Instance, and no file path or host name anywhere.

A SEG needs source DICOM images: :func:`check_dicom_seg_output` refuses other inputs before any work.
Nothing here logs patient data (highdicom's own warnings, which can quote the patient's name, are
silenced while it runs).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..classes import DICOM_TERMINOLOGY_CATEGORY, HEMORRHAGE_CLASSES, TERMINOLOGY_TYPE, CodedTerm
from ..errors import InputError, OutputError
from ..fsutil import atomic_path, check_writable_output, file_sha256
from ..volumes.dicom import SeriesInfo, read_dicom_header, select_series
from ..volumes.geometry import Geometry
from .source_planes import labels_on_images

DICOM_SEG_SUFFIX = ".dcm"
ALGORITHM_NAME = "SSSSegment"
SERIES_DESCRIPTION = "SSSSegment hemorrhage"
CONTENT_LABEL = "HEMORRHAGE"
SERIES_NUMBER_OFFSET = 1000  # the SEG's SeriesNumber: the source's plus this (PACS lists them together)
# Patient/Study attributes of Type 2 (present, may be empty) that highdicom reads from the first source
# image; a source without them gets them empty, as the standard allows.
_TYPE2_SOURCE_ATTRIBUTES = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber",
                            "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName")
LogFn = Callable[[str], None]


@dataclass(frozen=True)
class DicomSegTarget:
    """Where a SEG goes and the source series it describes (its image files, in the folder's order)."""

    path: Path
    source_files: tuple[Path, ...]


@dataclass(frozen=True)
class ModelIdentity:
    """The model that made the labels: weights file name (no folder), its sha256 and the preset."""

    name: str
    sha256: str
    preset: str


def is_dicom_seg_path(path: Path | str | None) -> bool:
    """True when ``path`` names a DICOM SEG output (``.dcm``, any case)."""
    return path is not None and Path(path).name.lower().endswith(DICOM_SEG_SUFFIX)


def dicom_series_of_input(input_path: Path, series_uid: str | None) -> SeriesInfo | None:
    """The DICOM series ``read_volume`` reads for ``input_path`` (a folder, or one DICOM file and its
    folder), or None when the input is not DICOM. InputError as ``read_volume`` raises it: missing
    input, no series, several series and no ``series_uid``, an unknown ``series_uid``."""
    input_path = Path(input_path)
    if not input_path.exists():
        raise InputError(f"input does not exist: {input_path}")
    if input_path.is_dir():
        return select_series(input_path, series_uid)
    header = read_dicom_header(input_path)
    if header is None:
        return None
    return select_series(input_path.parent, series_uid or str(header.get("SeriesInstanceUID", "")) or None)


def check_dicom_seg_output(path: Path, input_path: Path, series_uid: str | None,
                           overwrite: bool = False) -> DicomSegTarget:
    """Check, before any work, that a SEG can be written to ``path`` for ``input_path``.

    OutputError (exit 4) when ``path`` does not end with ``.dcm``, the input is not DICOM (a NIfTI or
    NRRD file has no source images to reference), ``path`` is one of the source images, or ``path``
    cannot be created (exists without ``overwrite``, folder missing or read-only). InputError (exit 2)
    as the DICOM reader raises it (several series and no ``series_uid``, ...).
    """
    path = Path(path)
    if not is_dicom_seg_path(path):
        raise OutputError(f"a DICOM SEG output must end with {DICOM_SEG_SUFFIX}, got '{path.name}'")
    series = dicom_series_of_input(Path(input_path), series_uid)
    if series is None:
        raise OutputError(f"cannot write DICOM SEG {path.name}: the input {Path(input_path).name} is not DICOM, "
                          "and a SEG must reference its source DICOM images; segment the DICOM series, or "
                          "write .seg.nrrd / .nii.gz")
    if any(path.resolve() == source.resolve() for source in series.files):
        raise OutputError(f"the DICOM SEG {path.name} would replace one of the source images: write it elsewhere")
    check_writable_output(path, overwrite=overwrite)
    return DicomSegTarget(path, series.files)


def model_identity(weights: Path | None, preset: str) -> ModelIdentity:
    """The identity of a model's weights file (``None``: random weights, sha256 "none")."""
    if weights is None:
        return ModelIdentity("untrained (random weights)", "none", preset)
    return ModelIdentity(Path(weights).name, file_sha256(weights), preset)


def write_dicom_seg(target: DicomSegTarget, labels_zyx: np.ndarray, geometry: Geometry,
                    identity: ModelIdentity, overwrite: bool = False, log: LogFn | None = None) -> Path:
    """Write the label map (uint8 (K, J, I), values 0..5, on ``geometry``, LPS) as a DICOM SEG.

    Frames lie on the source images of ``target`` (see the module docstring). Atomic: on any failure
    ``target.path`` is not created (or, with ``overwrite``, left as it was).
    """
    import pydicom

    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in target.source_files]
    mapped = labels_on_images(np.asarray(labels_zyx, dtype=np.uint8), geometry, headers)
    segmentation = build_segmentation(headers, mapped.frames, identity)
    check_writable_output(target.path, overwrite=overwrite)
    with atomic_path(target.path) as tmp:
        segmentation.save_as(tmp, enforce_file_format=True)
    if log is not None:
        how = ("copied from the grid" if mapped.exact else
               "mapped back from the resampled grid onto the acquired planes, nearest voxel")
        log(f"DICOM SEG: {len(HEMORRHAGE_CLASSES)} segments, {int(segmentation.NumberOfFrames)} frames on "
            f"{len(headers)} source images ({how})")
    return target.path


def build_segmentation(headers: Sequence, frames: np.ndarray, identity: ModelIdentity):  # noqa: ANN201
    """The highdicom Segmentation of ``frames`` (uint8 (S, rows, columns), values = segment numbers 0..5),
    frame s on source image ``headers[s]`` (pydicom headers, completed in place with the empty Type 2
    Patient/Study attributes they lack)."""
    import highdicom as hd

    for header in headers:
        for keyword in _TYPE2_SOURCE_ATTRIBUTES:
            if keyword not in header:
                setattr(header, keyword, "")
    first = headers[0]
    with _quiet_highdicom():
        segmentation = hd.seg.Segmentation(
            source_images=list(headers), pixel_array=frames, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=segment_descriptions(identity), series_instance_uid=hd.UID(),
            series_number=_series_number(first), sop_instance_uid=hd.UID(), instance_number=1,
            manufacturer=ALGORITHM_NAME, manufacturer_model_name=ALGORITHM_NAME, software_versions=__version__,
            device_serial_number=__version__, content_label=CONTENT_LABEL,
            content_description="Intracranial hemorrhage, automatic", content_creator_name=None)
    segmentation.SeriesDescription = SERIES_DESCRIPTION
    segmentation.ContentCreatorName = ""  # Type 2: present, empty (an algorithm, not a person, made it)
    return segmentation


def segment_descriptions(identity: ModelIdentity) -> list:
    """One highdicom SegmentDescription per class, numbered by label value (1 EDH .. 5 SDH)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(
        name=ALGORITHM_NAME, family=codes.cid7162.ArtificialIntelligence, version=__version__,
        source=ALGORITHM_NAME,
        parameters={"model": identity.name, "model_sha256": identity.sha256, "preset": identity.preset})
    descriptions = []
    for hclass in HEMORRHAGE_CLASSES:
        description = hd.seg.SegmentDescription(
            segment_number=hclass.label, segment_label=hclass.name,
            segmented_property_category=_coded(DICOM_TERMINOLOGY_CATEGORY),
            segmented_property_type=_coded(TERMINOLOGY_TYPE),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm,
            anatomic_regions=[_coded(hclass.anatomic_region)],
            display_color=hd.color.CIELabColor.from_rgb(*hclass.color_rgb))
        description.SegmentDescription = hclass.key
        descriptions.append(description)
    return descriptions


def _coded(term: CodedTerm):  # noqa: ANN202  (highdicom.sr.CodedConcept)
    from highdicom.sr import CodedConcept

    return CodedConcept(value=term.value, scheme_designator=term.scheme, meaning=term.meaning)


def _series_number(source) -> int:  # noqa: ANN001  (pydicom.Dataset)
    """The source's SeriesNumber plus ``SERIES_NUMBER_OFFSET`` (the offset alone when it has none)."""
    try:
        return int(source.get("SeriesNumber") or 0) + SERIES_NUMBER_OFFSET
    except (TypeError, ValueError):
        return SERIES_NUMBER_OFFSET


@contextlib.contextmanager
def _quiet_highdicom() -> Iterator[None]:
    """Silence highdicom's warnings and log lines (they can quote the patient's name) while it runs."""
    logger = logging.getLogger("highdicom")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
