"""A BHSD-like folder of phantoms, and its index reader.

Layout (paths in dataset.json are relative to the dataset folder, nnU-Net/BHSD style)::

    <out_dir>/dataset.json              written last: a folder without it is incomplete
    <out_dir>/imagesTr/<case>.nii.gz     int16 HU, labelled cases
    <out_dir>/labelsTr/<case>.nii.gz     uint8 BHSD labels (0 bg, 1 EDH, 2 IPH, 3 IVH, 4 SAH, 5 SDH)
    <out_dir>/imagesUnlabeled/<case>.nii.gz   int16 HU, cases whose labels are withheld

``dataset.json`` holds ``name``, ``labels``, ``numTraining``, ``training`` [{image, label}],
``numUnlabeled``, ``unlabeled`` [{image}], and ``generator`` with the master seed, each case's seed,
the config and the scanner profile, so any case can be regenerated with ``generate_phantom``, each
case's drawn scanner artefacts (``case_artefacts``) and its real-geometry variant
(``case_geometry_variants``; "none" unless ``PhantomConfig.geometry_variants`` is set).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..classes import BACKGROUND_LABEL, HEMORRHAGE_CLASSES
from ..datasets import INDEX_NAME
from ..errors import InputError, OutputError
from ..fsutil import atomic_path
from ..progress import ProgressCallback, silent
from ..volumes.geometry import Geometry
from .config import SCANNER_PROFILES, Phantom, PhantomConfig, ScannerProfile
from .generate import case_artefacts, generate_phantom

IMAGES_DIR, LABELS_DIR, UNLABELED_DIR = "imagesTr", "labelsTr", "imagesUnlabeled"


def case_seeds(seed: int, n: int) -> list[int]:
    """``n`` per-case seeds derived from ``seed`` (numpy SeedSequence spawn; stable across versions)."""
    return [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(int(seed)).spawn(n)]


def prepare_dataset_dir(out_dir: Path, overwrite: bool) -> None:
    """Create ``out_dir`` or clear an earlier dataset in it (only with ``overwrite``)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"dataset path exists and is not a directory: {out_dir}")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise OutputError(f"dataset directory is not empty, not overwriting (use --overwrite; "
                              f"from Python, overwrite=True): {out_dir}")
        (out_dir / INDEX_NAME).unlink(missing_ok=True)  # first, so a half-rewritten folder never looks complete
        for sub in (IMAGES_DIR, LABELS_DIR, UNLABELED_DIR):
            for old in (out_dir / sub).glob("*.nii.gz"):
                old.unlink()
    if not out_dir.parent.is_dir():
        raise OutputError(f"parent directory does not exist: {out_dir.parent}")
    for sub in ("", IMAGES_DIR, LABELS_DIR, UNLABELED_DIR):
        (out_dir / sub).mkdir(exist_ok=True)


def write_case_nifti(array_zyx: np.ndarray, geometry: Geometry, path: Path) -> None:
    """Write one (K, J, I) array on ``geometry`` as compressed NIfTI, atomically."""
    import SimpleITK as sitk  # noqa: N813

    image = sitk.GetImageFromArray(array_zyx)
    geometry.to_sitk(image)
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)


def hu_int16(hu_zyx: np.ndarray) -> np.ndarray:
    """HU rounded to int16, the storage type of CT NIfTI files."""
    return np.clip(np.rint(hu_zyx), -32768, 32767).astype(np.int16)


def write_dataset(
    out_dir: Path,
    n: int,
    seed: int,
    labeled_fraction: float = 0.5,
    config: PhantomConfig = PhantomConfig(),  # noqa: B008 (frozen, immutable)
    scanner: ScannerProfile = SCANNER_PROFILES["standard"],
    overwrite: bool = False,
    progress: ProgressCallback = silent,
    on_case: Callable[[int, str, Phantom], None] | None = None,
) -> Path:
    """Generate ``n`` phantoms into ``out_dir`` (BHSD-like layout above); return the dataset.json path.

    The first ``round(n * labeled_fraction)`` cases are labelled, the rest unlabelled. Every file is
    written atomically; dataset.json comes last. Raises OutputError for a non-empty ``out_dir``
    unless ``overwrite`` (then the earlier dataset's NIfTI files and index are removed first).
    ``on_case(index, case_id, phantom)`` is called after each case is written (e.g. to measure it).
    """
    if n < 1:
        raise InputError(f"number of cases must be >= 1, got {n}")
    if not 0.0 <= labeled_fraction <= 1.0:
        raise InputError(f"labeled_fraction must be in [0, 1], got {labeled_fraction}")
    out_dir = Path(out_dir)
    prepare_dataset_dir(out_dir, overwrite)
    seeds = case_seeds(seed, n)
    n_labeled = round(n * labeled_fraction)
    training, unlabeled, seed_of_case, variant_of_case = [], [], {}, {}
    for index, case_seed in enumerate(seeds):
        case_id = f"phantom_{index:04d}"
        seed_of_case[case_id] = case_seed
        phantom = generate_phantom(case_seed, config, scanner)
        variant_of_case[case_id] = phantom.variant
        if index < n_labeled:
            write_case_nifti(hu_int16(phantom.hu_zyx), phantom.geometry, out_dir / IMAGES_DIR / f"{case_id}.nii.gz")
            write_case_nifti(phantom.labels_zyx, phantom.geometry, out_dir / LABELS_DIR / f"{case_id}.nii.gz")
            training.append({"image": f"./{IMAGES_DIR}/{case_id}.nii.gz", "label": f"./{LABELS_DIR}/{case_id}.nii.gz"})
        else:
            write_case_nifti(hu_int16(phantom.hu_zyx), phantom.geometry, out_dir / UNLABELED_DIR / f"{case_id}.nii.gz")
            unlabeled.append({"image": f"./{UNLABELED_DIR}/{case_id}.nii.gz"})
        if on_case is not None:
            on_case(index, case_id, phantom)
        progress("phantoms", (index + 1) / n, f"case {index + 1}/{n}")
    index_path = out_dir / INDEX_NAME
    with atomic_path(index_path) as tmp:
        index = _index_json(training, unlabeled, seed, seed_of_case, config, scanner, variant_of_case)
        tmp.write_text(json.dumps(index, indent=2))
    return index_path


def bhsd_index(name: str, description: str, training: list, unlabeled: list) -> dict:
    """The common part of a BHSD-like ``dataset.json`` (labels in the BHSD convention); callers add
    ``test`` and ``generator``."""
    labels = {str(BACKGROUND_LABEL): "background", **{str(c.label): c.key for c in HEMORRHAGE_CLASSES}}
    return {
        "name": name,
        "description": description,
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": labels,
        "numTraining": len(training),
        "training": training,
        "numUnlabeled": len(unlabeled),
        "unlabeled": unlabeled,
    }


def _index_json(
    training: list,
    unlabeled: list,
    seed: int,
    seed_of_case: dict,
    config: PhantomConfig,
    scanner: ScannerProfile,
    variant_of_case: dict,
) -> dict:
    return {
        **bhsd_index("SSSSegment synthetic head-CT phantoms",
                     "Synthetic non-contrast head CT with hemorrhage labels (BHSD label convention)",
                     training, unlabeled),
        "generator": {
            "package": "SSSSegmentLib.phantoms",
            "seed": int(seed),
            "case_seeds": seed_of_case,
            "config": asdict(config),
            "scanner": asdict(scanner),
            "case_artefacts": {case: asdict(case_artefacts(s, config, scanner)) for case, s in seed_of_case.items()},
            "case_geometry_variants": variant_of_case,
        },
    }
