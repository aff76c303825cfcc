"""``sssseg finetune``: site split, the sss run from the active model, a full disk, SIGKILL mid-write and
resume, registration and the gate (tiny phantoms, a few CPU steps)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from SSSSegmentLib.bundled_models import bundled_model_path
from SSSSegmentLib.errors import OutputError
from SSSSegmentLib.finetune import FinetuneRequest, run_finetune
from SSSSegmentLib.finetune.reference import ReferenceSpec
from SSSSegmentLib.finetune.run import has_interrupted_run
from SSSSegmentLib.fsutil import file_sha256
from SSSSegmentLib.registry import GateDecision, GateRule, ModelFigures, ModelRegistry
from SSSSegmentLib.training.checkpointing import load_train_state

# The gate's reference set, small for tests (the product's default is 8 phantoms of 256 x 256).
SMALL_REFERENCE = ReferenceSpec(cases=2, matrix=96, num_slices=8)
QUICK = {"batch_labeled": 1, "batch_unlabeled": 2, "max_prompts": 2, "warmup_steps": 1, "log_every": 1,
         "checkpoint_every": 1, "val_every": 2, "freeze_encoder": True}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A site folder (3 corrected cases with bleeds + 1 confirmed normal) and 1 unlabeled scan."""
    from SSSSegmentLib.datasets import read_dataset_index
    from SSSSegmentLib.phantoms import PhantomConfig, write_dataset
    from SSSSegmentLib.site_data import add_site_case
    from SSSSegmentLib.training.cases import read_case

    root = tmp_path_factory.mktemp("site")
    small = {"matrix": 96, "num_slices": 8}
    write_dataset(root / "bleeds", 4, seed=5, labeled_fraction=1.0,
                  config=PhantomConfig(**small, lesion_keys=("IPH", "SDH"), lesion_size_quantiles=(0.6, 1.0)))
    write_dataset(root / "normal", 1, seed=9, labeled_fraction=1.0, config=PhantomConfig(**small, lesion_keys=()))
    cases = list(read_dataset_index(root / "bleeds").labeled)
    for case in (*cases[:3], *read_dataset_index(root / "normal").labeled):
        volume, labels = read_case(case)
        add_site_case(root / "site", volume.hu_zyx, volume.geometry, labels)
    (root / "unlabeled").mkdir()
    shutil.copy(cases[3].image, root / "unlabeled" / "scan.nii.gz")
    return SimpleNamespace(dir=root / "site", unlabeled=root / "unlabeled")


def _request(site: SimpleNamespace, registry: Path, **changes: object) -> FinetuneRequest:
    values = {"site_dir": site.dir, "registry_dir": registry, "unlabeled_dir": site.unlabeled, "steps": 2,
              "device": "cpu", "overrides": QUICK, "reference": SMALL_REFERENCE, **changes}
    return FinetuneRequest(**values)


