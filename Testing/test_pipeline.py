"""The full inference pipeline with the tiny preset on a small synthetic head.

The untrained tiny model's coarse head predicts background everywhere, so to exercise prompts,
decoder refinement and fusion with real code the model is wrapped with an *oracle* coarse head
that returns the ground truth as logits; everything after the coarse head is the real pipeline.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from SSSSegmentLib import api
from SSSSegmentLib.inference import InferenceConfig, segment_volume
from SSSSegmentLib.volumes.geometry import CTVolume, Geometry

SPACING_MM = (0.9, 0.9, 5.0)
IPH = 2


def small_head(n_slices: int = 10, size: int = 96) -> tuple[CTVolume, np.ndarray]:
    """Air, skull ring (1000 HU), brain (35 HU) and an IPH blob (70 HU) spanning 4 slices."""
    k, j, i = np.mgrid[0:n_slices, 0:size, 0:size].astype(np.float32)
    radius = np.hypot(j - size / 2, i - size / 2)
    hu = np.full((n_slices, size, size), -1000.0, dtype=np.float32)
    hu[radius < 44] = 1000.0
    hu[radius < 40] = 35.0
    lesion = (np.hypot(j - 40, i - 52) < 7) & (k >= 3) & (k <= 6)
    hu[lesion] = 70.0
    labels = np.where(lesion, IPH, 0).astype(np.uint8)
    geometry = Geometry(SPACING_MM, origin_lps=(-40.0, -40.0, 0.0))
    return CTVolume(hu, geometry, source="test head"), labels


class OracleCoarseHead(torch.nn.Module):
    """Wraps an SSSModel; its coarse logits come from a given label map (slices in encode order)."""

    def __init__(self, model: torch.nn.Module, labels_zyx: np.ndarray) -> None:
        super().__init__()
        self.inner = model
        self.preset = model.preset
        self.labels = torch.from_numpy(labels_zyx.astype(np.int64))
        self.next_slice = 0

    def encode(self, images: torch.Tensor, images_strong: torch.Tensor | None = None):  # noqa: ANN201
        self.batch = (self.next_slice, self.next_slice + images.shape[0])
        self.next_slice += images.shape[0]
        return self.inner.encode(images)

    def coarse_logits(self, feats) -> torch.Tensor:  # noqa: ANN001
        lo, hi = self.batch
        size = self.preset.image_size // 2
        labels = self.labels[lo:hi]
        onehot = torch.nn.functional.one_hot(labels, 6).permute(0, 3, 1, 2).float()
        # Same aspect-preserving resize + bottom/right padding as the model input (stride 2).
        onehot = torch.nn.functional.interpolate(onehot, scale_factor=size / max(labels.shape[-2:]), mode="nearest")
        onehot = torch.nn.functional.pad(onehot, (0, size - onehot.shape[-1], 0, size - onehot.shape[-2]))
        return 20.0 * onehot - 10.0

    def coarse_logits_of(self, images: torch.Tensor) -> torch.Tensor:
        return self.coarse_logits(self.encode(images))  # SSSModel's contract (the streaming path calls it)

    def decode(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        return self.inner.decode(*args, **kwargs)


@pytest.fixture(scope="module")
def tiny_model() -> api.LoadedModel:
    """The tiny preset with random weights (seed 0), not the bundled model."""
    from SSSSegmentLib.model import build_model

    torch.manual_seed(0)
    return api.LoadedModel(build_model("tiny"), torch.device("cpu"), "untrained (random weights)", trained=False)


def test_untrained_tiny_model_runs_end_to_end_and_keeps_the_grid(tiny_model):
    """Untrained, the coarse head's background prior wins everywhere: no prompt, all background."""
    volume, _ = small_head()
    result = api.segment_volume(volume, tiny_model, InferenceConfig(batch_size=4))
    assert result.labels_zyx.shape == volume.shape_zyx and result.labels_zyx.dtype == np.uint8
    assert result.geometry == volume.geometry
    assert not result.labels_zyx.any() and not result.prompt_set.prompts
    assert result.volumes_ml == {"EDH": 0.0, "IPH": 0.0, "IVH": 0.0, "SAH": 0.0, "SDH": 0.0}
    assert result.encoder_batch_size == 4
    assert {"encode", "prompts", "refine"} <= set(result.timings_s)


def test_prompts_from_the_coarse_head_go_through_the_decoder_and_fuse(tiny_model):
    volume, truth = small_head()
    oracle = OracleCoarseHead(tiny_model.model, truth)
    coarse_only = segment_volume(volume, oracle, torch.device("cpu"), InferenceConfig(batch_size=3, refine=False))
    kept = coarse_only.labels_zyx
    assert set(np.unique(kept)) == {0, IPH}
    dice = 2 * np.sum((kept == IPH) & (truth == IPH)) / (np.sum(kept == IPH) + np.sum(truth == IPH))
    assert dice > 0.8, f"the PCPG should keep the blob (Dice {dice:.2f})"
    prompts = coarse_only.prompt_set.prompts
    assert {p.slice_k for p in prompts} == {3, 4, 5, 6} and all(p.label == IPH for p in prompts)

    oracle.next_slice = 0
    refined = segment_volume(volume, oracle, torch.device("cpu"), InferenceConfig(batch_size=3, box_margin_px=2))
    # The untrained decoder's masks are arbitrary, but fusion must keep them to IPH, to the
    # prompted slices and to the prompt boxes grown by the margin.
    assert set(np.unique(refined.labels_zyx)) <= {0, IPH}
    outside = np.ones(truth.shape, dtype=bool)
    for p in prompts:
        x0, y0, x1, y1 = p.box_xyxy
        outside[p.slice_k, max(0, int(y0) - 2): int(np.ceil(y1)) + 2, max(0, int(x0) - 2): int(np.ceil(x1)) + 2] = False
    assert not refined.labels_zyx[outside].any()
    expected_ml = float(np.sum(refined.labels_zyx == IPH)) * volume.geometry.voxel_volume_ml
    assert refined.volumes_ml["IPH"] == pytest.approx(expected_ml)
