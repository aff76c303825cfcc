"""Build an SSSModel from a preset, optionally starting from official SAM-2 / SAM-2.1 weights."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from ..errors import CheckpointError, DeviceError
from ..fsutil import file_sha256
from .presets import ModelPreset, get_preset, preset_for_checkpoint_name
from .sss_model import SSSModel

_MAX_LISTED = 5  # keys listed in a mismatch message


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" -> cuda if available, else mps, else cpu; "cpu" / "cuda" / "cuda:N" / "mps" as asked.

    Asking for an accelerator that is not available, or an unknown name, raises DeviceError (exit code 5).
    """
    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device '{name}' requested but PyTorch sees no CUDA GPU: use --device cpu or "
                              "--device auto")
        return torch.device(name)
    if name == "mps":
        if not _mps_available():
            raise DeviceError("device 'mps' requested but Apple MPS is not available: use --device cpu or "
                              "--device auto")
        return torch.device("mps")
    raise DeviceError(f"unknown device {name!r}; choose auto, cpu, cuda or mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def build_sam(preset: ModelPreset) -> torch.nn.Module:
    """Random-init SAM2Base for ``preset`` (on CPU, eval mode): from its frozen config when that matches
    the installed sam2 (``sam2_config``), else through sam2's own Hydra config + builder; both make
    the same modules in the same order, so a seed gives the same weights. A "litemedsam" preset gets
    a random-init ``LiteSAM`` (``build_model`` then loads its pretrained weights)."""
    if preset.backbone == "litemedsam":
        from .lite_sam import LiteSAM

        return LiteSAM(preset.image_size).eval()
    from .sam2_config import frozen_config, instantiate

    config = frozen_config(preset)
    if config is not None:
        return instantiate(config).to("cpu").eval()
    from sam2.build_sam import build_sam2  # imported here: it initialises Hydra

    return build_sam2(preset.sam2_config, ckpt_path=None, device="cpu", mode="eval",
                      hydra_overrides_extra=preset.all_overrides())


def build_model(
    preset: ModelPreset | str,
    sam2_checkpoint: Path | str | None = None,
    device: str | torch.device = "cpu",
    expected_sha256: str | None = None,
) -> SSSModel:
    """SSSModel for ``preset`` (eval mode) on ``device``.

    Random initialisation without ``sam2_checkpoint`` (a "litemedsam" preset always starts from the
    LiteMedSAM weights: the file ``sam2_checkpoint`` names, else the installed package's); with an
    official SAM-2/2.1 checkpoint path, its ``model`` state dict is loaded strictly into the SAM-2
    part (never unpickling code), and its sha256 is recorded as ``model.sam2_checkpoint_sha256`` (checked against
    ``expected_sha256`` when given). DFE and coarse head stay at their initialisation.
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    sam = build_sam(preset)
    sha = None
    if preset.backbone == "litemedsam":  # always its pretrained weights: the package's file, or the one given
        from .lite_sam import load_litemedsam_weights

        sha = load_litemedsam_weights(sam, None if sam2_checkpoint is None else Path(sam2_checkpoint))
    elif sam2_checkpoint is not None:
        sha = load_official_sam2_weights(sam, Path(sam2_checkpoint), preset, expected_sha256)
    model = SSSModel(sam, preset)
    model.sam2_checkpoint_sha256 = sha
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    return model.to(dev).eval()


def load_official_sam2_weights(sam: torch.nn.Module, path: Path, preset: ModelPreset,
                               expected_sha256: str | None = None) -> str:
    """Load an official checkpoint ({"model": state_dict}) into ``sam``; return the file's sha256."""
    if not path.is_file():
        raise CheckpointError(f"SAM-2 checkpoint not found: {path}")
    sha = file_sha256(path)
    if expected_sha256 is not None and sha != expected_sha256.lower():
        raise CheckpointError(
            f"SAM-2 checkpoint {path.name}: sha256 {sha} differs from the expected {expected_sha256}"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, Mapping) or not isinstance(payload.get("model"), Mapping):
        raise CheckpointError(f"{path} is not an official SAM-2 checkpoint (no 'model' state dict inside)")
    state = payload["model"]
    problem = describe_state_mismatch(sam.state_dict(), state)
    if problem:
        raise CheckpointError(
            f"SAM-2 checkpoint {path.name} does not fit preset {preset.name!r} ({preset.sam2_config}): "
            f"{problem}.{_preset_hint(path.name, preset)}"
        )
    sam.load_state_dict(state, strict=True)
    return sha


def describe_state_mismatch(expected: Mapping[str, torch.Tensor], given: Mapping[str, object]) -> str:
    """A short human-readable description of key / shape differences ("" when they match)."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [
        f"{k} {_shape_of(given[k])} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in given and _shape_of(given[k]) != tuple(v.shape)
    ]
    parts = []
    groups = (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes))
    for label, items in groups:
        if items:
            more = f" (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:_MAX_LISTED])}{more}")
    return "; ".join(parts)


def _shape_of(value: object) -> tuple[int, ...] | str:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def _preset_hint(file_name: str, preset: ModelPreset) -> str:
    owner = preset_for_checkpoint_name(file_name)
    if owner is not None and owner.name != preset.name:
        return f" {file_name} belongs to preset {owner.name!r}."
    if preset.checkpoint_names:
        return f" Preset {preset.name!r} expects {' or '.join(preset.checkpoint_names)}."
    return f" Preset {preset.name!r} has no official checkpoint (train it from scratch)."
