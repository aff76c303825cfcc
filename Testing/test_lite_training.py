"""Training the lite preset on stored frozen-encoder embeddings (training/encoder_bank.py, lite_train.py).

Expected values are hand computations on small arrays; the one test that encodes real slices uses two
slices of a small phantom (LiteMedSAM's encoder costs about 1.5 s a slice on a 2-core CPU).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from SSSSegmentLib.model import build_model
from SSSSegmentLib.training.encoder_bank import EncoderBank, encode_case, kept_slices, load_bank
from SSSSegmentLib.training.lite_train import LiteTrainConfig, crop_corners, cropped, train_on_bank


def _labels(k: int, labelled: list[int], size: int = 8) -> np.ndarray:
    labels = np.zeros((k, size, size), np.uint8)
    for z in labelled:
        labels[z, 2, 3] = 2
    return labels


def test_kept_slices_keeps_every_labelled_slice_and_some_negatives():
    labels = _labels(10, [2, 3, 7])
    inside = np.zeros(10, bool)
    inside[1:9] = True  # intracranial slices 1..8; unlabelled among them: 1, 4, 5, 6, 8
    keep = kept_slices(labels, inside, negatives=2, rng=np.random.default_rng(0))
    assert {2, 3, 7} <= set(keep.tolist())
    extra = set(keep.tolist()) - {2, 3, 7}
    assert len(extra) == 2 and extra <= {1, 4, 5, 6, 8}
    assert list(keep) == sorted(keep)


def test_kept_slices_spreads_a_cap_on_labelled_slices_evenly():
    """Thin-slice cases: 21 labelled slices (10..30) capped at 5 -> 10, 15, 20, 25, 30 (linspace by hand)."""
    labels = _labels(40, list(range(10, 31)))
    keep = kept_slices(labels, np.zeros(40, bool), negatives=3, rng=np.random.default_rng(0), max_labelled=5)
    assert keep.tolist() == [10, 15, 20, 25, 30]


def test_crop_corners_centre_on_a_labelled_pixel_and_stay_inside():
    labels = torch.zeros(2, 64, 64, dtype=torch.uint8)
    labels[0, 40, 60] = 3  # embedding cell (10, 15) on a 16-cell grid (4 pixels a cell)
    labels[1, 2, 2] = 1  # cell (0, 0): a crop centred there would start at -4, so it is clamped to 0
    corners = crop_corners(labels, cells=8, grid=16, on_label=1.0, gen=torch.Generator().manual_seed(0))
    assert corners == [(6, 8), (0, 0)]  # (10 - 4, min(15 - 4, 16 - 8)), clamped to (0, 0)


def test_cropped_takes_the_same_region_at_every_stride():
    grid = 4
    emb = torch.arange(2 * grid * grid, dtype=torch.float32).view(2, 1, grid, grid)
    img = emb.repeat_interleave(4, dim=-1).repeat_interleave(4, dim=-2)  # each cell as a 4x4 block
    corners = [(1, 2), (0, 0)]
    small, big = cropped(emb, corners, 2, grid), cropped(img, corners, 2, grid)
    assert small.shape == (2, 1, 2, 2) and big.shape == (2, 1, 8, 8)
    assert small[0, 0].tolist() == [[6.0, 7.0], [10.0, 11.0]]  # rows 1-2, columns 2-3 of 0..15
    torch.testing.assert_close(big[:, :, ::4, ::4], small)


def test_a_case_stored_without_its_strong_embedding_lends_the_weak_one(tmp_path):
    weak = torch.randn(2, 4, 3, 3).half()
    parts = {"emb_w": weak, "img_w": torch.zeros(2, 3, 12, 12, dtype=torch.uint8),
             "img_s": torch.ones(2, 3, 12, 12, dtype=torch.uint8), "labels": torch.zeros(2, 12, 12, dtype=torch.uint8)}
    torch.save(parts, tmp_path / "case_1.pt")
    torch.save({**parts, "emb_s": weak + 1}, tmp_path / "case_2.pt")
    bank = load_bank([tmp_path / "case_1.pt", tmp_path / "case_2.pt"])
    assert bank.num_slices == 4
    torch.testing.assert_close(bank.emb_s[:2], weak)
    torch.testing.assert_close(bank.emb_s[2:], weak + 1)


@pytest.fixture(scope="module")
def lite():
    torch.manual_seed(0)
    return build_model("lite")


def test_encode_case_stores_the_encoders_own_embedding(lite):
    from SSSSegmentLib.model import ct_to_model_input

    hu = np.random.default_rng(0).normal(30, 20, (3, 64, 64)).astype(np.float32)
    labels = _labels(3, [1], size=64)
    stored = encode_case(lite, hu, labels, np.array([1]), seed=0, bf16=False, strong_embedding=False)
    assert "emb_s" not in stored and stored["emb_w"].shape == (1, 256, 64, 64)
    images, _ = ct_to_model_input(hu[1:2], 256)
    with torch.no_grad():
        direct = lite.sam.image_encoder(images)["backbone_fpn"][0]
    torch.testing.assert_close(stored["emb_w"].float(), direct, atol=2e-3, rtol=2e-3)  # float16 storage
    assert int(stored["labels"].max()) == 2


def test_training_on_a_bank_learns_and_leaves_the_pretrained_encoder_alone(lite):
    """Eight slices whose label is a square where the embedding's channel 0 is high: the head must learn
    to find it (the supervised loss falls), and no encoder or decoder weight may move."""
    import copy

    gen = torch.Generator().manual_seed(0)
    n, grid = 8, 16
    emb = torch.randn(n, 256, grid, grid, generator=gen) * 0.1
    labels = torch.zeros(n, 64, 64, dtype=torch.uint8)
    for b in range(n):
        y, x = 2 + b, 3 + b % 4
        emb[b, 0, y:y + 4, x:x + 4] += 3.0
        labels[b, 4 * y:4 * y + 16, 4 * x:4 * x + 16] = 2
    img = torch.full((n, 3, 64, 64), 128, dtype=torch.uint8)
    bank = EncoderBank(emb.half(), emb.half(), img, img, labels)
    model = copy.deepcopy(lite)
    before = {k: v.clone() for k, v in model.sam.state_dict().items()}
    lines: list[str] = []
    cfg = LiteTrainConfig(steps=40, batch_labeled=4, batch_unlabeled=2, lr=3e-3, warmup_steps=2, crop_cells=0)
    teacher = train_on_bank(model, bank, cfg, log=lines.append, log_every=39)
    first, last = (float(line.split("loss_x ")[1].split()[0]) for line in (lines[0], lines[-1]))
    assert last < 0.7 * first, lines
    for key, value in model.sam.state_dict().items():
        torch.testing.assert_close(value, before[key], msg=key)
    assert not teacher.training
