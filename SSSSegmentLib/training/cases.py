"""Which cases a training run uses: BHSD-like ``dataset.json`` folders (phantoms or the real BHSD).

``dataset.json`` (nnU-Net / BHSD style, paths relative to the folder): ``training`` [{image, label}]
(BHSD: the 96 training cases), optional ``test`` ([{image, label}] or [image]; BHSD: the 96 test
cases, never used for training), optional ``unlabeled`` ([{image}] or [image]). An extra folder of
unlabeled NIfTI files can be added (``TrainConfig.unlabeled_dir``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..volumes.geometry import CTVolume

INDEX_NAME = "dataset.json"
NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass(frozen=True)
class CasePaths:
    """One case: its image and (for labeled cases) its label map file."""

    case_id: str
    image: Path
    label: Path | None = None


@dataclass(frozen=True)
class DatasetSplit:
    """Labeled training, validation (held-out labeled), unlabeled and test cases."""

    labeled: tuple[CasePaths, ...]
    validation: tuple[CasePaths, ...]
    unlabeled: tuple[CasePaths, ...]
    test: tuple[CasePaths, ...]


def case_id_of(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _resolve(root: Path, entry: object, what: str) -> Path:
    if not isinstance(entry, str) or not entry:
        raise InputError(f"{root / INDEX_NAME}: {what} entry is not a path: {entry!r}")
    path = (root / entry).resolve()
    if not path.is_file():
        raise InputError(f"{root / INDEX_NAME}: {what} file listed but missing: {path}")
    return path


def _entries(root: Path, items: object, key: str, need_label: bool) -> list[CasePaths]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise InputError(f"{root / INDEX_NAME}: '{key}' must be a list")
    cases = []
    for item in items:
        image_entry = item.get("image") if isinstance(item, dict) else item
        image = _resolve(root, image_entry, f"{key} image")
        label = None
        if isinstance(item, dict) and item.get("label") is not None:
            label = _resolve(root, item["label"], f"{key} label")
        if need_label and label is None:
            raise InputError(f"{root / INDEX_NAME}: {key} case {image.name} has no label")
        cases.append(CasePaths(case_id_of(image), image, label))
    return cases


def nifti_files(folder: Path) -> list[Path]:
    """NIfTI files of a folder, sorted by name (InputError when the folder does not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"unlabeled folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(NIFTI_SUFFIXES))


def load_split(dataset_dir: Path | str, val_cases: int = 0, unlabeled_dir: Path | str | None = None,
               max_labeled: int | None = None, max_unlabeled: int | None = None) -> DatasetSplit:
    """Read ``dataset.json``: the last ``val_cases`` training cases become the validation set."""
    root = Path(dataset_dir)
    index_path = root / INDEX_NAME
    if not index_path.is_file():
        raise InputError(f"not a dataset folder (no {INDEX_NAME}): {root}")
    try:
        data = json.loads(index_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read {index_path}: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{index_path}: expected a JSON object")
    labeled = _entries(root, data.get("training"), "training", need_label=True)
    unlabeled = _entries(root, data.get("unlabeled"), "unlabeled", need_label=False)
    if unlabeled_dir is not None:
        unlabeled += [CasePaths(case_id_of(p), p) for p in nifti_files(Path(unlabeled_dir))]
    test = _entries(root, data.get("test"), "test", need_label=False)
    if val_cases >= len(labeled):
        raise InputError(f"{index_path}: {len(labeled)} labeled case(s) cannot spare {val_cases} for validation")
    validation = labeled[len(labeled) - val_cases:] if val_cases else []
    labeled = labeled[: len(labeled) - val_cases]
    labeled = labeled[:max_labeled] if max_labeled is not None else labeled
    unlabeled = unlabeled[:max_unlabeled] if max_unlabeled is not None else unlabeled
    return DatasetSplit(tuple(labeled), tuple(validation), tuple(unlabeled), tuple(test))


def read_case(case: CasePaths) -> tuple[CTVolume, np.ndarray | None]:
    """The case's CT volume and its label map (uint8 [k, j, i]) on the same grid, or None."""
    from ..volumes.io import read_volume

    volume = read_volume(case.image)
    if case.label is None:
        return volume, None
    import SimpleITK as sitk

    try:
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(case.label)))
    except RuntimeError as exc:
        raise InputError(f"cannot read label map {case.label}: {exc}") from None
    if labels.shape != volume.hu_zyx.shape:
        raise InputError(f"{case.label.name}: label shape {labels.shape} differs from image {volume.hu_zyx.shape}")
    if labels.min() < 0 or labels.max() > 5:
        raise InputError(f"{case.label.name}: labels must be 0..5 (BHSD), found {labels.min()}..{labels.max()}")
    return volume, labels.astype(np.uint8)
