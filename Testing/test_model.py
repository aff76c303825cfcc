"""The SSS network: presets, CT preprocessing, DFE, coarse head, SSSModel encode/decode (tiny preset, CPU)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from SSSSegmentLib.errors import InputError, SSSSegError
from SSSSegmentLib.model import (
    DFE,
    PRESETS,
    CoarseHead,
    SliceFrame,
    build_model,
    ct_to_model_input,
    get_preset,
    resolve_device,
)
from SSSSegmentLib.model.preprocess import CHUNK_SLICES, PIXEL_MEAN, PIXEL_STD
from SSSSegmentLib.model.presets import SAM2_PRESETS


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model("tiny")


@pytest.fixture(scope="module")
def tiny_feats(tiny):
    torch.manual_seed(1)
    with torch.no_grad():
        return tiny.encode(torch.randn(2, 3, 256, 256))


def unnormalise(x: torch.Tensor) -> torch.Tensor:
    """(K, 3, H, W) model input -> windowed channels in [0, 1]."""
    mean = torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD).view(1, 3, 1, 1)
    return x * std + mean


# ---------------------------------------------------------------- presets / building


def test_unknown_preset_lists_choices():
    with pytest.raises(SSSSegError, match="paper.*tiny"):
        get_preset("huge")


@pytest.mark.parametrize("name", sorted(SAM2_PRESETS))
def test_every_preset_config_composes(name):
    """Each preset's sam2 config + overrides resolve through Hydra to the preset's input size."""
    import sam2  # noqa: F401  (initialises sam2's Hydra config module)
    from hydra import compose
    from omegaconf import OmegaConf

    preset = get_preset(name)
    cfg = compose(config_name=preset.sam2_config, overrides=preset.all_overrides())
    OmegaConf.resolve(cfg)
    assert cfg.model.image_size == preset.image_size
    assert cfg.model.use_high_res_features_in_sam
    assert cfg.model.image_encoder.neck.d_model == (64 if name == "tiny" else 256)


def test_fast_preset_runs_at_512():
    """The 512 override reaches the prompt encoder grid: encode one slice and decode one box."""
    torch.manual_seed(0)
    model = build_model("fast")
    with torch.no_grad():
        feats = model.encode(torch.randn(1, 3, 512, 512))
        masks, iou = model.decode(feats, torch.tensor([0]), boxes_xyxy=torch.tensor([[100.0, 120, 300, 260]]))
    assert feats.image_embed.shape == (1, 256, 32, 32)
    assert masks.shape == (1, 1, 128, 128) and iou.shape == (1, 1)
    assert torch.isfinite(masks).all()


def test_parameter_counts_by_part(tiny):
    counts = tiny.count_parameters()
    assert counts["total"] == sum(p.numel() for p in tiny.parameters())
    parts = ("encoder", "decoder", "dfe", "coarse_head", "sam_memory")
    assert sum(counts[k] for k in parts) == counts["total"]
    assert all(counts[k] > 0 for k in parts)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(SSSSegError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(SSSSegError, match="no CUDA"):
            resolve_device("cuda")


# ---------------------------------------------------------------- encode / coarse head / decode


def test_encode_shapes(tiny, tiny_feats):
    assert tiny_feats.image_embed.shape == (2, 64, 16, 16)
    assert [tuple(h.shape) for h in tiny_feats.high_res] == [(2, 8, 64, 64), (2, 16, 32, 32)]
    assert tiny_feats.fpn_stride4.shape == (2, 64, 64, 64)
    assert tiny_feats.detail.shape == (2, 16, 128, 128)


def test_encode_adds_no_mem_embed_after_identity_dfe(tiny):
    """With DFE at init (identity), image_embed = SAM's lowest FPN level + no_mem_embed."""
    images = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        fpn = tiny.sam.image_encoder(images)["backbone_fpn"]
        feats = tiny.encode(images)
    expected = fpn[2] + tiny.sam.no_mem_embed.view(1, -1, 1, 1)
    torch.testing.assert_close(feats.image_embed, expected)
    torch.testing.assert_close(feats.high_res[0], tiny.sam.sam_mask_decoder.conv_s0(fpn[0]))


def test_encode_rejects_wrong_size(tiny):
    with pytest.raises(SSSSegError, match=r"\(B, 3, 256, 256\)"):
        tiny.encode(torch.zeros(1, 3, 128, 128))


