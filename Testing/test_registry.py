"""The model registry: versions, the atomic active pointer, rollback, verified import, the gate,
the CLI (``sssseg models``) and the engine's default model (``api.load_model``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from SSSSegmentLib.bundled_models import bundled_model_path
from SSSSegmentLib.cli import main
from SSSSegmentLib.errors import CheckpointError, InputError
from SSSSegmentLib.fsutil import file_sha256
from SSSSegmentLib.registry import GateDecision, GateRule, ModelFigures, ModelRegistry, paired_bootstrap

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


def _figures(reference: list[float], heldout: list[float], normal_ml: list[float]) -> ModelFigures:
    return ModelFigures(tuple(reference), (("IPH", float(np.mean(reference))),), tuple(heldout), tuple(normal_ml))


def test_paired_bootstrap_interval_by_hand() -> None:
    # Every difference 0.05: every resample's mean is 0.05.
    same = paired_bootstrap([0.65, 0.75, 0.55], [0.6, 0.7, 0.5])
    assert (same.mean, same.low, same.high, same.n) == pytest.approx((0.05, 0.05, 0.05, 3))
    # Differences +0.1 and -0.1: resample means -0.1 (p 1/4), 0 (1/2), +0.1 (1/4); the 5th and 95th
    # percentiles are -0.1 and +0.1.
    pair = paired_bootstrap([0.6, 0.4], [0.5, 0.5])
    assert (pair.mean, pair.low, pair.high) == pytest.approx((0.0, -0.1, 0.1))
    with pytest.raises(ValueError):
        paired_bootstrap([0.5], [0.5, 0.6])


ACTIVE = _figures([0.70, 0.60, 0.80, 0.65, 0.75, 0.70], [0.60, 0.50, 0.70, 0.58], [1.0, 0.0])


def _parts(decision: GateDecision) -> dict[str, str]:
    return {p.name.split(" (")[0]: p.status for p in decision.parts}


def test_gate_accepts_a_version_better_everywhere_and_prints_each_part() -> None:
    better = _figures([0.72, 0.62, 0.81, 0.66, 0.78, 0.71], [0.66, 0.58, 0.75, 0.61], [0.5, 0.0])
    decision = GateRule().decide(better, ACTIVE)
    assert decision.passed
    assert _parts(decision) == {"reference set": "pass", "confirmed-normal site cases": "pass",
                                "held-out corrected cases": "pass"}
    text = decision.describe()
    assert "Dice new 0.717 vs active 0.700" in text  # reference means, by hand
    assert "new 0.50 mL vs active 1.00 mL on 2 case(s)" in text
    assert "Dice new 0.650 vs active 0.595" in text and "shows it better" in text


def test_gate_refuses_a_version_worse_on_the_reference_set_even_when_held_out_dice_rose() -> None:
    # The new-site failure: the held-out cases rose, the model forgot (reference -0.05 on every phantom).
    forgot = _figures([0.65, 0.55, 0.75, 0.60, 0.70, 0.65], [0.80, 0.70, 0.85, 0.75], [1.0, 0.0])
    decision = GateRule().decide(forgot, ACTIVE)
    assert not decision.passed
    assert _parts(decision) == {"reference set": "fail", "confirmed-normal site cases": "pass",
                                "held-out corrected cases": "pass"}
    assert "-0.050 [-0.050, -0.050]" in decision.describe()
    # A looser margin, stated by the user, lets the same figures through.
    assert GateRule(reference_margin=0.06).decide(forgot, ACTIVE).passed


def test_gate_judges_the_reference_set_by_its_interval_not_its_mean() -> None:
    # Mean difference 0 (four phantoms +0.04, two -0.08), but a third of the phantoms lost 0.08: the
    # interval's lower end (about -0.04) is below the margin.
    uneven = _figures([0.74, 0.52, 0.84, 0.57, 0.79, 0.74], list(ACTIVE.heldout_dice), [1.0, 0.0])
    decision = GateRule().decide(uneven, ACTIVE)
    assert not decision.passed and _parts(decision)["reference set"] == "fail"
    assert "difference +0.000 [" in decision.describe()


def test_gate_refuses_more_bleed_on_normal_cases_and_held_out_evidence_of_worse() -> None:
    more_ml = _figures(list(ACTIVE.reference_dice), list(ACTIVE.heldout_dice), [0.9, 0.3])
    decision = GateRule().decide(more_ml, ACTIVE)
    assert not decision.passed and _parts(decision)["confirmed-normal site cases"] == "fail"
    assert "new 1.20 mL vs active 1.00 mL" in decision.describe()
    assert GateRule(max_normal_ml_increase=0.2).decide(more_ml, ACTIVE).passed
    worse_heldout = _figures(list(ACTIVE.reference_dice), [0.50, 0.40, 0.60, 0.45], [1.0, 0.0])
    decision = GateRule().decide(worse_heldout, ACTIVE)
    assert not decision.passed and _parts(decision)["held-out corrected cases"] == "fail"
    assert "shows it worse" in decision.describe()


def test_gate_with_too_few_held_out_cases_cannot_judge_improvement() -> None:
    # 2 held-out cases (< min_heldout 4): even a large drop there is not judged; the reference set and
    # the normal cases decide.
    active = _figures(list(ACTIVE.reference_dice), [0.70, 0.60], [1.0, 0.0])
    dropped = _figures(list(ACTIVE.reference_dice), [0.20, 0.10], [1.0, 0.0])
    decision = GateRule().decide(dropped, active)
    assert decision.passed
    assert _parts(decision)["held-out corrected cases"] == "not judged"
    assert "cannot judge improvement with fewer than 4 held-out cases" in decision.describe()
    forgot = _figures([d - 0.1 for d in ACTIVE.reference_dice], [0.90, 0.95], [1.0, 0.0])
    assert not GateRule().decide(forgot, active).passed  # non-inferiority alone still refuses
    assert GateRule(min_heldout=2).decide(dropped, active).passed is False  # judged when 2 are enough


def test_gate_rule_checks_its_settings_and_passes_with_no_active_model() -> None:
    assert GateRule().decide(_figures([0.1], [0.1], [9.0]), None).passed
    for bad in ({"reference_margin": -0.1}, {"max_dice_drop": float("nan")}, {"min_heldout": 1},
                {"confidence": 1.0}):
        with pytest.raises(ValueError):
            GateRule(**bad)
    assert "reference phantoms" in GateRule().describe() and "confirmed-normal" in GateRule().describe()


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
