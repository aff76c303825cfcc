"""The decoder fine-tune on click prompts (training/decoder_tune.py, click_prompts.py, feature_bank.py):
only the prompt encoder and mask decoder change, the click loss falls, clicks land in the error."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from SSSSegmentLib.model import build_model, save_sss_checkpoint
from SSSSegmentLib.training.cases import load_split
from SSSSegmentLib.training.click_prompts import ClickPrompts, ClickSampling, add_corrective_clicks, first_prompts
from SSSSegmentLib.training.decoder_tune import (
    DecoderTuneConfig,
    click_loss,
    decode_rounds,
    decoder_parameters,
    run,
)
from SSSSegmentLib.training.feature_bank import build_bank

DECODER_PREFIXES = ("sam.sam_prompt_encoder.", "sam.sam_mask_decoder.")
S = 256  # tiny preset input size


@pytest.fixture(scope="module")
def model_and_bank(tiny_dataset: Path):
    torch.manual_seed(0)
    model = build_model("tiny")
    return model, build_bank(model, load_split(tiny_dataset).labeled, torch.device("cpu"))


def test_bank_features_decode_as_the_encoded_slice(model_and_bank, tiny_dataset: Path) -> None:
    """A stored slice decodes (nearly, float16 storage) as the same slice encoded by ``model.encode``
    does, and its labels are that slice's labels on the model grid."""
    from SSSSegmentLib.model.preprocess import ct_to_model_input
    from SSSSegmentLib.training.cases import read_case
    from SSSSegmentLib.training.data import labels_to_model_grid

    model, bank = model_and_bank
    row = int(np.flatnonzero(bank.labels.flatten(1).amax(1).numpy() > 0)[0])
    volume, labels = read_case(load_split(tiny_dataset).labeled[bank.case_of_slice[row]])
    k = int(bank.slice_k[row])
    images, frame = ct_to_model_input(volume.hu_zyx[k:k + 1], S)
    assert np.array_equal(bank.labels[row].numpy(), labels_to_model_grid(labels[k:k + 1], frame)[0])
    box, index = torch.tensor([[60.0, 60.0, 180.0, 180.0]]), torch.tensor([0])
    with torch.no_grad():
        direct, _ = model.decode(model.encode(images), index, box)
        stored, _ = model.decode(bank.features(model, torch.tensor([row]), torch.device("cpu")), index, box)
    assert torch.allclose(direct, stored, atol=0.05), float((direct - stored).abs().max())


def test_run_changes_only_the_decoder(model_and_bank, tiny_dataset: Path, tmp_path: Path) -> None:
    """A short run from a checkpoint: every weight outside the prompt encoder and mask decoder is
    bit-identical, conv_s0 / conv_s1 did train, and the metadata says how the decoder was trained."""
    model, _ = model_and_bank
    init = tmp_path / "init.safetensors"
    save_sss_checkpoint(init, model, {"inference": {"refine": False}})
    config = DecoderTuneConfig(dataset_dir=str(tiny_dataset), init_checkpoint=str(init),
                               output=str(tmp_path / "out.safetensors"), steps=3, batch_slices=2,
                               max_prompts=4, rounds=2, lr=1e-3, warmup_steps=1, val_cases=1, log_every=1)
    summary = run(config, log=lambda _line: None)
    before, after = load_file(str(init)), load_file(config.output)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(DECODER_PREFIXES) for k in changed)
    assert any("conv_s0" in k for k in changed) and any("conv_s1" in k for k in changed)
    from SSSSegmentLib.model import read_checkpoint_info

    info = read_checkpoint_info(config.output)["info"]
    assert info["inference"] == {"refine": False}
    assert info["decoder_finetune"]["config"]["rounds"] == 2
    assert len(summary["val_round_dice_after"]) == 3


def test_click_loss_falls_on_a_fixed_batch(model_and_bank) -> None:
    """Gradients reach the decoder through every round: 12 AdamW steps on the same prompts lower the loss."""
    base, bank = model_and_bank
    model = build_model("tiny")
    model.load_state_dict(base.state_dict())
    params = decoder_parameters(model)
    optimizer = torch.optim.AdamW(params, lr=2e-3)
    index = torch.arange(min(4, bank.num_slices))
    losses = []
    for _ in range(12):
        found = decode_rounds(model, bank, index, 2, 6, torch.Generator().manual_seed(3), ClickSampling())
        outputs, prompts = found
        assert len(outputs) == 3 and prompts.points.shape[1] >= 3  # a first point slot + 2 corrective clicks
        loss = click_loss(outputs, prompts)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0], losses