def test_coarse_logits_shape_and_background_prior(tiny, tiny_feats):
    with torch.no_grad():
        logits = tiny.coarse_logits(tiny_feats)
    assert logits.shape == (2, 6, 128, 128)  # stride 2
    assert logits.softmax(dim=1)[:, 0].mean() > 0.9  # background-prior initialisation


def test_coarse_refinement_starts_as_the_upsampled_stride4_prediction(tiny, tiny_feats):
    """The refinement branch starts at zero: a warm start from a stride-4 head keeps its output."""
    head = tiny.coarse_head
    with torch.no_grad():
        stride4 = head.classifier(head.body(tiny_feats.fpn_stride4))
        expected = torch.nn.functional.interpolate(stride4, size=(128, 128), mode="bilinear", align_corners=False)
        torch.testing.assert_close(tiny.coarse_logits(tiny_feats), expected)


def test_coarse_head_uses_the_image_detail(tiny, tiny_feats):
    """Once the refinement branch has weights, the detail features change the logits."""
    head = copy.deepcopy(tiny.coarse_head)
    torch.nn.init.normal_(head.refine[-1].weight, std=0.1)
    other = torch.randn_like(tiny_feats.detail)
    with torch.no_grad():
        assert not torch.allclose(head(tiny_feats.fpn_stride4, tiny_feats.detail), head(tiny_feats.fpn_stride4, other))


BOXES = torch.tensor([[40.0, 40, 120, 140], [100, 60, 200, 160], [10, 10, 60, 60]])
POINTS = torch.tensor([[[80.0, 90], [30, 30]], [[150, 110], [0, 0]], [[35, 35], [200, 200]]])
LABELS = torch.tensor([[1, 0], [1, -1], [1, 0]])
INDEX = torch.tensor([0, 1, 1])


@pytest.mark.parametrize("prompt", ["boxes", "points", "both"])
def test_decode_prompt_kinds(tiny, tiny_feats, prompt):
    boxes = BOXES if prompt in ("boxes", "both") else None
    points, labels = (POINTS, LABELS) if prompt in ("points", "both") else (None, None)
    with torch.no_grad():
        masks, iou = tiny.decode(tiny_feats, INDEX, boxes, points, labels)
    assert masks.shape == (3, 1, 64, 64) and iou.shape == (3, 1)
    assert masks.dtype == torch.float32 and torch.isfinite(masks).all()


def test_decode_prompts_change_the_result(tiny, tiny_feats):
    with torch.no_grad():
        box_only, _ = tiny.decode(tiny_feats, INDEX, boxes_xyxy=BOXES)
        both, _ = tiny.decode(tiny_feats, INDEX, BOXES, POINTS, LABELS)
        moved, _ = tiny.decode(tiny_feats, INDEX, boxes_xyxy=BOXES + 30)
    assert not torch.allclose(box_only, both)
    assert not torch.allclose(box_only, moved)


def test_decode_gathers_features_by_image_index(tiny, tiny_feats):
    """A prompt on slice 1 of a 2-slice batch gives what it gives on that slice alone."""
    from SSSSegmentLib.model import SliceFeatures

    alone = SliceFeatures(tiny_feats.image_embed[1:], [h[1:] for h in tiny_feats.high_res],
                          tiny_feats.fpn_stride4[1:], tiny_feats.detail[1:])
    with torch.no_grad():
        batched, iou_b = tiny.decode(tiny_feats, torch.tensor([1]), boxes_xyxy=BOXES[:1])
        single, iou_s = tiny.decode(alone, torch.tensor([0]), boxes_xyxy=BOXES[:1])
        other, _ = tiny.decode(tiny_feats, torch.tensor([0]), boxes_xyxy=BOXES[:1])
    torch.testing.assert_close(batched, single)
    torch.testing.assert_close(iou_b, iou_s)
    assert not torch.allclose(batched, other)


class _ThreeMasks(nn.Module):
    """Stands in for SAM-2's mask decoder: per prompt, three masks filled with 0, 1 and 2 and the given IoUs."""

    def __init__(self, iou: torch.Tensor) -> None:
        super().__init__()
        self.iou = iou

    def forward(self, multimask_output: bool, **kwargs):  # noqa: ANN003, ANN201
        assert multimask_output
        masks = torch.arange(3.0).view(1, 3, 1, 1).expand(self.iou.shape[0], 3, 64, 64).clone()
        return masks, self.iou.clone(), None, None


