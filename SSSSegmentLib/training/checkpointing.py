"""Resumable training state: one ``torch.save`` file of tensors and state dicts, written atomically.

Contents (all loadable with ``weights_only=True``, no pickled Python objects): ``format``,
``step`` (steps completed), ``model``, ``ema`` (teacher, may be absent), ``optimizer`` state dicts,
``rng`` (torch CPU, CUDA, numpy and python RNG states as tensors) and ``config`` (the training
config as plain values, to refuse resuming with an incompatible one).
"""

from __future__ import annotations

import pickle
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..fsutil import atomic_path

STATE_FORMAT = "sssseg-train-state-v1"
STATE_NAME = "train_state.pt"
# Config keys that must not change between a run and its resumption (the rest may, e.g. steps).
RESUME_KEYS = ("method", "preset", "seed", "batch_labeled", "batch_unlabeled", "grad_accum", "lr",
               "sam2_checkpoint", "init_checkpoint", "freeze_encoder", "unfreeze_last_stage")


def rng_state() -> dict[str, torch.Tensor]:
    """Torch (CPU, CUDA), numpy (legacy global) and python RNG states as tensors."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
        "numpy_pos": torch.tensor([np_pos, np_has_gauss], dtype=torch.int64),
        "numpy_gauss": torch.tensor([np_gauss], dtype=torch.float64),
        "python_internal": torch.tensor(py_internal, dtype=torch.int64),
        "python_meta": torch.tensor([py_version], dtype=torch.int64),
        "python_gauss": torch.tensor([np.nan if py_gauss is None else py_gauss], dtype=torch.float64),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    """Restore what ``rng_state`` captured."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))
    pos, has_gauss = (int(v) for v in state["numpy_pos"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss,
                         float(state["numpy_gauss"][0])))
    gauss = float(state["python_gauss"][0])
    random.setstate((int(state["python_meta"][0]), tuple(int(v) for v in state["python_internal"]),
                     None if np.isnan(gauss) else gauss))


@dataclass
class TrainState:
    """A loaded training state (see module docstring)."""

    step: int
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None
    optimizer: dict[str, Any]
    rng: dict[str, torch.Tensor]
    config: dict[str, Any]
    best_score: float


def save_train_state(path: Path, state: TrainState) -> None:
    """Write the state atomically (a kill mid-write leaves the previous file intact)."""
    payload = {
        "format": STATE_FORMAT,
        "step": int(state.step),
        "model": {k: v.detach().cpu() for k, v in state.model.items()},
        "ema": None if state.ema is None else {k: v.detach().cpu() for k, v in state.ema.items()},
        "optimizer": state.optimizer,
        "rng": state.rng,
        "config": state.config,
        "best_score": float(state.best_score),
    }
    with atomic_path(Path(path)) as tmp:
        torch.save(payload, tmp)


def load_train_state(path: Path) -> TrainState:
    """Read a training state; CheckpointError when missing, corrupt or not a training state."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no training state to resume from: {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"training state {path} is corrupt or truncated ({type(exc).__name__}: {str(exc)[:120]}); "
            "delete it to start over, or restore it from a backup") from None
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path} is not an SSSSegment training state (format {STATE_FORMAT!r} expected)")
    missing = [k for k in ("step", "model", "optimizer", "rng", "config") if k not in payload]
    if missing:
        raise CheckpointError(f"training state {path} is incomplete: missing {', '.join(missing)}")
    return TrainState(step=int(payload["step"]), model=payload["model"], ema=payload.get("ema"),
                      optimizer=payload["optimizer"], rng=payload["rng"], config=payload["config"],
                      best_score=float(payload.get("best_score", float("-inf"))))


def check_resume_config(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """CheckpointError when a setting that shapes the run differs from the saved run's."""
    changed = [k for k in RESUME_KEYS if saved.get(k) != current.get(k)]
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise CheckpointError(f"cannot resume from {path}: the config changed ({details})")
