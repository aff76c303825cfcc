"""Training data pieces: dataset split (BHSD layout), views, CutMix bookkeeping, prompts, curves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from SSSSegmentLib.errors import InputError, SSSSegError
from SSSSegmentLib.training import TrainConfig
from SSSSegmentLib.training.augment import random_cutmix, weak_view
from SSSSegmentLib.training.cases import load_split, read_case
from SSSSegmentLib.training.curves import draw_curves
from SSSSegmentLib.training.data import SliceCache, blood_like_slices, build_cache, sample_slices
from SSSSegmentLib.training.losses import component_prompts, pooled_labels, pooled_valid


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))


def _bhsd_like(root: Path) -> Path:
    """A BHSD-style folder: 3 training cases, 1 test case, and an extra unlabeled folder."""
    rng = np.random.default_rng(0)
    training = []
    for n in range(3):
        _write(root / "imagesTr" / f"c{n}.nii.gz", rng.integers(-1000, 1000, (3, 16, 16)).astype(np.int16))
        _write(root / "labelsTr" / f"c{n}.nii.gz", np.full((3, 16, 16), n % 6, np.uint8))
        training.append({"image": f"./imagesTr/c{n}.nii.gz", "label": f"./labelsTr/c{n}.nii.gz"})
    _write(root / "imagesTs" / "t0.nii.gz", np.zeros((3, 16, 16), np.int16) + 40)
    _write(root / "unl" / "u0.nii.gz", np.zeros((3, 16, 16), np.int16) + 30)
    index = {"training": training, "test": ["./imagesTs/t0.nii.gz"]}
    (root / "dataset.json").write_text(json.dumps(index))
    return root


def test_bhsd_split_holds_out_validation_and_adds_unlabeled_folder(tmp_path: Path) -> None:
    root = _bhsd_like(tmp_path)
    split = load_split(root, val_cases=1, unlabeled_dir=root / "unl")
    assert [c.case_id for c in split.labeled] == ["c0", "c1"]
    assert [c.case_id for c in split.validation] == ["c2"]
    assert [c.case_id for c in split.unlabeled] == ["u0"] and split.unlabeled[0].label is None
    assert [c.case_id for c in split.test] == ["t0"]
    volume, labels = read_case(split.validation[0])
    assert volume.hu_zyx.shape == labels.shape == (3, 16, 16) and int(labels.max()) == 2
    with pytest.raises(InputError, match="cannot spare 3"):
        load_split(root, val_cases=3)
    with pytest.raises(InputError, match="no dataset.json"):
        load_split(tmp_path / "unl")


def test_weak_view_moves_labels_with_the_image() -> None:
    image = torch.zeros(2, 3, 64, 64)
    labels = torch.zeros(2, 64, 64, dtype=torch.uint8)
    image[:, :, 20:30, 40:50] = 5.0
    labels[:, 20:30, 40:50] = 2
    out, out_labels = weak_view(image, labels, torch.Generator().manual_seed(3))
    for b in range(2):
        bright = out[b, 0] > 2.5
        assert bright.sum() > 30
        overlap = (bright & (out_labels[b] == 2)).sum() / bright.sum()
        assert overlap > 0.85


def test_cutmix_mixes_pseudo_labels_exactly_like_images() -> None:
    gen = torch.Generator().manual_seed(1)
    mix = random_cutmix(4, 64, gen, p=1.0)
    ids = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 3, 64, 64)
    mixed_images = mix.apply(ids)[:, 0]  # pixel value = which slice it came from
    pseudo = torch.arange(4).view(4, 1, 1).expand(4, 16, 16)
    mixed_pseudo = mix.apply(pseudo)
    assert torch.equal(mixed_images[:, ::4, ::4].long(), mixed_pseudo)
    assert bool((mixed_pseudo != pseudo).any())


def test_cutmix_takes_its_box_from_another_slice_and_refuses_a_batch_of_one() -> None:
    """Two slices filled with 0 and 1: inside slice 0's box the pixels are 1, inside slice 1's they
    are 0. One slice would be mixed with itself (a silent no-op): refused, in the config too."""
    mix = random_cutmix(2, 64, torch.Generator().manual_seed(2), p=1.0)
    ids = torch.arange(2, dtype=torch.float32).view(2, 1, 1, 1).expand(2, 3, 64, 64)
    mixed = mix.apply(ids)[:, 0]
    for b, other in ((0, 1.0), (1, 0.0)):
        assert bool(mix.box[b].any()) and bool((mixed[b][mix.box[b]] == other).all())
        assert bool((mixed[b][~mix.box[b]] == float(b)).all())
    with pytest.raises(SSSSegError, match="at least 2 slices"):
        random_cutmix(1, 64, torch.Generator().manual_seed(2))
    for method in ("fixmatch", "unimatch_v2", "sss"):
        with pytest.raises(SSSSegError, match=f"batch_unlabeled must be >= 2 for {method}.*itself"):
            TrainConfig(method=method, batch_unlabeled=1)
    assert TrainConfig(method="sss", batch_unlabeled=2).batch_unlabeled == 2
    assert TrainConfig(method="supervised", batch_unlabeled=0).batch_unlabeled == 0


def test_pooled_valid_needs_every_pixel() -> None:
    valid = torch.ones(1, 8, 8, dtype=torch.bool)
    valid[0, 0, 0] = False
    pooled = pooled_valid(valid, 2)
    assert pooled.shape == (1, 4, 4) and not bool(pooled[0, 0, 0]) and int(pooled.sum()) == 15


def test_pooled_labels_and_component_boxes() -> None:
    labels = torch.zeros(1, 64, 64, dtype=torch.uint8)
    labels[0, 8:24, 12:20] = 5  # 16 x 8 px -> 4 x 2 cells
    labels[0, 40:48, 40:48] = 2
    labels[0, 60:62, 0:2] = 3  # a quarter of a 4x4 cell: too small to claim it
    assert torch.equal(pooled_labels(pooled_labels(labels, 2), 2), pooled_labels(labels, 4))
    small = pooled_labels(labels, 4)
    assert small.shape == (1, 16, 16)
    assert int((small == 5).sum()) == 8 and int((small == 2).sum()) == 4
    prompts = component_prompts(small, max_prompts=8, gen=torch.Generator().manual_seed(0), jitter=0.0)
    assert prompts is not None and prompts.count == 2
    boxes = {tuple(b.tolist()) for b in prompts.boxes}
    assert (12.0, 8.0, 19.0, 23.0) in boxes and (40.0, 40.0, 47.0, 47.0) in boxes
    assert float(prompts.targets.sum()) == 12.0
    for n in range(prompts.count):  # each point is the centre of a cell of its own component
        x, y = (int(v) // 4 for v in prompts.points[n, 0])
        assert prompts.targets[n, 0, y, x] == 1 and prompts.point_labels[n, 0] == 1
        assert float(prompts.points[n, 0, 0]) % 4 == 1.5
    assert component_prompts(torch.zeros(1, 16, 16, dtype=torch.long), 4, torch.Generator()) is None


def test_curves_png_is_drawn_from_the_log(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    records = [{"step": s, "loss": 1.0 / s, "mask_ratio": 0.5} for s in range(1, 6)]
    records.append({"step": 5, "val_mean_dice": 0.4, "val_dice_SDH": None})
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    png = draw_curves(log, tmp_path / "curves.png")
    from PIL import Image

    with Image.open(png) as image:
        assert image.size[0] > image.size[1] > 100
        pixels = np.asarray(image.convert("RGB"))
    assert (pixels != 255).any(axis=2).mean() > 0.01  # something was drawn


def test_blood_like_slices_need_an_area_of_blood_density() -> None:
    hu_zyx = np.full((4, 64, 64), 35.0, np.float32)  # grey matter everywhere
    hu_zyx[1, 20:30, 20:30] = 70.0  # 10x10 px = 100 mm2 of blood
    hu_zyx[2, 5, :] = 70.0  # a one-pixel line (partial volume at the skull): opened away
    hu_zyx[3, 20:30, 20:30] = 400.0  # bone density is not blood
    assert blood_like_slices(hu_zyx, (1.0, 1.0, 5.0)).tolist() == [False, True, False, False]
    assert not blood_like_slices(hu_zyx, (0.4, 0.4, 5.0))[1]  # the same square is only 16 mm2


def test_blood_like_slices_find_the_bleeds_of_a_phantom() -> None:
    from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom

    # A clean acquisition: the inner-table band of strong artefacts is blood-like too (over seeds 0-5 at
    # the full artefact range the prior found 79% of bleed slices and flagged 19% of the others).
    clean = PhantomConfig(matrix=192, lesion_keys=("IPH", "SDH", "IVH"), artefact_strength=(0.0, 0.0))
    phantom = generate_phantom(5, clean)
    found = blood_like_slices(phantom.hu_zyx, phantom.geometry.spacing_mm)
    pixel_mm2 = phantom.geometry.spacing_mm[0] * phantom.geometry.spacing_mm[1]
    bleed_mm2 = (phantom.labels_zyx > 0).sum(axis=(1, 2)) * pixel_mm2
    assert found[bleed_mm2 >= 100].mean() >= 0.8
    assert found[bleed_mm2 == 0].mean() <= 0.2


def test_sample_slices_prefers_blood_slices_and_fraction_zero_is_uniform() -> None:
    cache = SliceCache(torch.zeros(50, 3, 4, 4, dtype=torch.uint8), None, np.zeros(50, int), np.array([3, 7]))
    idx = sample_slices(cache, 200, 1.0, torch.Generator().manual_seed(0))
    assert set(idx.tolist()) == {3, 7}
    gen, ref = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(sample_slices(cache, 20, 0.0, gen), torch.randint(50, (20,), generator=ref))
    assert torch.equal(torch.rand(3, generator=gen), torch.rand(3, generator=ref))  # same generator state
    mixed = sample_slices(cache, 400, 0.5, torch.Generator().manual_seed(2))
    share = np.isin(mixed.numpy(), [3, 7]).mean()
    assert 0.4 < share < 0.65


def test_unlabeled_cache_finds_blood_like_slices_only_when_asked(tmp_path: Path) -> None:
    root = _bhsd_like(tmp_path)
    scan = np.full((3, 32, 32), 35, np.int16)
    scan[2, 10:22, 10:22] = 70  # 144 mm2 of blood-density tissue on slice 2 (1 mm pixels)
    _write(tmp_path / "more" / "u1.nii.gz", scan)
    cases = load_split(root, unlabeled_dir=tmp_path / "more").unlabeled
    assert build_cache(cases, 64, with_labels=False, find_blood_like=True).blood_slices.tolist() == [2]
    assert build_cache(cases, 64, with_labels=False).blood_slices.size == 0


def test_extra_datasets_join_training_and_validation_stays_in_the_first(tmp_path: Path) -> None:
    from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom
    from SSSSegmentLib.phantoms.dataset import hu_int16, write_case_nifti
    from SSSSegmentLib.phantoms.insertion import write_inserted_dataset
    from SSSSegmentLib.training.config import TrainConfig

    _bhsd_like(tmp_path / "phantoms")
    head = generate_phantom(3, PhantomConfig(matrix=96, num_slices=14, p_no_lesion=1.0))
    (tmp_path / "real").mkdir()
    write_case_nifti(hu_int16(head.hu_zyx), head.geometry, tmp_path / "real" / "ct.nii.gz")
    write_inserted_dataset([tmp_path / "real" / "ct.nii.gz"], tmp_path / "inserted", 2, seed=1, keys=("IPH",))
    config = TrainConfig.from_dict({"dataset_dir": "phantoms", "extra_dataset_dirs": ["inserted"], "val_cases": 1},
                                   base_dir=tmp_path)
    assert config.extra_dataset_dirs == (str(tmp_path / "inserted"),)
    assert config.to_dict()["extra_dataset_dirs"] == [str(tmp_path / "inserted")]  # as config.json holds it
    split = load_split(config.dataset_dir, config.val_cases, extra_dataset_dirs=config.extra_dataset_dirs)
    assert [c.case_id for c in split.labeled] == ["c0", "c1", "ct_ins0000", "ct_ins0001"]
    assert [c.case_id for c in split.validation] == ["c2"]
    volume, labels = read_case(split.labeled[2])
    assert volume.hu_zyx.shape == labels.shape and (labels == 2).any()
    with pytest.raises(SSSSegError, match="extra_dataset_dirs"):
        TrainConfig(extra_dataset_dirs="inserted")
