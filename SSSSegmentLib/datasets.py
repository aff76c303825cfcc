"""Reading BHSD-like dataset folders (phantom sets written by ``phantoms.write_dataset``, or BHSD).

``dataset.json`` (nnU-Net / BHSD style, paths relative to the folder): ``training`` [{image, label}],
optional ``unlabeled`` ([{image}] or [image]; an image may be a DICOM series folder) and ``test``
([{image, label}] or [image]; BHSD's 96 test cases, never used for training).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

INDEX_NAME = "dataset.json"
NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass(frozen=True)
class CasePaths:
    """One case: its image and (for labelled cases) its label-map file, absolute paths."""

    case_id: str
    image: Path
    label: Path | None = None


@dataclass(frozen=True)
class DatasetIndex:
    """The cases a dataset folder lists."""

    root: Path
    labeled: tuple[CasePaths, ...]
    unlabeled: tuple[CasePaths, ...]
    test: tuple[CasePaths, ...] = ()


def case_id_of(path: Path) -> str:
    """A file name without its image extension (``case_001.nii.gz`` -> ``case_001``)."""
    name = path.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def nifti_files(folder: Path) -> list[Path]:
    """NIfTI files of a folder, sorted by name (InputError when the folder does not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(NIFTI_SUFFIXES))


def _resolve(root: Path, entry: object, what: str, allow_folder: bool = False) -> Path:
    """The listed path, absolute; ``allow_folder``: a DICOM series folder is accepted (unlabeled scans)."""
    if not isinstance(entry, str) or not entry:
        raise InputError(f"{root / INDEX_NAME}: {what} entry is not a path: {entry!r}")
    path = (root / entry).resolve()
    if not (path.is_file() or (allow_folder and path.is_dir())):
        raise InputError(f"{root / INDEX_NAME}: {what} file listed but missing: {path}")
    return path


def _entries(root: Path, items: object, key: str, need_label: bool) -> tuple[CasePaths, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise InputError(f"{root / INDEX_NAME}: '{key}' must be a list")
    cases = []
    for item in items:
        image = _resolve(root, item.get("image") if isinstance(item, dict) else item, f"{key} image",
                         allow_folder=key == "unlabeled")
        label = None
        if isinstance(item, dict) and item.get("label") is not None:
            label = _resolve(root, item["label"], f"{key} label")
        if need_label and label is None:
            raise InputError(f"{root / INDEX_NAME}: {key} case {image.name} has no label")
        cases.append(CasePaths(case_id_of(image), image, label))
    return tuple(cases)


def read_dataset_index(dataset_dir: Path | str) -> DatasetIndex:
    """The labelled, unlabelled and test cases listed in a folder's ``dataset.json``.

    Raises InputError when dataset.json is missing or malformed or a listed file does not exist.
    """
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
    return DatasetIndex(
        root.resolve(),
        _entries(root, data.get("training"), "training", need_label=True),
        _entries(root, data.get("unlabeled"), "unlabeled", need_label=False),
        _entries(root, data.get("test"), "test", need_label=False),
    )
