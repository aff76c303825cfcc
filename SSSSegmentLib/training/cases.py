"""Which cases a training run uses: BHSD-like ``dataset.json`` folders (phantoms or the real BHSD).

``dataset.json`` (nnU-Net / BHSD style, paths relative to the folder): ``training`` [{image, label}]
(BHSD: the 96 training cases), optional ``test`` ([{image, label}] or [image]; BHSD: the 96 test
cases, never used for training), optional ``unlabeled`` ([{image}] or [image]). An extra folder of
unlabeled NIfTI files can be added (``TrainConfig.unlabeled_dir``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..datasets import INDEX_NAME, CasePaths, case_id_of, nifti_files, read_dataset_index
from ..errors import InputError
from ..volumes.geometry import CTVolume


@dataclass(frozen=True)
class DatasetSplit:
    """Labeled training, validation (held-out labeled), unlabeled and test cases."""

    labeled: tuple[CasePaths, ...]
    validation: tuple[CasePaths, ...]
    unlabeled: tuple[CasePaths, ...]
    test: tuple[CasePaths, ...]


def load_split(dataset_dir: Path | str, val_cases: int = 0, unlabeled_dir: Path | str | None = None,
               max_labeled: int | None = None, max_unlabeled: int | None = None,
               extra_dataset_dirs: tuple[Path | str, ...] = ()) -> DatasetSplit:
    """Read ``dataset.json``: the last ``val_cases`` training cases become the validation set.

    The cases of ``extra_dataset_dirs`` (more ``dataset.json`` folders) join the labeled, unlabeled
    and test lists after the validation cases are taken from ``dataset_dir``.
    """
    index = read_dataset_index(dataset_dir)
    labeled, unlabeled, test = list(index.labeled), list(index.unlabeled), list(index.test)
    if unlabeled_dir is not None:
        unlabeled += [CasePaths(case_id_of(p), p) for p in nifti_files(Path(unlabeled_dir))]
    index_path = index.root / INDEX_NAME
    if val_cases >= len(labeled):
        raise InputError(f"{index_path}: {len(labeled)} labeled case(s) cannot spare {val_cases} for validation")
    validation = labeled[len(labeled) - val_cases:] if val_cases else []
    labeled = labeled[: len(labeled) - val_cases]
    for extra in extra_dataset_dirs:
        extra_index = read_dataset_index(extra)
        labeled += extra_index.labeled
        unlabeled += extra_index.unlabeled
        test += extra_index.test
    labeled = labeled[:max_labeled] if max_labeled is not None else labeled
    unlabeled = unlabeled[:max_unlabeled] if max_unlabeled is not None else unlabeled
    return DatasetSplit(tuple(labeled), tuple(validation), tuple(unlabeled), tuple(test))


def read_case(case: CasePaths) -> tuple[CTVolume, np.ndarray | None]:
    """The case's CT volume and its label map (uint8 [k, j, i], values 0..5) on the same grid, or None."""
    from ..volumes import read_labelmap, read_volume

    volume = read_volume(case.image)
    if case.label is None:
        return volume, None
    labels, geometry, _ = read_labelmap(case.label)
    if labels.shape != volume.hu_zyx.shape or not geometry.allclose(volume.geometry, atol=1e-3):
        raise InputError(f"{case.label.name}: label grid {labels.shape} does not match image {volume.hu_zyx.shape}")
    return volume, labels
