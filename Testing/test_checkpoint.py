"""SSS checkpoints (.safetensors + JSON header) and official SAM-2 weight loading (tiny preset, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from SSSSegmentLib.classes import HEMORRHAGE_CLASSES
from SSSSegmentLib.errors import CheckpointError, OutputError
from SSSSegmentLib.model import (
    build_model,
    file_sha256,
    load_sss_checkpoint,
    read_checkpoint_info,
    save_sss_checkpoint,
)
from SSSSegmentLib.model.checkpoint import METADATA_KEY


@pytest.fixture(scope="module")
def trained_tiny():
    """A tiny model whose DFE and coarse head moved away from their initialisation."""
    torch.manual_seed(0)
    model = build_model("tiny")
    with torch.no_grad():
        for dfe in model.dfe:
            dfe.mlp[-1].weight.normal_(std=0.1)
        model.coarse_head.classifier.bias.normal_()
    return model


@pytest.fixture(scope="module")
def saved(trained_tiny, tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    sha = save_sss_checkpoint(path, trained_tiny, {"epochs": 3, "data": "phantoms"})
    return path, sha


def outputs(model, images):
    with torch.no_grad():
        feats = model.encode(images)
        boxes = torch.tensor([[30.0, 40, 90, 120]] * 2)
        masks, iou = model.decode(feats, torch.tensor([0, 1]), boxes_xyxy=boxes)
        return model.coarse_logits(feats), masks, iou


def rewrite(src: Path, dst: Path, tensors=None, meta_edit=None) -> Path:
    """Copy an SSS checkpoint with tensors and/or metadata changed."""
    from safetensors import safe_open

    with safe_open(str(src), framework="pt") as fh:
        meta = json.loads(fh.metadata()[METADATA_KEY])
    if meta_edit:
        meta_edit(meta)
    save_file(tensors if tensors is not None else load_file(str(src)), str(dst),
              metadata={METADATA_KEY: json.dumps(meta)})
    return dst


def test_round_trip_gives_identical_outputs(trained_tiny, saved):
    path, sha = saved
    loaded = load_sss_checkpoint(path, expected_preset="tiny")
    images = torch.randn(2, 3, 256, 256)
    for before, after in zip(outputs(trained_tiny, images), outputs(loaded, images), strict=True):
        assert torch.equal(before, after)
    assert sha == file_sha256(path) and len(sha) == 64
    assert not loaded.training


def test_info_is_stored_in_the_header(saved):
    info = read_checkpoint_info(saved[0])
    assert info["format"] == "sssseg-checkpoint" and info["format_version"] == 1
    assert info["preset"] == "tiny" and info["preset_fields"]["image_size"] == 256
    assert info["info"] == {"epochs": 3, "data": "phantoms"}
    assert [c["key"] for c in info["classes"]] == [c.key for c in HEMORRHAGE_CLASSES]
    assert info["sam2_weights_sha256"] is None and info["created"].startswith("20")


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_sss_checkpoint(tmp_path / "nope.safetensors")


def test_truncated_file(saved, tmp_path):
    data = saved[0].read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_sss_checkpoint(cut)


def test_garbage_file(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00\x01 this is not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        read_checkpoint_info(junk)


def test_safetensors_without_our_metadata(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="not an SSSSegment checkpoint"):
        load_sss_checkpoint(plain)


def test_wrong_format_name(saved, tmp_path):
    other = rewrite(saved[0], tmp_path / "o.safetensors", meta_edit=lambda m: m.update(format="other-tool"))
    with pytest.raises(CheckpointError, match="unknown checkpoint format 'other-tool'"):
        load_sss_checkpoint(other)


def test_preset_mismatch(saved):
    with pytest.raises(CheckpointError, match="preset 'tiny'.*'fast' was requested"):
        load_sss_checkpoint(saved[0], expected_preset="fast")


def test_shape_mismatch(saved, tmp_path):
    tensors = load_file(str(saved[0]))
    key = "coarse_head.classifier.weight"
    tensors[key] = torch.zeros(7, *tensors[key].shape[1:])
    bad = rewrite(saved[0], tmp_path / "bad.safetensors", tensors=tensors)
    with pytest.raises(CheckpointError, match=r"shape mismatch.*coarse_head\.classifier\.weight"):
        load_sss_checkpoint(bad)


def test_missing_tensor(saved, tmp_path):
    tensors = load_file(str(saved[0]))
    del tensors["dfe.0.conv.weight"]
    bad = rewrite(saved[0], tmp_path / "bad.safetensors", tensors=tensors)
    with pytest.raises(CheckpointError, match=r"missing keys: dfe\.0\.conv\.weight"):
        load_sss_checkpoint(bad)


def test_warm_start_from_a_checkpoint_without_new_modules(saved, trained_tiny, tmp_path):
    """A checkpoint written before the coarse head's refinement branch existed: inference refuses it,
    a training warm start accepts it, keeps every stored weight and names the fresh ones."""
    tensors = {k: v for k, v in load_file(str(saved[0])).items() if not k.startswith("coarse_head.refine.")}
    old = rewrite(saved[0], tmp_path / "old.safetensors", tensors=tensors)
    with pytest.raises(CheckpointError, match=r"missing keys: coarse_head\.refine"):
        load_sss_checkpoint(old)
    model = load_sss_checkpoint(old, allow_new_modules=True)
    assert model.checkpoint_info["new_parameters"] == ["coarse_head.refine.0.0.weight", "coarse_head.refine.0.0.bias",
                                                       "coarse_head.refine.0.1.weight", "coarse_head.refine.0.1.bias",
                                                       "coarse_head.refine.1.weight", "coarse_head.refine.1.bias"]
    torch.testing.assert_close(model.dfe[0].mlp[-1].weight, trained_tiny.dfe[0].mlp[-1].weight)
    tensors["dfe.0.conv.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_sss_checkpoint(rewrite(saved[0], tmp_path / "bad.safetensors", tensors=tensors), allow_new_modules=True)


def test_class_list_mismatch(saved, tmp_path):
    bad = rewrite(saved[0], tmp_path / "cls.safetensors", meta_edit=lambda m: m["classes"].pop())
    with pytest.raises(CheckpointError, match="other classes"):
        load_sss_checkpoint(bad)


def test_save_refuses_unserialisable_info_without_leaving_a_file(trained_tiny, tmp_path):
    path = tmp_path / "x.safetensors"
    with pytest.raises(CheckpointError, match="JSON"):
        save_sss_checkpoint(path, trained_tiny, {"when": object()})
    assert list(tmp_path.iterdir()) == []


def test_save_into_missing_directory(trained_tiny, tmp_path):
    with pytest.raises(OutputError):
        save_sss_checkpoint(tmp_path / "no" / "x.safetensors", trained_tiny, {})


# ---------------------------------------------------------------- official SAM-2 checkpoints


@pytest.fixture(scope="module")
def official_tiny(tmp_path_factory) -> tuple[Path, dict]:
    """A tiny SAM-2 state dict in the official layout {"model": state_dict}."""
    torch.manual_seed(5)
    state = build_model("tiny").sam.state_dict()
    path = tmp_path_factory.mktemp("official") / "sam2_tiny_test.pt"
    torch.save({"model": state}, path)
    return path, state


def test_official_checkpoint_loads_and_records_sha(official_tiny):
    path, state = official_tiny
    model = build_model("tiny", sam2_checkpoint=path)
    assert model.sam2_checkpoint_sha256 == file_sha256(path)
    loaded = model.sam.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_sss_checkpoint_remembers_the_sam2_weights(official_tiny, tmp_path):
    model = build_model("tiny", sam2_checkpoint=official_tiny[0])
    out = tmp_path / "m.safetensors"
    save_sss_checkpoint(out, model, {})
    assert read_checkpoint_info(out)["sam2_weights_sha256"] == file_sha256(official_tiny[0])
    assert load_sss_checkpoint(out).sam2_checkpoint_sha256 == file_sha256(official_tiny[0])


def test_official_checkpoint_sha_mismatch(official_tiny):
    with pytest.raises(CheckpointError, match="differs from the expected"):
        build_model("tiny", sam2_checkpoint=official_tiny[0], expected_sha256="0" * 64)


def test_official_checkpoint_of_another_size(official_tiny, tmp_path):
    """Weights of another architecture: a clear message naming the preset and the mismatch."""
    state = dict(official_tiny[1])
    state["image_encoder.neck.convs.0.conv.weight"] = torch.zeros(32, 256, 1, 1)
    del state["no_mem_embed"]
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError) as err:
        build_model("tiny", sam2_checkpoint=path)
    msg = str(err.value)
    assert "preset 'tiny'" in msg and "no_mem_embed" in msg and "(32, 256, 1, 1)" in msg
    assert "belongs to preset 'fast'" in msg
    assert len(msg) < 1000


def test_official_checkpoint_not_a_checkpoint(tmp_path):
    junk = tmp_path / "sam2.1_hiera_small.pt"
    junk.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        build_model("tiny", sam2_checkpoint=junk)
    with pytest.raises(CheckpointError, match="not found"):
        build_model("tiny", sam2_checkpoint=tmp_path / "missing.pt")


class _Payload:
    """Not a tensor: unpickling it would need code execution, which weights_only refuses."""


def test_official_checkpoint_never_runs_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {"x": _Payload()}}, path)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        build_model("tiny", sam2_checkpoint=path)


def test_official_checkpoint_without_model_key(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="no 'model' state dict"):
        build_model("tiny", sam2_checkpoint=path)
