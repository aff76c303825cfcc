"""The on-site fine-tune on the ``lite`` backbone (LiteMedSAM's TinyViT encoder, frozen): the product's
``run_finetune`` from the bundled lite model trains only the level projection, DFE and coarse head, leaves
every encoder / prompt-encoder / decoder tensor (BatchNorm statistics included) as it was, and registers a
checkpoint that loads as a lite model (tiny phantoms, 2 CPU steps; the encoder costs about 1.5 s a slice)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from SSSSegmentLib.bundled_models import bundled_model_path
from SSSSegmentLib.finetune import FinetuneRequest, run_finetune
from SSSSegmentLib.finetune.reference import ReferenceSpec
from SSSSegmentLib.model import load_sss_checkpoint
from SSSSegmentLib.registry import ModelRegistry

TRAINED_PREFIXES = ("level_proj.", "dfe.", "coarse_head.")


@pytest.fixture(scope="module")
def lite_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """2 corrected phantoms with an IPH (96 x 96, 4 slices) and 1 unlabeled scan."""
    from SSSSegmentLib.datasets import read_dataset_index
    from SSSSegmentLib.phantoms import PhantomConfig, write_dataset
    from SSSSegmentLib.site_data import add_site_case
    from SSSSegmentLib.training.cases import read_case

    root = tmp_path_factory.mktemp("lite_site")
    config = PhantomConfig(matrix=96, num_slices=4, lesion_keys=("IPH",), lesion_size_quantiles=(0.6, 1.0))
    write_dataset(root / "bleeds", 3, seed=5, labeled_fraction=1.0, config=config)
    cases = list(read_dataset_index(root / "bleeds").labeled)
    for case in cases[:2]:
        volume, labels = read_case(case)
        add_site_case(root / "site", volume.hu_zyx, volume.geometry, labels)
    (root / "unlabeled").mkdir()
    shutil.copy(cases[2].image, root / "unlabeled" / "scan.nii.gz")
    return root / "site", root / "unlabeled"


def test_finetune_of_the_lite_model_trains_only_its_heads_and_registers_a_lite_checkpoint(
        lite_site: tuple[Path, Path], tmp_path: Path) -> None:
    site, unlabeled = lite_site
    base_path = bundled_model_path("lite")
    registry = ModelRegistry(tmp_path / "registry")
    registry.activate(registry.add_version(base_path, source="bundled lite model").version)
    quick = {"batch_labeled": 1, "batch_unlabeled": 2, "warmup_steps": 1, "log_every": 1, "checkpoint_every": 1,
             "lr": 1e-3, "val_every": 2}
    request = FinetuneRequest(site, tmp_path / "registry", unlabeled, steps=2, device="cpu", overrides=quick,
                              reference=ReferenceSpec(cases=1, matrix=96, num_slices=4))
    result = run_finetune(request)  # the product default method, sss (unlabeled scan used)
    assert result.steps_done == 2 and result.version.config["method"] == "sss"

    tuned = load_sss_checkpoint(result.version.model_path, device="cpu")
    assert tuned.preset.name == "lite"
    before = load_sss_checkpoint(base_path, device="cpu").state_dict()
    after = tuned.state_dict()
    assert after.keys() == before.keys()
    changed = {name for name in after if not torch.equal(after[name], before[name])}
    frozen = [name for name in after if not name.startswith(TRAINED_PREFIXES)]
    assert any(name.startswith("sam.image_encoder.") for name in frozen)  # the check covers the encoder
    assert not changed.intersection(frozen), sorted(changed.intersection(frozen))[:5]
    for prefix in TRAINED_PREFIXES:
        assert any(name.startswith(prefix) for name in changed), f"nothing of {prefix} trained"