def test_decode_multimask_picks_best(tiny, tiny_feats, monkeypatch):
    with torch.no_grad():
        masks, iou = tiny.decode(tiny_feats, torch.tensor([0]), points_xy=POINTS[:1, :1],
                                 point_labels=LABELS[:1, :1], multimask=True)
    assert masks.shape == (1, 1, 64, 64) and iou.shape == (1, 1)
    # Known proposals: prompt 0's best predicted IoU is its mask 1 (0.9), prompt 1's its mask 0 (0.7).
    monkeypatch.setattr(tiny.sam, "sam_mask_decoder", _ThreeMasks(torch.tensor([[0.2, 0.9, 0.5], [0.7, 0.1, 0.3]])))
    with torch.no_grad():
        masks, iou = tiny.decode(tiny_feats, torch.tensor([0, 1]), boxes_xyxy=BOXES[:2], multimask=True)
    assert masks.shape == (2, 1, 64, 64) and iou.shape == (2, 1)
    assert masks[0].unique().tolist() == [1.0] and masks[1].unique().tolist() == [0.0]
    assert iou[:, 0].tolist() == pytest.approx([0.9, 0.7])


def test_decode_refuses_bad_prompts(tiny, tiny_feats):
    with pytest.raises(SSSSegError, match="box or points"):
        tiny.decode(tiny_feats, torch.tensor([0]))
    with pytest.raises(SSSSegError, match="out of range"):
        tiny.decode(tiny_feats, torch.tensor([2]), boxes_xyxy=BOXES[:1])
    with pytest.raises(SSSSegError, match="point_labels"):
        tiny.decode(tiny_feats, torch.tensor([0]), points_xy=POINTS[:1], point_labels=None)


def test_gradients_reach_dfe_head_and_decoder():
    torch.manual_seed(0)
    model = build_model("tiny").train()
    weak = torch.randn(2, 3, 256, 256)
    feats = model.encode(weak, images_strong=weak + 0.3 * torch.randn_like(weak))
    masks, iou = model.decode(feats, torch.tensor([0, 1]), boxes_xyxy=BOXES[:2])
    loss = masks.sigmoid().mean() + iou.mean() + model.coarse_logits(feats).log_softmax(1)[:, 1].mean()
    loss.backward()
    for name, param in [
        ("dfe last layer", model.dfe[0].mlp[-1].weight),
        ("dfe conv (two views)", model.dfe[2].conv.weight),
        ("coarse head", model.coarse_head.classifier.weight),
        ("mask decoder", model.sam.sam_mask_decoder.output_hypernetworks_mlps[0].layers[0].weight),
        ("image encoder", model.sam.image_encoder.neck.convs[0].conv.weight),
    ]:
        assert param.grad is not None and param.grad.abs().sum() > 0, name


# ---------------------------------------------------------------- DFE


def test_dfe_is_identity_at_init():
    torch.manual_seed(0)
    dfe = DFE(8, (16, 12))
    x = torch.randn(2, 8, 5, 5)
    assert torch.equal(dfe(x), x)
    widths = [m.out_channels for m in dfe.mlp if isinstance(m, nn.Conv2d)]
    assert widths == [16, 12, 8]


def test_dfe_single_view_equals_two_views_of_same_input():
    torch.manual_seed(0)
    dfe = DFE(8, (16,))
    nn.init.normal_(dfe.mlp[-1].weight, std=0.5)  # make the MLP non-trivial
    x = torch.randn(2, 8, 6, 6)
    single = dfe(x)
    assert not torch.allclose(single, x)
    torch.testing.assert_close(single, dfe(x, x), rtol=1e-5, atol=1e-6)


def test_dfe_formula_on_hand_computed_example():
    """Conv = identity and MLP = identity, 1x1 maps F_w = [1, 0], F_s = [1, 1]:
    s = 1/sqrt(2), w = sigmoid(s), F = w*A + (1-w)*B + (1-s)*(B-A) = [1, (1-w) + (1-s)], out = F_s + F."""
    dfe = DFE(2, (4,))
    with torch.no_grad():
        dfe.conv.weight.zero_()
        dfe.conv.bias.zero_()
        dfe.conv.weight[0, 0, 1, 1] = 1.0
        dfe.conv.weight[1, 1, 1, 1] = 1.0
    dfe.mlp = nn.Identity()
    f_w = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)
    f_s = torch.tensor([1.0, 1.0]).view(1, 2, 1, 1)
    s = 1 / math.sqrt(2)
    w = 1 / (1 + math.exp(-s))
    expected = torch.tensor([1 + 1, 1 + (1 - w) + (1 - s)]).view(1, 2, 1, 1)
    torch.testing.assert_close(dfe(f_w, f_s), expected)


