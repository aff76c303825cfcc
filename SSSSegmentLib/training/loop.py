"""``run_training``: one harness for every method, single process or under torchrun (DDP).

Outputs in ``output_dir``: ``train_state.pt`` (resumable state, every ``checkpoint_every`` steps),
``best.safetensors`` (best validation mean Dice, SSS format), ``final.safetensors`` (SSS format),
``train_log.jsonl`` (losses, pseudo-label mask ratio, validation Dice per class), ``curves.png``,
``config.json``; under torchrun also ``weights_rank<R>.sha256`` (final weights hash per rank).
For methods with an EMA teacher the exported models are the teacher's weights.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from ..errors import OutputError
from ..inference.encode import autocast_for
from ..model import resolve_device, save_sss_checkpoint
from ..progress import ProgressCallback, silent
from . import checkpointing as ckpt
from .config import TrainConfig
from .curves import draw_curves
from .distributed import DistInfo, barrier, init_distributed, shutdown_distributed, weights_sha256
from .methods import MethodSettings, TrainStep
from .model_setup import build_student, make_teacher, trainable_parameters, update_ema
from .run_data import RunData, load_run_data, make_views
from .validate import evaluate_model

LOG_NAME, BEST_NAME, FINAL_NAME, CURVES_NAME = "train_log.jsonl", "best.safetensors", "final.safetensors", "curves.png"
GRAD_CLIP = 1.0


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced (paths in ``output_dir``)."""

    output_dir: Path
    final_checkpoint: Path
    best_checkpoint: Path | None
    log_path: Path
    curves_png: Path
    steps_done: int
    best_val_dice: float | None
    final_weights_sha256: str


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class LrSchedule(Protocol):
    """The fields ``learning_rate`` reads (``TrainConfig``, ``decoder_tune.DecoderTuneConfig``)."""

    lr: float
    min_lr_ratio: float
    warmup_steps: int
    steps: int