# A child ``sssseg`` whose second ``torch.save`` writes half its bytes, touches ``argv[1]`` and hangs.
KILLED_MID_WRITE = """
import io, sys, time
from pathlib import Path
import torch
real_save, calls = torch.save, []
def half_save(obj, f, *args, **kwargs):
    calls.append(f)
    if len(calls) < 2:
        return real_save(obj, f, *args, **kwargs)
    buffer = io.BytesIO()
    real_save(obj, buffer)
    Path(f).write_bytes(buffer.getvalue()[: buffer.tell() // 2])
    Path(sys.argv[1]).touch()
    time.sleep(600)
torch.save = half_save
from SSSSegmentLib.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _wait_for(path: Path, proc: subprocess.Popen, timeout_s: float = 240) -> None:
    end = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.1)


def test_full_disk_then_sigkill_then_resume_ends_with_a_valid_registry(
        site: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    registry_dir = tmp_path / "registry"
    work = registry_dir / "work"

    def disk_full(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    # 1. The disk fills at the first checkpoint: a clear message, the active model intact.
    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OutputError, match="the disk is full. Nothing was switched: the active model is unchanged"):
        run_finetune(_request(site, registry_dir))
    monkeypatch.undo()
    registry = ModelRegistry(registry_dir)
    bundled = registry.active()
    assert bundled.version == "v0001" and bundled.source == "bundled tiny model"
    assert file_sha256(bundled.model_path) == file_sha256(bundled_model_path("tiny"))
    assert not (work / "train" / "train_state.pt").exists() and not list((work / "train").glob(".*"))

    # 2. Resumed in a child process, SIGKILLed in the middle of writing its second checkpoint: the
    # child's torch.save writes half the bytes of step 2's state, then waits to be killed.
    config = tmp_path / "finetune.yaml"
    config.write_text(yaml.safe_dump(QUICK))
    marker = tmp_path / "mid-write"
    cmd = [sys.executable, "-c", KILLED_MID_WRITE, str(marker), "finetune", "--site", str(site.dir), "--unlabeled",
           str(site.unlabeled), "--registry", str(registry_dir), "--steps", "2", "--resume", "--device", "cpu",
           "--train-config", str(config), "--progress", "none"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(marker, proc)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert [v.version for v in registry.versions()] == ["v0001"] and registry.active().version == "v0001"
    assert has_interrupted_run(registry_dir)  # the panel's Fine-tune will continue it (--resume)
    assert load_train_state(work / "train" / "train_state.pt").step == 1  # step 1's state, intact
    assert len(list((work / "train").glob(".train_state.*.pt"))) == 1  # the half-written step 2
    # What a kill during the registry's copy leaves: a half-copied version.
    (registry_dir / "versions" / ".incoming-dead").mkdir()
    (registry_dir / "versions" / ".incoming-dead" / "model.safetensors").write_bytes(b"partial")

    # 3. --resume finishes the run, registers it once and applies the gate.
    lines: list[str] = []
    result = run_finetune(_request(site, registry_dir, resume=True), log=lines.append)
    new = result.version
    assert any(line.startswith("held out 1 of 4 corrected case(s) for validation") for line in lines)
    assert any(line.startswith("warning: 1 held-out case(s): the gate cannot judge improvement") for line in lines)
    assert any(line.startswith("validation at step 2: mean Dice") for line in lines)
    assert any(line.startswith("gate PASSED") or line.startswith("gate FAILED") for line in lines)
    assert result.steps_done == 2 and new.version == "v0002" and new.base == "v0001"
    assert [v.version for v in registry.versions()] == ["v0001", "v0002"]
    assert new.data_counts == {"labeled_train": 3, "heldout": 1, "normal": 1, "unlabeled": 1}
    assert new.config["method"] == "sss" and new.config["init_checkpoint"] == str(bundled.model_path)
    assert new.sha256 == file_sha256(new.model_path)
    new_figures = ModelFigures.from_dict(new.metrics["figures"])
    active_figures = ModelFigures.from_dict(new.metrics["active_figures"])
    assert len(new_figures.reference_dice) == 2 and len(new_figures.heldout_dice) == 1
    assert len(new_figures.normal_ml) == 1 and all(0.0 <= d <= 1.0 for d in new_figures.reference_dice)
    expected = GateRule().decide(new_figures, active_figures)
    assert GateDecision.from_dict(new.metrics["gate"]) == expected and result.decision == expected
    assert expected.parts[2].status == "not judged"  # 1 held-out case
    assert registry.active().version == ("v0002" if expected.passed else "v0001")
    log = [json.loads(line) for line in (result.run_dir / "train" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2]  # no step lost or repeated
    assert any("val_mean_dice" in r for r in log)
    assert not work.exists() and result.run_dir.parent == registry_dir / "runs"
    assert new.sha256 == file_sha256(result.run_dir / "train" / "final.safetensors")
    assert not has_interrupted_run(registry_dir)


def _fake_training(final: Path):  # noqa: ANN202
    def run_training(config, resume=False, progress=None):  # noqa: ANN001, ANN202
        return SimpleNamespace(final_checkpoint=final, steps_done=config.steps, log_path=final.with_suffix(".jsonl"))
    return run_training


def _figures(reference: float, heldout: float, normal_ml: float) -> ModelFigures:
    """Figures of 2 reference phantoms (Dice ``reference`` +- 0.05), 1 held-out case, 1 normal case."""
    return ModelFigures((reference - 0.05, reference + 0.05), (("SDH", reference),), (heldout,), (normal_ml,))


def test_gate_keeps_the_active_model_when_worse_and_switches_when_better(
        site: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    import SSSSegmentLib.finetune.run as ft_run
    import SSSSegmentLib.training as training
    from SSSSegmentLib.cli import main

    final = tmp_path / "final.safetensors"
    shutil.copy(bundled_model_path("tiny"), final)
    monkeypatch.setattr(training, "run_training", _fake_training(final))
    registry = ModelRegistry(tmp_path / "registry")
    active_figures = _figures(0.60, 0.60, 1.0)
    for new_figures, active_after in ((_figures(0.55, 0.90, 0.5), "v0001"),   # forgot, held-out rose: kept
                                      (_figures(0.70, 0.70, 2.0), "v0001"),   # more bleed on normal: kept
                                      (_figures(0.61, 0.20, 0.9), "v0004")):  # better; 1 held-out not judged
        def figures(path: Path, reference: list, plan: object, device: str,
                    new: ModelFigures = new_figures) -> ModelFigures:
            assert len(reference) == 2  # the request's reference set, generated once for both models
            return new if path == final else active_figures

        monkeypatch.setattr(ft_run, "_figures_of", figures)
        lines: list[str] = []
        result = run_finetune(_request(site, registry.root), log=lines.append)
        assert registry.active().version == active_after == result.active
        assert result.decision.passed == (active_after == result.version.version)
        assert any(line.startswith("reference set: site scanner profile estimated from 3 scan(s)") for line in lines)
    assert [v.version for v in registry.versions()] == ["v0001", "v0002", "v0003", "v0004"]
    capsys.readouterr()
    assert main(["models", "list", "--registry", str(registry.root)]) == 0
    listing = capsys.readouterr().out
    # Each part of each decision, with its figures (v0002: reference -0.050 on both phantoms).
    assert "gate refused against v0001:" in listing and "gate passed against v0001:" in listing
    assert ("reference set (forgetting): FAIL: Dice new 0.550 vs active 0.600; difference -0.050 [-0.050, -0.050] "
            "over 2 case(s)") in listing
    assert "confirmed-normal site cases: FAIL: bleed called: new 2.00 mL vs active 1.00 mL" in listing
    assert "held-out corrected cases: NOT JUDGED: Dice new 0.200 vs active 0.600 on 1 case(s): cannot judge" in listing
    assert registry.rollback().version == "v0001"


def test_finetune_refuses_bad_requests(site: SimpleNamespace, tmp_path: Path) -> None:
    from SSSSegmentLib.cli import main

    registry = tmp_path / "registry"
    assert main(["finetune", "--site", str(tmp_path / "nothing"), "--registry", str(registry)]) == 2
    assert main(["finetune", "--site", str(site.dir), "--registry", str(registry), "--resume"]) == 2
    assert main(["finetune", "--site", str(site.dir), "--registry", str(registry), "--base", "v0042"]) == 2
    assert main(["finetune", "--site", str(site.dir), "--registry", str(registry), "--heldout-share", "1"]) == 2
    assert main(["finetune", "--site", str(site.dir), "--registry", str(registry), "--max-dice-drop", "-1"]) == 2
    assert main(["finetune", "--site", str(site.dir), "--registry", str(registry), "--reference-margin", "-1"]) == 2
    assert not registry.exists()  # refused before anything was written


def test_a_run_killed_after_registering_does_not_register_twice(
        site: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import SSSSegmentLib.finetune.run as ft_run
    import SSSSegmentLib.training as training

    final = tmp_path / "final.safetensors"
    shutil.copy(bundled_model_path("tiny"), final)
    monkeypatch.setattr(training, "run_training", _fake_training(final))
    monkeypatch.setattr(ft_run, "_figures_of", lambda path, reference, plan, device: _figures(0.5, 0.5, 0.0))
    real_archive = ft_run._archive

    def killed(*_args: object) -> None:
        raise KeyboardInterrupt  # the process dies between registration and clean-up

    monkeypatch.setattr(ft_run, "_archive", killed)
    registry = ModelRegistry(tmp_path / "registry")
    with pytest.raises(KeyboardInterrupt):
        run_finetune(_request(site, registry.root))
    monkeypatch.setattr(ft_run, "_archive", real_archive)
    result = run_finetune(_request(site, registry.root, resume=True))
    assert [v.version for v in registry.versions()] == ["v0001", "v0002"] and result.version.version == "v0002"
    assert registry.active().version == "v0002"  # equal figures pass the gate


def test_the_panel_runs_finetune_as_a_child_speaking_json_lines(
        site: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    import SSSSegmentLib.finetune.run as ft_run
    import SSSSegmentLib.training as training
    from SSSSegmentLib.cli import main
    from SSSSegmentLib.runner import DoneEvent, LogEvent, parse_line
    from SSSSegmentLib.slicer_bridge.finetune_job import finetune_command

    command = finetune_command(site.dir, tmp_path / "registry", site.unlabeled, steps=2, device="cpu")
    assert command[1:4] == ["-m", "SSSSegmentLib.cli", "finetune"] and "--resume" not in command
    assert command[command.index("--progress") + 1] == "json"
    final = tmp_path / "final.safetensors"
    shutil.copy(bundled_model_path("tiny"), final)
    monkeypatch.setattr(training, "run_training", _fake_training(final))
    monkeypatch.setattr(ft_run, "_figures_of", lambda path, reference, plan, device: _figures(0.5, 0.5, 0.0))
    assert main(command[3:]) == 0
    events = [parse_line(line) for line in capsys.readouterr().out.splitlines()]
    assert any(isinstance(e, LogEvent) and "held out 1 of 4 corrected case(s)" in e.message for e in events)
    assert isinstance(events[-1], DoneEvent)
    assert events[-1].outputs == (str(ModelRegistry(tmp_path / "registry").get("v0002").model_path),)


def test_unlabeled_scans_are_nifti_files_and_dicom_series_folders_read_in_place(
        site: SimpleNamespace, tilted_ct_dir: Path, tmp_path: Path) -> None:
    from SSSSegmentLib.datasets import read_dataset_index
    from SSSSegmentLib.finetune.plan import plan_site, write_run_index
    from SSSSegmentLib.training.cases import read_case

    scans = tmp_path / "scans"
    shutil.copytree(site.unlabeled, scans)
    (scans / "ge_series").symlink_to(tilted_ct_dir, target_is_directory=True)
    (scans / "notes").mkdir()
    (scans / "notes" / "readme.txt").write_text("not a scan")
    plan = plan_site(site.dir, scans, heldout_share=0.25)
    assert [(c.case_id, c.image) for c in plan.unlabeled] == [("scan", scans / "scan.nii.gz"),
                                                             ("ge_series", scans / "ge_series")]
    (tmp_path / "work").mkdir()
    index = read_dataset_index(write_run_index(plan, tmp_path / "work"))
    assert [c.image for c in index.unlabeled] == [(scans / "scan.nii.gz").resolve(), tilted_ct_dir.resolve()]
    volume, labels = read_case(index.unlabeled[1])
    assert labels is None and volume.hu_zyx.shape[0] >= 28
    with pytest.raises(Exception, match="no unlabeled scan"):
        plan_site(site.dir, tmp_path / "work", heldout_share=0.25)


def test_a_harmful_fine_tune_is_refused_by_the_gate(site: SimpleNamespace, tmp_path: Path) -> None:
    """Real training, real gate figures: a learning rate 100x the fine-tune default with the whole model
    training wrecks it; the reference set catches it although the 1 held-out case cannot be judged."""
    from SSSSegmentLib.finetune.plan import FINETUNE_DEFAULTS

    overrides = {**QUICK, "freeze_encoder": False, "method": "supervised", "batch_unlabeled": 0,
                 "lr": 100 * FINETUNE_DEFAULTS["lr"]}
    lines: list[str] = []
    request = _request(site, tmp_path / "registry", unlabeled_dir=None, steps=6, overrides=overrides)
    result = run_finetune(request, log=lines.append)
    assert not result.decision.passed and result.active == "v0001"
    assert ModelRegistry(tmp_path / "registry").active().version == "v0001"
    parts = {p.name.split(" (")[0]: p.status for p in result.decision.parts}
    assert parts["reference set"] == "fail"
    assert parts["held-out corrected cases"] == "not judged"  # 1 held-out case
    assert any(line.startswith("gate FAILED: the active model stays") for line in lines)


def _weak_start(path: Path) -> Path:
    """The bundled tiny model with its coarse head's classifiers reset to their initial state (background
    everywhere: a version that finds no bleed), written to ``path``."""
    import torch

    from SSSSegmentLib.model import load_sss_checkpoint, save_sss_checkpoint

    model = load_sss_checkpoint(bundled_model_path("tiny"), device="cpu")
    head = model.coarse_head
    for layer in (head.classifier, head.refine[-1]):
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    head._init_prior(0.99)
    save_sss_checkpoint(path, model, model.checkpoint_info["info"])
    return path


def test_a_helpful_fine_tune_is_accepted(site: SimpleNamespace, tmp_path: Path) -> None:
    """Real training, real gate figures: from a version that finds no bleed, 12 supervised steps of the
    coarse head on the 2 training cases raise the Dice the gate measures on the held-out case (not seen in
    training; 1 case, so the gate cannot judge improvement) without a loss on the reference phantoms or
    more bleed on the normal case, and the gate makes the new version active."""
    registry = ModelRegistry(tmp_path / "registry")
    registry.activate(registry.add_version(_weak_start(tmp_path / "weak.safetensors"), source="weak").version)
    overrides = {**QUICK, "method": "supervised", "batch_labeled": 2, "batch_unlabeled": 0, "decoder_weight": 0.0,
                 "lr": 1e-2, "val_every": 12}
    result = run_finetune(_request(site, registry.root, unlabeled_dir=None, steps=12, overrides=overrides))
    new = ModelFigures.from_dict(result.version.metrics["figures"])
    active = ModelFigures.from_dict(result.version.metrics["active_figures"])
    assert max(active.heldout_dice + active.reference_dice) < 0.05  # the weak start finds nothing
    assert sum(new.heldout_dice) > sum(active.heldout_dice) + 0.2  # measured on the held-out case
    assert result.decision.passed, result.decision.describe()
    assert registry.active().version == result.version.version == "v0002"
