"""Unit tests of the inference plumbing: out-of-memory halving, prompt tensors, fusion."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from SSSSegmentLib.inference.encode import concat_features, map_features, run_batched
from SSSSegmentLib.inference.refine import box_window, fuse_refined, prompt_tensors


@dataclass(frozen=True)
class _Prompt:
    label: int
    slice_k: int
    box_xyxy: tuple[float, float, float, float]
    points_xy: np.ndarray
    point_labels: np.ndarray


class _IdentityFrame:
    """Model pixel index == slice pixel index x 2 (a scale-only frame)."""

    def to_model_xy(self, xy: np.ndarray) -> np.ndarray:
        return np.asarray(xy, dtype=np.float32) * 2.0


def test_run_batched_halves_on_out_of_memory_and_covers_all_slices():
    seen: list[tuple[int, int]] = []

    def step(lo: int, hi: int) -> None:
        if hi - lo > 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        seen.append((lo, hi))

    halvings: list[int] = []
    final = run_batched(10, 8, step, on_oom=halvings.append)
    assert final == 2 and halvings == [4, 2]
    covered = sorted(i for lo, hi in seen for i in range(lo, hi))
    assert covered == list(range(10))


def test_run_batched_gives_up_at_one_slice_and_passes_other_errors():
    def always_oom(lo: int, hi: int) -> None:
        raise RuntimeError("CUDA error: out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        run_batched(4, 4, always_oom)

    def broken(lo: int, hi: int) -> None:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_batched(4, 4, broken)


def test_features_concat_and_map_keep_structure():
    @dataclass
    class Feats:
        image_embed: torch.Tensor
        high_res: list[torch.Tensor]

    parts = [Feats(torch.full((2, 3), float(n)), [torch.zeros(2, 1), torch.ones(2, 5)]) for n in range(3)]
    merged = concat_features(parts)
    assert merged.image_embed.shape == (6, 3) and [t.shape for t in merged.high_res] == [(6, 1), (6, 5)]
    assert merged.image_embed[:, 0].tolist() == [0, 0, 1, 1, 2, 2]
    picked = map_features(merged, lambda t: t.index_select(0, torch.tensor([5])))
    assert picked.image_embed.tolist() == [[2.0, 2.0, 2.0]] and picked.high_res[1].shape == (1, 5)


def test_prompt_tensors_pad_points_and_map_to_model_pixels():
    prompts = [
        _Prompt(1, 0, (1, 2, 5, 6), np.array([[3.0, 4.0]]), np.array([1])),
        _Prompt(2, 0, (0, 0, 2, 2), np.array([[1.0, 1.0], [9.0, 9.0]]), np.array([1, 0])),
    ]
    boxes, points, labels = prompt_tensors(prompts, _IdentityFrame())
    # continuous (edge) coordinates -> pixel indices (-0.5) -> model pixels (x2 here)
    assert boxes.tolist() == [[1, 3, 9, 11], [-1, -1, 3, 3]]
    assert points.shape == (2, 2, 2) and points[0, 0].tolist() == [5, 7]
    assert labels.tolist() == [[1, -1], [1, 0]]


def test_box_window_grows_and_clips():
    rows, cols = box_window((2.0, 3.0, 10.0, 12.0), margin_px=4, shape_yx=(14, 9))
    assert (rows.start, rows.stop, cols.start, cols.stop) == (0, 14, 0, 9)


def test_box_window_adds_the_margin_on_every_side_away_from_the_edges():
    # rows: floor(20.7) - 3 = 17 .. ceil(40.0) + 3 = 43; columns: floor(10.2) - 3 = 7 .. ceil(30.5) + 3 = 34
    rows, cols = box_window((10.2, 20.7, 30.5, 40.0), margin_px=3, shape_yx=(100, 100))
    assert (rows.start, rows.stop, cols.start, cols.stop) == (17, 43, 7, 34)


def test_fusion_keeps_a_mask_within_the_box_margin_and_no_further():
    """Box x, y in [6, 10) grown by 2 px: rows and columns 4..11 of a 20 x 20 slice, away from its edges."""
    shape = (1, 20, 20)
    mask = np.full(shape[1:], 0.9, np.float32)  # the decoder's mask spills over the whole slice
    prompt = _Prompt(3, 0, (6, 6, 10, 10), np.zeros((0, 2)), np.zeros(0))
    labels = fuse_refined([prompt], [mask], shape, threshold=0.5, margin_px=2)
    expected = np.zeros(shape, np.uint8)
    expected[0, 4:12, 4:12] = 3
    np.testing.assert_array_equal(labels, expected)


def test_fusion_takes_the_most_probable_class_inside_boxes_only():
    shape = (2, 10, 10)
    mask_a = np.zeros(shape[1:], np.float32)
    mask_a[2:6, 2:6] = 0.9
    mask_a[8:, 8:] = 0.99  # far outside its box: must be ignored
    mask_b = np.zeros(shape[1:], np.float32)
    mask_b[4:8, 4:8] = 0.7
    prompts = [
        _Prompt(2, 1, (2, 2, 6, 6), np.zeros((0, 2)), np.zeros(0)),
        _Prompt(5, 1, (4, 4, 8, 8), np.zeros((0, 2)), np.zeros(0)),
    ]
    labels = fuse_refined(prompts, [mask_a, mask_b], shape, threshold=0.5, margin_px=0)
    assert labels[0].max() == 0  # slice without prompts stays background
    assert labels[1, 3, 3] == 2 and labels[1, 5, 5] == 2  # 0.9 beats 0.7 in the overlap
    assert labels[1, 7, 7] == 5 and labels[1, 9, 9] == 0


def test_fusion_confines_masks_to_the_allowed_voxels():
    shape = (1, 8, 8)
    mask = np.full(shape[1:], 0.9, np.float32)
    prompt = _Prompt(5, 0, (0, 0, 8, 8), np.zeros((0, 2)), np.zeros(0))
    allowed = np.zeros(shape, dtype=bool)
    allowed[0, 2:5, 3:6] = True  # e.g. inside the skull and not bone
    labels = fuse_refined([prompt], [mask], shape, threshold=0.5, margin_px=0, allowed_zyx=allowed)
    assert np.array_equal(labels == 5, allowed)


class _Loaded:
    """Stands in for an SSSModel: only ``checkpoint_info`` matters to ``inference_config_for``."""

    def __init__(self, checkpoint_info: dict | None) -> None:
        self.checkpoint_info = checkpoint_info


def test_models_recommend_their_inference_settings():
    from SSSSegmentLib.errors import CheckpointError
    from SSSSegmentLib.inference import InferenceConfig, inference_config_for

    assert inference_config_for(_Loaded(None)) == InferenceConfig()
    assert inference_config_for(_Loaded({"info": {"steps": 3}})) == InferenceConfig()
    chosen = inference_config_for(_Loaded({"info": {"inference": {"refine": False, "mask_threshold": 0.6}}}))
    assert (chosen.refine, chosen.mask_threshold) == (False, 0.6)
    with pytest.raises(CheckpointError, match="unknown inference setting"):
        inference_config_for(_Loaded({"info": {"inference": {"refine_harder": True}}}))
    with pytest.raises(CheckpointError, match="must be a mapping"):
        inference_config_for(_Loaded({"info": {"inference": "off"}}))


def test_set_model_inference_script_stamps_a_copy(tmp_path):
    import runpy
    from pathlib import Path

    from SSSSegmentLib.model import build_model, load_sss_checkpoint, save_sss_checkpoint

    src = tmp_path / "in.safetensors"
    save_sss_checkpoint(src, build_model("tiny"), {"steps": 7})
    script = runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "set_model_inference.py"))
    dst = tmp_path / "out.safetensors"
    assert script["main"]([str(src), str(dst), "refine=false"]) == 0
    info = load_sss_checkpoint(dst).checkpoint_info["info"]
    assert info == {"steps": 7, "inference": {"refine": False}}
    assert script["main"]([str(src), str(dst), "refine=false"]) == 2  # never replaces an existing file
    assert script["main"]([str(src), str(tmp_path / "x.safetensors"), "nonsense=1"]) == 2
    assert not (tmp_path / "x.safetensors").exists()


def test_a_models_recommended_batch_size_holds_unless_the_user_gives_one():
    """The lite model recommends 2 slices a batch (its memory); --batch-size N overrides it, and a model
    without a recommendation leaves it to the device default (None)."""
    from types import SimpleNamespace

    from SSSSegmentLib.inference import config_for_run

    lite_like = SimpleNamespace(checkpoint_info={"info": {"inference": {"batch_size": 2, "refine": False}}})
    assert config_for_run(lite_like, None).batch_size == 2
    assert config_for_run(lite_like, 5).batch_size == 5
    assert config_for_run(lite_like, 5).refine is False
    assert config_for_run(SimpleNamespace(checkpoint_info=None), None).batch_size is None
    # --refine on/off overrides the model's refine and leaves its batch size; "model" keeps both
    assert config_for_run(lite_like, None, "on").refine is True
    assert config_for_run(lite_like, None, "on").batch_size == 2
    assert config_for_run(lite_like, 5, "model").refine is False
