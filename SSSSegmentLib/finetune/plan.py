"""What a fine-tune run trains on: the site's corrected cases split into training and held-out ones."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..datasets import CasePaths, nifti_files, read_dataset_index
from ..errors import InputError
from ..registry import GateRule
from .reference import ReferenceSpec

DEFAULT_HELDOUT_SHARE = 0.25
# Fine-tuning settings (TrainConfig fields) unless the request overrides them.
FINETUNE_DEFAULTS: dict = {"method": "sss", "lr": 1e-4, "warmup_steps": 10, "log_every": 5,
                           "checkpoint_every": 25, "batch_labeled": 4, "batch_unlabeled": 4}


@dataclass(frozen=True)
class FinetuneRequest:
    """One ``sssseg finetune`` call. ``overrides``: TrainConfig fields replacing ``FINETUNE_DEFAULTS``;
    ``reference``: the gate's fixed reference phantoms."""

    site_dir: Path
    registry_dir: Path
    unlabeled_dir: Path | None = None
    base: str | None = None
    steps: int = 300
    resume: bool = False
    heldout_share: float = DEFAULT_HELDOUT_SHARE
    gate: GateRule = GateRule()
    device: str = "auto"
    overrides: dict = field(default_factory=dict)
    reference: ReferenceSpec = ReferenceSpec()


@dataclass(frozen=True)
class SitePlan:
    """The split: ``train`` and ``heldout`` corrected cases, ``normal`` (empty-label) cases, ``unlabeled``."""

    train: tuple[CasePaths, ...]
    heldout: tuple[CasePaths, ...]
    normal: tuple[CasePaths, ...]
    unlabeled: tuple[CasePaths, ...]

    def counts(self) -> dict[str, int]:
        return {"labeled_train": len(self.train), "heldout": len(self.heldout), "normal": len(self.normal),
                "unlabeled": len(self.unlabeled)}

    def describe(self) -> str:
        ids = ", ".join(c.case_id for c in self.heldout)
        return (f"held out {len(self.heldout)} of {len(self.train) + len(self.heldout)} corrected case(s) for "
                f"validation ({ids}); training on {len(self.train)} corrected + {len(self.unlabeled)} unlabeled; "
                f"{len(self.normal)} confirmed-normal case(s) checked for false bleed")


def _is_normal(case: CasePaths) -> bool:
    from ..volumes import read_labelmap

    labels, _, _ = read_labelmap(case.label)
    return not labels.any()


def plan_site(site_dir: Path, unlabeled_dir: Path | None, heldout_share: float) -> SitePlan:
    """Split the site's corrected cases: the last ``heldout_share`` (at least 1) of those with a bleed
    are held out; at least one corrected case must stay for training."""
    labeled = list(read_dataset_index(site_dir).labeled)
    if len(labeled) < 2:
        raise InputError(f"{site_dir}: {len(labeled)} corrected case(s); fine-tuning needs at least 2 "
                         "(one to train on, one held out for validation)")
    normal = [c for c in labeled if _is_normal(c)]
    bleeding = [c for c in labeled if c not in normal]
    n_heldout = min(max(1, round(heldout_share * len(labeled))), len(labeled) - 1)
    pool = bleeding if len(bleeding) >= n_heldout else labeled
    heldout = pool[len(pool) - n_heldout:]
    train = [c for c in labeled if c not in heldout]
    unlabeled = unlabeled_scans(unlabeled_dir) if unlabeled_dir else []
    return SitePlan(tuple(train), tuple(heldout), tuple(normal), tuple(unlabeled))


def unlabeled_scans(folder: Path) -> list[CasePaths]:
    """The unlabeled scans of ``folder``, read in place: its NIfTI files, and each sub-folder (or the
    folder itself) holding DICOM files as one series."""
    from ..volumes.dicom import read_dicom_header

    def is_series(path: Path) -> bool:
        first = next((f for f in sorted(path.iterdir()) if f.is_file()), None)
        return first is not None and read_dicom_header(first) is not None

    scans = [CasePaths(p.name.split(".")[0], p) for p in nifti_files(folder)]
    folders = [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]
    scans += [CasePaths(p.name, p) for p in folders if is_series(p)]
    if not scans:
        raise InputError(f"{folder}: no unlabeled scan (NIfTI files or DICOM series folders) found")
    return scans


def write_run_index(plan: SitePlan, run_dir: Path) -> Path:
    """A dataset.json in ``run_dir`` listing training cases then held-out ones (absolute paths), so
    the training harness's ``val_cases`` (the last N) are exactly the held-out cases."""
    from ..fsutil import atomic_path

    entries = [{"image": str(c.image), "label": str(c.label)} for c in (*plan.train, *plan.heldout)]
    index = {"training": entries, "unlabeled": [str(c.image) for c in plan.unlabeled]}
    with atomic_path(run_dir / "dataset.json") as tmp:
        tmp.write_text(json.dumps(index, indent=2))
    return run_dir
