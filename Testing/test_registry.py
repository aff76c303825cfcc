"""The model registry: versions, the atomic active pointer, rollback, verified import, the gate,
the CLI (``sssseg models``) and the engine's default model (``api.load_model``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from SSSSegmentLib.bundled_models import bundled_model_path
from SSSSegmentLib.cli import main
from SSSSegmentLib.errors import CheckpointError, InputError
from SSSSegmentLib.fsutil import file_sha256
from SSSSegmentLib.registry import GateRule, ModelRegistry, SiteMetrics

BUNDLED = bundled_model_path("tiny")


@pytest.fixture
def two_versions(tmp_path: Path) -> ModelRegistry:
    """A registry with v0001 and v0002 (both the bundled tiny model), v0001 active then v0002 active."""
    registry = ModelRegistry(tmp_path / "registry")
    registry.import_checkpoint(BUNDLED, activate=True)
    registry.import_checkpoint(BUNDLED, expected_sha256=file_sha256(BUNDLED).upper(), activate=True)
    return registry


def test_versions_keep_their_record_and_the_pointer_follows_activation(two_versions: ModelRegistry) -> None:
    registry = two_versions
    assert [v.version for v in registry.versions()] == ["v0001", "v0002"]
    v2 = registry.get("v0002")
    assert v2.sha256 == file_sha256(BUNDLED) == file_sha256(v2.model_path)
    assert v2.source == "imported sss_tiny.safetensors" and v2.base is None and v2.created.startswith("20")
    assert registry.active().version == "v0002" and registry.history() == ["v0001", "v0002"]
    pointer = json.loads((registry.root / "active.json").read_text())
    assert pointer["active"] == "v0002"


def test_rollback_goes_to_the_previous_version_or_a_named_one(two_versions: ModelRegistry) -> None:
    registry = two_versions
    assert registry.rollback().version == "v0001"
    assert registry.active().version == "v0001"
    with pytest.raises(InputError, match="nothing to roll back to"):
        registry.rollback()  # v0002 left the history: only v0001 was active before it
    assert registry.rollback("v0002").version == "v0002"
    with pytest.raises(InputError, match="no model version 'v0009'"):
        registry.rollback("v0009")


def test_a_damaged_version_is_never_activated(two_versions: ModelRegistry) -> None:
    registry = two_versions
    path = registry.get("v0001").model_path
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CheckpointError, match="v0001 is damaged"):
        registry.rollback()
    assert registry.active().version == "v0002"


def test_the_pointer_switch_is_atomic(two_versions: ModelRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = two_versions
    before = (registry.root / "active.json").read_bytes()

    def crash(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(Exception, match="disk is full. Nothing was switched"):
        registry.activate("v0001")
    monkeypatch.undo()
    assert (registry.root / "active.json").read_bytes() == before
    assert sorted(p.name for p in registry.root.iterdir()) == ["active.json", "versions"]  # no temp file left


@pytest.mark.parametrize("damage", ["truncated", "foreign", "not_safetensors"])
def test_a_corrupted_or_foreign_checkpoint_is_refused(tmp_path: Path, damage: str) -> None:
    import torch
    from safetensors.torch import save_file

    bad = tmp_path / "model.safetensors"
    if damage == "truncated":
        bad.write_bytes(BUNDLED.read_bytes()[: BUNDLED.stat().st_size // 2])
        message = "corrupt or truncated"
    elif damage == "foreign":
        save_file({"w": torch.zeros(2)}, str(bad))
        message = "not an SSSSegment checkpoint"
    else:
        bad = tmp_path / "model.pt"
        bad.write_bytes(b"\x80\x04not a model")
        message = "not an SSSSegment checkpoint"
    registry = ModelRegistry(tmp_path / "registry")
    with pytest.raises(CheckpointError, match=message):
        registry.import_checkpoint(bad)
    assert registry.versions() == [] and registry.active() is None
    assert not (tmp_path / "registry").exists()  # refused before anything was written


def test_import_refuses_a_wrong_sha256(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="expected 000"):
        ModelRegistry(tmp_path / "r").import_checkpoint(BUNDLED, expected_sha256="0" * 64)


def _metrics(dice: float | None, normal_ml: float) -> SiteMetrics:
    return SiteMetrics(dice, normal_ml, heldout_cases=1, normal_cases=1)


def test_gate_rule() -> None:
    rule = GateRule()
    active = _metrics(0.60, 1.0)
    assert rule.decide(_metrics(0.61, 0.5), active).passed
    assert rule.decide(_metrics(0.60, 1.0), active).passed  # not worse = equal is fine
    lower = rule.decide(_metrics(0.59, 0.5), active)
    assert not lower.passed and "lower" in lower.reasons[0]
    more_bleed = rule.decide(_metrics(0.70, 1.5), active)
    assert not more_bleed.passed and "more" in more_bleed.reasons[1]
    assert GateRule(max_dice_drop=0.02).decide(_metrics(0.59, 0.5), active).passed
    assert GateRule(max_normal_ml_increase=1.0).decide(_metrics(0.7, 1.5), active).passed
    assert rule.decide(_metrics(0.1, 9.0), None).passed  # nothing active yet
    assert "Dice over the classes present" in rule.describe() and "confirmed-normal" in rule.describe()


def test_cli_models_list_activate_rollback_import(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    reg = ["models", "--registry", str(tmp_path / "registry")]
    assert main([*reg, "import", str(BUNDLED), "--activate"]) == 0
    assert main([*reg, "import", str(BUNDLED)]) == 0
    assert main([*reg, "activate", "v0002"]) == 0
    assert main([*reg, "rollback"]) == 0
    capsys.readouterr()
    assert main([*reg, "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[1].startswith("* v0001") and listing[2].startswith("  v0002")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    assert main([*reg, "import", str(bad)]) == 3
    err = capsys.readouterr().err
    assert "sssseg: error:" in err and "corrupt or truncated" in err and "Traceback" not in err
    assert main([*reg, "activate", "v7"]) == 2


# README's usage line: ``sssseg models list|activate VERSION|rollback [VERSION]|import FILE [--sha256 HEX]
# [--activate]  [--registry REGISTRY]`` puts --registry after the action; older scripts put it before.


@pytest.mark.parametrize("where", ["after", "before"])
def test_cli_models_accepts_registry_before_and_after_the_action(
        tmp_path: Path, capsys: pytest.CaptureFixture, where: str) -> None:
    registry = tmp_path / "registry"

    def models(*action: str) -> int:
        flag = ["--registry", str(registry)]
        return main(["models", *action, *flag] if where == "after" else ["models", *flag, *action])

    assert models("import", str(BUNDLED), "--sha256", file_sha256(BUNDLED), "--activate") == 0
    assert models("import", str(BUNDLED)) == 0
    assert models("activate", "v0002") == 0
    assert ModelRegistry(registry).active().version == "v0002"
    assert models("rollback") == 0
    assert ModelRegistry(registry).active().version == "v0001"
    assert models("rollback", "v0002") == 0
    capsys.readouterr()
    assert models("list") == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0] == f"registry {registry}"
    assert listing[1].startswith("  v0001") and listing[2].startswith("* v0002")


def test_finetune_help_names_no_default_for_its_required_registry(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--registry REGISTRY model registry folder" in text
    assert "default: $SSSSEG_REGISTRY" not in text


def test_engine_default_model_is_the_registry_active_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from SSSSegmentLib import api

    registry = ModelRegistry(tmp_path / "registry")
    monkeypatch.setenv("SSSSEG_REGISTRY", str(registry.root))
    assert api.load_model(device="cpu").source == "bundled sss_tiny.safetensors"  # empty registry
    registry.import_checkpoint(BUNDLED, activate=True)
    loaded = api.load_model(device="cpu")
    assert loaded.source.startswith("registry version v0001") and loaded.trained and not loaded.bundled
    assert api.load_model(preset="tiny", device="cpu").source.startswith("registry version v0001")
    monkeypatch.setenv("SSSSEG_REGISTRY", "")
    assert api.load_model(device="cpu").source == "bundled sss_tiny.safetensors"


def test_registry_location_does_not_import_the_store() -> None:
    """location.py is the bottom of the package: store.py imports it, never the other way (no circle)."""
    import ast

    import SSSSegmentLib.registry.location as location

    tree = ast.parse(Path(location.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(m and (m == "store" or m.endswith(".store") or m.startswith("registry")) for m in imported)
    assert not any(isinstance(node, ast.ImportFrom) and node.level > 0 and node.module in (None, "store")
                   for node in ast.walk(tree))
