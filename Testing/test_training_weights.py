"""Which weights a training step changes (encoder freezing) and which checkpoint is kept as the best."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from training_helpers import train_config

from SSSSegmentLib.model import build_model, read_checkpoint_info
from SSSSegmentLib.training import loop
from SSSSegmentLib.training.distributed import DistInfo
from SSSSegmentLib.training.run_data import load_run_data
from SSSSegmentLib.training.validate import ValidationScores

SINGLE = DistInfo(0, 1, 0)


def _silent(*args: object, **kwargs: object) -> None:
    pass


@pytest.fixture(scope="module")
def sam2_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SAM-2 state dict in the official layout {"model": state_dict}."""
    torch.manual_seed(7)
    path = tmp_path_factory.mktemp("sam2") / "sam2_tiny_test.pt"
    torch.save({"model": build_model("tiny").sam.state_dict()}, path)
    return path


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def _changed(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> set[str]:
    return {name for name, p in module.named_parameters() if not torch.equal(p.detach(), before[name])}


def _one_step(config) -> tuple[loop._Run, set[str], set[str]]:  # noqa: ANN001
    """Build the run, take one optimizer step; (run, changed encoder params, changed decoder params)."""
    run = loop._Run(config, SINGLE, torch.device("cpu"), _silent)
    data = load_run_data(config, SINGLE, _silent)
    encoder, decoder = run.model.sam.image_encoder, run.model.sam.sam_mask_decoder
    encoder_before, decoder_before = _snapshot(encoder), _snapshot(decoder)
    run.train_step(data)
    return run, _changed(encoder, encoder_before), _changed(decoder, decoder_before)


def test_encoder_is_frozen_by_default_when_starting_from_sam2_weights(tiny_dataset, sam2_weights, tmp_path):  # noqa: ANN001
    config = train_config(tiny_dataset, tmp_path / "frozen", method="supervised", sam2_checkpoint=str(sam2_weights))
    run, encoder_changed, decoder_changed = _one_step(config)
    assert not any(p.requires_grad for p in run.model.sam.image_encoder.parameters())
    assert all(p.requires_grad for p in run.model.sam.sam_mask_decoder.parameters())
    assert all(p.requires_grad for p in run.model.coarse_head.parameters())
    assert encoder_changed == set()  # the SAM-2 encoder weights are kept exactly
    assert decoder_changed  # while the step did train the rest


def test_encoder_trains_when_asked(tiny_dataset, sam2_weights, tmp_path):  # noqa: ANN001
    """freeze_encoder: false overrides the default (from scratch the encoder trains too: config test)."""
    unfrozen = train_config(tiny_dataset, tmp_path, method="supervised", sam2_checkpoint=str(sam2_weights),
                            freeze_encoder=False)
    run, encoder_changed, _ = _one_step(unfrozen)
    assert all(p.requires_grad for p in run.model.sam.image_encoder.parameters()) and encoder_changed


def test_best_checkpoint_is_the_highest_validation_score(tiny_dataset, tmp_path, monkeypatch):  # noqa: ANN001
    """Validation scores 0.30, 0.55, 0.40 and NaN (counts as 0) at steps 1-4: best.safetensors is
    written at steps 1 and 2 and then kept (step 2, 0.55)."""
    config = train_config(tiny_dataset, tmp_path, method="supervised")
    run = loop._Run(config, SINGLE, torch.device("cpu"), _silent)
    scores = iter([0.30, 0.55, 0.40, math.nan])
    monkeypatch.setattr(loop, "evaluate_model", lambda *args: ValidationScores({}, next(scores), 0.0))
    best = tmp_path / loop.BEST_NAME
    expected = {1: (1, 0.30), 2: (2, 0.55), 3: (2, 0.55), 4: (2, 0.55)}
    for step, (best_step, best_dice) in expected.items():
        run.step = step
        loop._validate(run, SimpleNamespace(validation=()), tmp_path / "log.jsonl")
        info = read_checkpoint_info(best)["info"]
        assert (info["steps"], info["val_mean_dice"]) == (best_step, best_dice)
        assert run.best_score == best_dice