def learning_rate(config: LrSchedule, step: int) -> float:
    """Linear warm-up, then cosine decay from ``lr`` to ``lr * min_lr_ratio`` at ``steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    t = min(1.0, (step - config.warmup_steps) / span)
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


class _Run:
    """State of one run (kept together so the loop's helpers stay short)."""

    def __init__(self, config: TrainConfig, dist: DistInfo, device: torch.device, progress: ProgressCallback):
        self.config, self.dist, self.device, self.progress = config, dist, device, progress
        self.out = Path(config.output_dir)
        self.model = build_student(config, device)
        self.teacher = make_teacher(self.model) if config.method in ("unimatch_v2", "sss") else None
        settings = MethodSettings(config.method, config.conf_threshold, config.unsup_weight,
                                  config.decoder_weight, config.max_prompts)
        self.step_module = TrainStep(self.model, settings)
        self.runner = (DistributedDataParallel(self.step_module, find_unused_parameters=True)
                       if dist.enabled else self.step_module)
        self.optimizer = torch.optim.AdamW(trainable_parameters(self.model), lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.step, self.best_score = 0, float("-inf")

    @property
    def export_model(self) -> torch.nn.Module:
        return self.teacher if self.teacher is not None else self.model

    def state(self) -> ckpt.TrainState:
        return ckpt.TrainState(self.step, self.model.state_dict(),
                               None if self.teacher is None else self.teacher.state_dict(),
                               self.optimizer.state_dict(), ckpt.rng_state(), self.config.to_dict(), self.best_score)

    def restore(self, path: Path) -> None:
        saved = ckpt.load_train_state(path)
        ckpt.check_resume_config(saved.config, self.config.to_dict(), path)
        self.model.load_state_dict(saved.model)
        if self.teacher is not None and saved.ema is not None:
            self.teacher.load_state_dict(saved.ema)
        self.optimizer.load_state_dict(saved.optimizer)
        ckpt.set_rng_state(saved.rng)
        self.step, self.best_score = saved.step, saved.best_score

    def train_step(self, data: RunData) -> dict[str, float]:
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.config, self.step)
        totals: dict[str, float] = {}
        accum = self.config.grad_accum
        for micro in range(accum):
            views, gen = make_views(data, self.config, self.step, self.dist.rank, micro, self.device)
            last = micro == accum - 1
            sync = contextlib.nullcontext() if (last or not self.dist.enabled) else self.runner.no_sync()
            with sync:
                with autocast_for(self.device):
                    loss, stats = self.runner(views, self.teacher, gen)
                (loss / accum).backward()
            for key, value in {"loss": loss.detach(), **stats}.items():
                totals[key] = totals.get(key, 0.0) + float(value) / accum
        torch.nn.utils.clip_grad_norm_(trainable_parameters(self.model), GRAD_CLIP)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.teacher is not None:
            update_ema(self.teacher, self.model, self.config.ema_decay, self.step)
        self.step += 1
        return totals


def _prepare_output(config: TrainConfig, resume: bool) -> Path:
    out = Path(config.output_dir)
    if not out.parent.is_dir():
        raise OutputError(f"parent of output_dir does not exist: {out.parent}")
    out.mkdir(exist_ok=True)
    if not resume and (out / ckpt.STATE_NAME).exists():
        raise OutputError(f"{out} already holds a training run; resume it (--resume) or choose another output_dir")
    return out


def _log(path: Path, record: dict) -> None:
    """Append one record; NaN / inf become null (strict JSON)."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
    with open(path, "a") as fh:
        fh.write(json.dumps(clean) + "\n")


def _trim_log(path: Path, step: int) -> None:
    """Drop records after ``step`` (written by a run that was killed after its last checkpoint)."""
    if path.is_file():
        kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in kept))


def _validate(run: _Run, data: RunData, log_path: Path) -> None:
    scores = evaluate_model(run.export_model, data.validation, run.device)
    run.model.train()
    if run.teacher is not None:
        run.teacher.train()
    record = {"step": run.step, "val_mean_dice": scores.mean_dice, "val_mean_hd95_mm": scores.mean_hd95_mm,
              **{f"val_dice_{k}": v for k, v in scores.dice_by_class.items()}}
    _log(log_path, record)
    if scores.score > run.best_score:
        run.best_score = scores.score
        save_sss_checkpoint(run.out / BEST_NAME, run.export_model, _info(run, {"val_mean_dice": scores.mean_dice}))


def _info(run: _Run, extra: dict) -> dict:
    """Checkpoint info; a warm start's recommended inference settings carry over (validation used them)."""
    info = {"method": run.config.method, "steps": run.step, "seed": run.config.seed,
            "dataset_dir": run.config.dataset_dir, "encoder_frozen": run.config.encoder_frozen, **extra}
    inherited = ((run.model.checkpoint_info or {}).get("info") or {}).get("inference")
    return {**info, "inference": inherited} if inherited is not None else info


def _periodic(run: _Run, data: RunData, log_path: Path, stats: dict[str, float], t0: float) -> None:
    cfg = run.config
    if run.dist.is_main:
        if run.step % cfg.log_every == 0 or run.step == cfg.steps:
            _log(log_path, {"step": run.step, "lr": learning_rate(cfg, run.step - 1),
                            "seconds": round(time.perf_counter() - t0, 2), **stats})
        if data.validation and (run.step % cfg.val_every == 0 or run.step == cfg.steps):
            _validate(run, data, log_path)
        if run.step % cfg.checkpoint_every == 0 or run.step == cfg.steps:
            ckpt.save_train_state(run.out / ckpt.STATE_NAME, run.state())
    barrier(run.dist)
    run.progress("train", run.step / cfg.steps, f"step {run.step}/{cfg.steps} loss {stats['loss']:.4f}")


def run_training(config: TrainConfig, resume: bool = False, progress: ProgressCallback = silent) -> TrainResult:
    """Train ``config.method`` for ``config.steps`` optimizer steps (continuing a run with ``resume``)."""
    device = resolve_device(config.device)
    dist = init_distributed(device)
    try:
        return _train(config, resume, progress, dist, device)
    finally:
        shutdown_distributed(dist)


def _train(config: TrainConfig, resume: bool, progress: ProgressCallback, dist: DistInfo,
           device: torch.device) -> TrainResult:
    if device.type == "cuda" and dist.enabled:
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    out = _prepare_output(config, resume) if dist.is_main else Path(config.output_dir)
    barrier(dist)
    seed_everything(config.seed)
    data = load_run_data(config, dist, progress)
    run = _Run(config, dist, device, progress)
    log_path = out / LOG_NAME
    if resume:
        run.restore(out / ckpt.STATE_NAME)
        if dist.is_main:
            _trim_log(log_path, run.step)
    elif dist.is_main:
        log_path.write_text("")
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    t0 = time.perf_counter()
    while run.step < config.steps:
        stats = run.train_step(data)
        _periodic(run, data, log_path, stats, t0)
    return _finish(run, out, log_path)


def _finish(run: _Run, out: Path, log_path: Path) -> TrainResult:
    sha = weights_sha256(run.model.state_dict())
    final, curves = out / FINAL_NAME, out / CURVES_NAME
    if run.dist.enabled:
        (out / f"weights_rank{run.dist.rank}.sha256").write_text(sha + "\n")
    if run.dist.is_main:
        save_sss_checkpoint(final, run.export_model, _info(run, {}))
        draw_curves(log_path, curves)
    barrier(run.dist)
    best = out / BEST_NAME
    best_dice = run.best_score if math.isfinite(run.best_score) else None
    return TrainResult(out, final, best if best.is_file() else None, log_path, curves, run.step, best_dice, sha)