def test_decoder_parameters_are_prompt_encoder_and_mask_decoder(model_and_bank) -> None:
    model = build_model("tiny")
    params = {id(p) for p in decoder_parameters(model)}
    names = {n for n, p in model.named_parameters() if id(p) in params}
    assert names and all(n.startswith(DECODER_PREFIXES) for n in names)
    assert all(p.requires_grad == (id(p) in params) for p in model.parameters())
    assert {"sam.sam_mask_decoder.conv_s0.weight", "sam.sam_mask_decoder.conv_s1.weight"} <= names


def _square_prompt(target: bool) -> ClickPrompts:
    """One box prompt around a 40x40 square at rows/cols 20..59, off the slice's centre (the target, or
    an empty one); its window is cells 3..16 (pixels 12..67)."""
    mask = torch.zeros(1, 1, S, S)
    if target:
        mask[..., 20:60, 20:60] = 1.0
    return ClickPrompts(torch.tensor([0]), torch.tensor([[16.0, 16.0, 63.0, 63.0]]), torch.zeros(1, 1, 2),
                        torch.full((1, 1), -1), mask, torch.tensor([[3, 17, 3, 17]]))


def test_corrective_click_is_positive_on_a_miss_and_negative_on_a_false_region() -> None:
    gen, sampling = torch.Generator().manual_seed(0), ClickSampling(p_interior=1.0)
    missed = add_corrective_clicks(_square_prompt(True), torch.full((1, 1, 64, 64), -5.0), gen, sampling)
    assert missed.point_labels[0, -1] == 1
    x, y = missed.points[0, -1].tolist()
    assert 20 <= x < 60 and 20 <= y < 60
    false = add_corrective_clicks(_square_prompt(False), torch.full((1, 1, 64, 64), 5.0), gen, sampling)
    assert false.point_labels[0, -1] == 0
    x, y = false.points[0, -1].tolist()
    assert 12 <= x < 68 and 12 <= y < 68  # inside the window, not anywhere on the slice
    perfect = torch.full((1, 1, 64, 64), -5.0)
    perfect[..., 5:15, 5:15] = 5.0
    assert add_corrective_clicks(_square_prompt(True), perfect, gen, sampling).point_labels[0, -1] == -1


def test_first_prompts_cover_their_component_and_false_ones_are_empty() -> None:
    labels = torch.zeros(1, S, S, dtype=torch.long)
    labels[0, 40:80, 50:70] = 2
    coarse = torch.zeros(1, S // 2, S // 2, dtype=torch.long)
    coarse[0, 90:110, 90:110] = 5  # a coarse-head component far from any label
    sampling = ClickSampling(box_jitter=0.0, p_loose_box=0.0, p_coarse_box=0.0, p_first_point=1.0,
                             false_prompt_share=0.5)
    prompts = first_prompts(labels, coarse, 2, torch.Generator().manual_seed(0), sampling)
    assert prompts.count == 2
    real = int(np.flatnonzero(prompts.targets.flatten(1).sum(1).numpy() > 0)[0])
    assert prompts.boxes[real].tolist() == [50.0, 40.0, 69.0, 79.0]
    x, y = prompts.points[real, 0].tolist()
    assert labels[0, int(y), int(x)] == 2 and prompts.point_labels[real, 0] == 1
    false = 1 - real
    assert prompts.targets[false].sum() == 0 and 176 <= prompts.boxes[false, 0] <= 220


def test_config_refuses_unknown_sampling_keys(tmp_path: Path) -> None:
    from SSSSegmentLib.errors import SSSSegError

    base = DecoderTuneConfig(dataset_dir="d", init_checkpoint="i", output="o")
    with pytest.raises(SSSSegError, match="sampling"):
        dataclasses.replace(base, sampling={"p_clicks": 0.5})
