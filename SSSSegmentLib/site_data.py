"""The site training set: corrected cases saved from Slicer ("Add to site training set").

A site folder is a BHSD-like dataset folder the training harness reads as it is::

    SITE/dataset.json          {"format": "sssseg-site-v1", "training": [{"image", "label", "normal", "added"}]}
    SITE/imagesTr/site_0001.nrrd   CT, int16 HU
    SITE/labelsTr/site_0001.nrrd   our five-class label map (uint8 0..5); all zero = a confirmed-normal scan

De-identified by construction: files are named by a running number only, and are written from the
pixel array and the grid alone (no DICOM tags, no names, no UIDs reach a header). NRRD keeps a
gantry-tilted (sheared) grid exactly, which NIfTI cannot. The manifest is replaced atomically after
both files are in place, so a kill leaves the set as it was (at worst two unlisted files).
Plain Python (numpy + SimpleITK): no Slicer import.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .classes import HEMORRHAGE_CLASSES
from .datasets import INDEX_NAME
from .errors import InputError, OutputError
from .fsutil import atomic_path
from .volumes.geometry import CTVolume, Geometry

SITE_FORMAT = "sssseg-site-v1"
SITE_ENV = "SSSSEG_SITE_DIR"
_NAME_RE = re.compile(r"^site_(\d{4,})\.nrrd$")
_MAX_LABEL = max(c.label for c in HEMORRHAGE_CLASSES)


@dataclass(frozen=True)
class SiteCase:
    """A case written into the site folder (paths absolute)."""

    case_id: str
    image: Path
    label: Path
    normal: bool


def default_site_dir() -> Path:
    """Where Slicer's "Add to site training set" writes: ``$SSSSEG_SITE_DIR``, else ``site`` beside
    the model registry's default folder (``<user data dir>/sssseg/site``)."""
    import os

    from .registry.location import user_data_dir

    value = os.environ.get(SITE_ENV, "").strip()
    return Path(value).expanduser() if value else user_data_dir() / "sssseg" / "site"


def read_site_manifest(site_dir: Path | str) -> dict:
    """The site's ``dataset.json`` (an empty manifest when the folder has none yet)."""
    path = Path(site_dir) / INDEX_NAME
    if not path.is_file():
        return {"format": SITE_FORMAT, "training": []}
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the site manifest {path}: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("training", []), list):
        raise InputError(f"{path} is not a site manifest (a JSON object with a 'training' list)")
    return manifest


def add_site_case(site_dir: Path | str, hu_zyx: np.ndarray, geometry: Geometry, labels_zyx: np.ndarray) -> SiteCase:
    """Save a CT (K, J, I) in HU and its corrected label map (same shape, values 0..5) into ``site_dir``.

    An all-zero label map is a confirmed-normal scan. Raises InputError for a label map of another
    shape or with values outside our five classes, OutputError when the folder cannot be written
    (nothing listed in the manifest is ever overwritten).
    """
    from .volumes import write_labelmap, write_volume

    site = Path(site_dir)
    labels = _checked_labels(np.asarray(labels_zyx), np.asarray(hu_zyx).shape)
    manifest = read_site_manifest(site)
    for sub in ("imagesTr", "labelsTr"):
        try:
            (site / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the site folder {site / sub}: {exc}") from None
    name = _next_name(site)
    volume = CTVolume(np.asarray(hu_zyx, dtype=np.float32), geometry, source="site case")
    normal = not labels.any()
    entry = {"image": f"imagesTr/{name}", "label": f"labelsTr/{name}", "normal": normal,
             "added": dt.date.today().isoformat()}
    manifest = {**manifest, "format": SITE_FORMAT, "training": [*manifest.get("training", []), entry]}
    written: list[Path] = []
    try:
        written.append(write_volume(site / "imagesTr" / name, volume))
        written.append(write_labelmap(site / "labelsTr" / name, labels, geometry))
        with atomic_path(site / INDEX_NAME) as tmp:
            tmp.write_text(json.dumps(manifest, indent=2))
    except (OSError, OutputError) as exc:
        for path in written:  # our own new files, never listed: nothing a user made
            path.unlink(missing_ok=True)
        why = "the disk is full" if getattr(exc, "errno", None) == errno.ENOSPC else str(exc)
        raise OutputError(f"cannot add the case to {site}: {why}; the site training set is unchanged") from None
    return SiteCase(name[: -len(".nrrd")], *written, normal)


def _checked_labels(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if labels.shape != tuple(shape):
        raise InputError(f"the label map's shape {labels.shape} differs from the CT's {tuple(shape)}")
    if labels.size and (labels.min() < 0 or labels.max() > _MAX_LABEL or not np.all(labels == np.round(labels))):
        raise InputError(f"the label map holds values outside our classes 0..{_MAX_LABEL} "
                         "(only the five hemorrhage segments can be added to the site training set)")
    return labels.astype(np.uint8)


def _next_name(site: Path) -> str:
    """``site_NNNN.nrrd``, one past every number used by a file or the manifest (never reused)."""
    used = [int(m.group(1)) for sub in ("imagesTr", "labelsTr") for p in (site / sub).iterdir()
            if (m := _NAME_RE.match(p.name))]
    return f"site_{max(used, default=0) + 1:04d}.nrrd"
