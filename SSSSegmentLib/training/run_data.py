"""The data of a run (slice caches, validation volumes) and the views of one micro-batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InputError
from ..model import get_preset
from ..model.heads import HEAD_STRIDE
from ..progress import ProgressCallback
from .augment import photometric, random_cutmix, weak_view
from .cases import load_split, read_case
from .config import TrainConfig
from .data import SliceCache, build_cache, from_unit_uint8, sample_slices, step_generator
from .distributed import DistInfo
from .losses import STRIDE, pooled_labels
from .methods import Views
from .validate import ValidationCase


@dataclass
class RunData:
    """Labeled and unlabeled slice caches (unlabeled = labeled images when the dataset has none)
    and, on rank 0, the validation cases."""

    labeled: SliceCache
    unlabeled: SliceCache | None
    validation: list[ValidationCase]


def load_run_data(config: TrainConfig, dist: DistInfo, progress: ProgressCallback) -> RunData:
    """Read the split and build the caches (every rank reads the same data; sampling differs by rank)."""
    split = load_split(config.dataset_dir, config.val_cases, config.unlabeled_dir,
                       config.max_labeled, config.max_unlabeled, config.extra_dataset_dirs)
    if not split.labeled:
        raise InputError(f"{config.dataset_dir}: no labeled training case")
    size = get_preset(config.preset).image_size
    labeled = build_cache(split.labeled, size, with_labels=True, progress=progress)
    unlabeled = None
    if config.uses_unlabeled:
        unlabeled = build_cache(split.unlabeled, size, with_labels=False, progress=progress,
                                find_blood_like=config.unlabeled_blood_slice_fraction > 0)
        if unlabeled is None:
            unlabeled = SliceCache(labeled.images, None, labeled.case_of_slice, labeled.blood_slices)
    validation = []
    if dist.is_main:
        for case in split.validation:
            volume, labels = read_case(case)
            validation.append(ValidationCase(case.case_id, volume, labels))
    return RunData(labeled, unlabeled, validation)


def make_views(data: RunData, config: TrainConfig, step: int, rank: int, micro: int,
               device: torch.device) -> tuple[Views, torch.Generator]:
    """The views of one micro-batch; the returned generator drives the method's own randomness."""
    gen = step_generator(config.seed, step, rank, micro)
    idx_x = sample_slices(data.labeled, config.batch_labeled, config.blood_slice_fraction, gen)
    img_x = from_unit_uint8(data.labeled.images[idx_x]).to(device)
    img_x, lab_x = weak_view(img_x, data.labeled.labels[idx_x].to(device), gen)
    views = Views(img_x=img_x, mask_x=pooled_labels(lab_x, HEAD_STRIDE), mask_x_dec=pooled_labels(lab_x, STRIDE))
    if data.unlabeled is None:
        return views, gen
    idx_u = sample_slices(data.unlabeled, config.batch_unlabeled, config.unlabeled_blood_slice_fraction, gen)
    img_u_w, _ = weak_view(from_unit_uint8(data.unlabeled.images[idx_u]).to(device), None, gen)
    size = img_u_w.shape[-1]
    views.img_u_w = img_u_w
    views.mix1 = random_cutmix(img_u_w.shape[0], size, gen)
    views.mix2 = random_cutmix(img_u_w.shape[0], size, gen)
    views.img_u_s1 = views.mix1.apply(photometric(img_u_w, gen))
    views.img_u_s2 = views.mix2.apply(photometric(img_u_w, gen))
    return views, gen
