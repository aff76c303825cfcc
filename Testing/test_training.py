"""Training harness: methods learn, resume is exact, torchrun/DDP keeps ranks equal, errors are clear.

The ``tiny_dataset`` fixture is in conftest.py; ``FAST`` and ``train_config`` in training_helpers.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from training_helpers import FAST, train_config

from SSSSegmentLib.errors import Cancelled, CheckpointError, OutputError, SSSSegError
from SSSSegmentLib.training import METHODS, TrainConfig, load_train_config, run_training
from SSSSegmentLib.training.distributed import DistInfo
from SSSSegmentLib.training.loop import _Run
from SSSSegmentLib.training.run_data import load_run_data, make_views

REPO = Path(__file__).resolve().parents[1]


def test_unknown_config_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"method": "sss", "learning_rate": 0.1}))
    with pytest.raises(SSSSegError, match="unknown training config key.*learning_rate"):
        load_train_config(path)


def test_config_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"dataset_dir": "data", "method": "fixmatch", "steps": 3}))
    config = load_train_config(path)
    assert Path(config.dataset_dir) == tmp_path / "data"
    assert (config.method, config.steps, config.conf_threshold) == ("fixmatch", 3, 0.95)
    with pytest.raises(SSSSegError, match="method must be one of"):
        TrainConfig(method="meanteacher")


def test_encoder_frozen_default_follows_the_starting_weights() -> None:
    assert TrainConfig().encoder_frozen is False
    assert TrainConfig(sam2_checkpoint="sam2.1_hiera_tiny.pt").encoder_frozen is True
    assert TrainConfig(sam2_checkpoint="x.pt", freeze_encoder=False).encoder_frozen is False


@pytest.mark.parametrize("method", METHODS)
def test_each_method_reduces_its_loss_on_a_fixed_batch(tiny_dataset: Path, tmp_path: Path, method: str) -> None:
    config = train_config(tiny_dataset, tmp_path, method=method, lr=2e-3, ema_decay=0.9)
    dist = DistInfo(0, 1, 0)
    data = load_run_data(config, dist, lambda *a, **k: None)
    run = _Run(config, dist, torch.device("cpu"), lambda *a, **k: None)
    losses = []
    for step in range(8):
        views, _ = make_views(data, config, 0, 0, 0, torch.device("cpu"))  # the same batch every step
        gen = torch.Generator().manual_seed(step)
        loss, stats = run.runner(views, run.teacher, gen)
        loss.backward()
        run.optimizer.step()
        run.optimizer.zero_grad()
        losses.append(loss.item())
        if method != "supervised":
            assert 0.0 <= float(stats["mask_ratio"]) <= 1.0
    assert np.mean(losses[-2:]) < 0.9 * np.mean(losses[:2]), losses


def _stop_at(step: int):  # noqa: ANN202
    def progress(stage: str, fraction: float, message: str = "") -> None:
        if stage == "train" and message.startswith(f"step {step}/"):
            raise Cancelled("killed for the test")
    return progress


def test_kill_and_resume_equals_an_uninterrupted_run(tiny_dataset: Path, tmp_path: Path) -> None:
    straight = run_training(train_config(tiny_dataset, tmp_path / "a", method="sss", steps=4, checkpoint_every=2))
    config = train_config(tiny_dataset, tmp_path / "b", method="sss", steps=4, checkpoint_every=2)
    with pytest.raises(Cancelled):
        run_training(config, progress=_stop_at(3))  # dies after step 3; last state is step 2
    resumed = run_training(config, resume=True)
    assert resumed.steps_done == 4
    assert resumed.final_weights_sha256 == straight.final_weights_sha256
    steps_logged = [int(line.split('"step": ')[1].split(",")[0]) for line in resumed.log_path.read_text().splitlines()]
    assert steps_logged == [1, 2, 3, 4]
    assert straight.curves_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from SSSSegmentLib.model import load_sss_checkpoint

    model = load_sss_checkpoint(straight.final_checkpoint, expected_preset="tiny")
    assert model.checkpoint_info["info"]["method"] == "sss"


def test_warm_start_keeps_the_recommended_inference_settings(tiny_dataset: Path, tmp_path: Path) -> None:
    from SSSSegmentLib.model import build_model, load_sss_checkpoint, save_sss_checkpoint

    start = tmp_path / "start.safetensors"
    save_sss_checkpoint(start, build_model("tiny"), {"inference": {"refine": False}})
    result = run_training(train_config(tiny_dataset, tmp_path / "run", method="supervised", steps=1,
                                  init_checkpoint=str(start)))
    info = load_sss_checkpoint(result.final_checkpoint).checkpoint_info["info"]
    assert info["inference"] == {"refine": False} and info["steps"] == 1


def test_resume_errors_are_clear(tiny_dataset: Path, tmp_path: Path) -> None:
    config = train_config(tiny_dataset, tmp_path / "run", method="supervised", steps=2)
    with pytest.raises(CheckpointError, match="no training state"):
        run_training(config, resume=True)
    run_training(config)
    with pytest.raises(OutputError, match="already holds a training run"):
        run_training(config)
    state = Path(config.output_dir) / "train_state.pt"
    state.write_bytes(state.read_bytes()[:200])  # truncated
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        run_training(config.replace(steps=3), resume=True)
    state.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        run_training(config.replace(steps=3), resume=True)


def test_resume_refuses_a_changed_method(tiny_dataset: Path, tmp_path: Path) -> None:
    config = train_config(tiny_dataset, tmp_path / "run", method="supervised", steps=1)
    run_training(config)
    with pytest.raises(CheckpointError, match="config changed.*method"):
        run_training(config.replace(method="fixmatch", steps=2), resume=True)


def test_torchrun_two_processes_end_with_equal_weights(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cfg = {"dataset_dir": str(tiny_dataset), "output_dir": str(out), "method": "supervised", "steps": 3, **FAST}
    cfg_path = tmp_path / "ddp.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "SSSSegmentLib.training", "--config", str(cfg_path), "--progress", "none"]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    hashes = [(out / f"weights_rank{r}.sha256").read_text().strip() for r in (0, 1)]
    assert len(hashes[0]) == 64 and hashes[0] == hashes[1]
    assert (out / "final.safetensors").is_file()