def test_coarse_head_standalone_shape():
    head = CoarseHead(16, num_labels=6, mid_channels=8)
    detail = head.detail_stem(torch.randn(3, 3, 40, 48))
    assert detail.shape == (3, 16, 20, 24)
    assert head(torch.randn(3, 16, 10, 12), detail).shape == (3, 6, 20, 24)


# ---------------------------------------------------------------- preprocessing


def test_windows_map_hu_to_unit_range():
    hu = np.array([[[40.0, -1000.0], [3000.0, 80.0]]], dtype=np.float32)  # (1, 2, 2)
    x, frame = ct_to_model_input(hu, image_size=2)
    chans = unnormalise(x)[0]
    assert frame.resized_hw == (2, 2)
    torch.testing.assert_close(chans[:, 0, 0], torch.tensor([0.5, 0.3, 0.3]))  # 40 HU
    torch.testing.assert_close(chans[:, 0, 1], torch.tensor([0.0, 0.0, 0.0]))  # air
    torch.testing.assert_close(chans[:, 1, 0], torch.tensor([1.0, 1.0, 1.0]))  # metal
    torch.testing.assert_close(chans[:, 1, 1], torch.tensor([1.0, 0.5, 880 / 2800]))  # 80 HU


def test_resize_keeps_aspect_and_pads_bottom_right():
    hu = np.full((1, 20, 40), 60.0, dtype=np.float32)
    x, frame = ct_to_model_input(hu, image_size=16)
    assert x.shape == (1, 3, 16, 16) and x.dtype == torch.float32
    assert frame.slice_shape == (20, 40) and frame.scale == pytest.approx(0.4) and frame.resized_hw == (8, 16)
    torch.testing.assert_close(unnormalise(x)[0, 0, :8], torch.full((8, 16), 0.75))
    assert torch.equal(x[0, :, 8:], torch.zeros(3, 8, 16))  # padding = mean colour


def test_each_slice_keeps_its_own_values_across_chunks():
    k = CHUNK_SLICES + 3
    hu = np.stack([np.full((12, 9), 10.0 * i, dtype=np.float32) for i in range(k)])
    x, _ = ct_to_model_input(hu, image_size=12)
    brain = unnormalise(x)[:, 0, 0, 0]
    torch.testing.assert_close(brain, torch.clamp((torch.arange(k) * 10.0) / 80.0, 0, 1))


def test_preprocess_rejects_bad_input():
    with pytest.raises(InputError, match=r"\(K, J, I\)"):
        ct_to_model_input(np.zeros((4, 4), dtype=np.float32), 16)
    bad = np.zeros((2, 4, 4), dtype=np.float32)
    bad[1, 2, 2] = np.nan
    with pytest.raises(InputError, match="NaN"):
        ct_to_model_input(bad, 16)


def test_slice_frame_coordinate_round_trip_and_edges():
    frame = SliceFrame.for_slice((100, 200), 64)
    pts = np.array([[0.0, 0.0], [199.0, 99.0], [37.5, 12.25]])
    np.testing.assert_allclose(frame.to_slice_xy(frame.to_model_xy(pts)), pts, atol=1e-9)
    # the slice's outer pixel edges land on the resized region's outer edges
    rows, cols = frame.resized_hw
    np.testing.assert_allclose(frame.to_model_xy(np.array([[-0.5, -0.5], [199.5, 99.5]])),
                               [[-0.5, -0.5], [cols - 0.5, rows - 0.5]])
    as_tensor = frame.to_model_xy(torch.tensor(pts))
    assert isinstance(as_tensor, torch.Tensor)
    np.testing.assert_allclose(as_tensor.numpy(), frame.to_model_xy(pts), atol=1e-4)


def test_masks_to_slice_puts_square_at_the_right_place():
    """Slice 100x200 at S=64: scale 0.32; a stride-4 map (16x16) pixel covers 12.5 slice pixels."""
    frame = SliceFrame.for_slice((100, 200), 64)
    low = torch.full((2, 16, 16), -10.0)
    low[0, 2:6, 4:10] = 10.0  # model rows 8..24, cols 16..40 -> slice rows 25..75, cols 50..125
    out = frame.masks_to_slice(low)
    assert out.shape == (2, 100, 200)
    rows, cols = np.nonzero(out[0].numpy() > 0)
    assert abs(rows.min() - 25) <= 1 and abs(rows.max() - 74) <= 1
    assert abs(cols.min() - 50) <= 1 and abs(cols.max() - 124) <= 1
    assert not (out[1] > 0).any()
    # the same square given at full model resolution lands at the same place
    full = torch.nn.functional.interpolate(low[:1, None], size=(64, 64), mode="nearest")[:, 0]
    rows_f, cols_f = np.nonzero(frame.masks_to_slice(full)[0].numpy() > 0)
    bbox = (rows.min(), rows.max(), cols.min(), cols.max())
    assert (rows_f.min(), rows_f.max(), cols_f.min(), cols_f.max()) == bbox


def test_points_and_masks_agree():
    """A box drawn with SliceFrame coordinates in model space comes back around the same slice pixels."""
    frame = SliceFrame.for_slice((90, 60), 32)
    corners = frame.to_model_xy(np.array([[10.0, 20.0], [40.0, 70.0]]))  # slice (x, y) -> model
    model_mask = torch.full((1, 32, 32), -1.0)
    (x0, y0), (x1, y1) = np.rint(corners).astype(int)
    model_mask[0, y0 : y1 + 1, x0 : x1 + 1] = 1.0
    rows, cols = np.nonzero(frame.masks_to_slice(model_mask)[0].numpy() > 0)
    assert abs(rows.min() - 20) <= 2 and abs(rows.max() - 70) <= 2
    assert abs(cols.min() - 10) <= 2 and abs(cols.max() - 40) <= 2


# --- SAM-2 configs frozen to JSON (model/sam2_config.py) --------------------------------------------


@pytest.mark.parametrize("name", sorted(SAM2_PRESETS))
def test_each_frozen_sam2_config_is_the_hydra_composition(name: str) -> None:
    """The stored record must be what sam2's Hydra configs compose to today (else run
    ``python -m SSSSegmentLib.model.sam2_config`` and commit the result)."""
    import json

    from SSSSegmentLib.model import sam2_config

    stored = json.loads((sam2_config.CONFIG_DIR / f"{name}.json").read_text(encoding="utf-8"))
    assert stored == sam2_config.compose_config(PRESETS[name])
    assert sam2_config.frozen_config(PRESETS[name]) == stored["model"]


@pytest.mark.parametrize("name", ["tiny", "fast"])
def test_a_model_built_from_the_frozen_config_is_the_hydra_built_one(name: str) -> None:
    from sam2.build_sam import build_sam2

    from SSSSegmentLib.model.build import build_sam

    preset = PRESETS[name]
    torch.manual_seed(7)
    hydra_built = build_sam2(preset.sam2_config, ckpt_path=None, device="cpu", mode="eval",
                             hydra_overrides_extra=preset.all_overrides())
    torch.manual_seed(7)
    frozen_built = build_sam(preset)
    assert type(frozen_built) is type(hydra_built) and not frozen_built.training
    expected, got = hydra_built.state_dict(), frozen_built.state_dict()
    assert list(got) == list(expected)
    assert all(torch.equal(got[key], expected[key]) for key in expected)
    assert repr(frozen_built) == repr(hydra_built)  # the same modules with the same settings
    decoder = frozen_built.sam_mask_decoder
    assert decoder.dynamic_multimask_via_stability and decoder.dynamic_multimask_stability_delta == 0.05


def test_a_stale_frozen_config_falls_back_to_hydra(monkeypatch) -> None:  # noqa: ANN001
    from SSSSegmentLib.model import sam2_config

    monkeypatch.setattr(sam2_config, "version", lambda _name: "0.0-other")
    assert sam2_config.frozen_config(PRESETS["tiny"]) is None
    torch.manual_seed(0)
    assert build_model("tiny").preset.name == "tiny"  # built through Hydra
    with pytest.raises(SSSSegError, match="not a sam2 class"):
        sam2_config.instantiate({"_target_": "os.system", "command": "true"})
