"""SSS checkpoints: one ``.safetensors`` file, weights + JSON metadata in the header (no pickle).

Header metadata key ``sssseg`` holds a JSON object: ``format`` / ``format_version``, ``preset``
(name) and ``preset_fields`` (the full architecture), ``classes`` (label, key, name),
``sam2_weights_sha256`` (the official SAM-2 weights training started from, or null), ``info``
(training information given by the caller), ``created`` (UTC ISO time) and ``sssseg_version``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .. import __version__
from ..classes import HEMORRHAGE_CLASSES
from ..errors import CheckpointError, SSSSegError
from ..fsutil import atomic_path, check_writable_output, file_sha256
from .build import build_model, describe_state_mismatch
from .presets import ModelPreset
from .sss_model import SSSModel

FORMAT_NAME = "sssseg-checkpoint"
FORMAT_VERSION = 1
METADATA_KEY = "sssseg"

__all__ = ["file_sha256", "load_sss_checkpoint", "read_checkpoint_info", "save_sss_checkpoint"]


def class_table() -> list[dict[str, object]]:
    """The current class list as stored in checkpoints."""
    return [{"label": c.label, "key": c.key, "name": c.name} for c in HEMORRHAGE_CLASSES]


def save_sss_checkpoint(path: Path | str, model: SSSModel, info: dict) -> str:
    """Write ``model`` to ``path`` (.safetensors, atomic, replaces an existing file); return its sha256.

    ``info`` is free training information (epochs, data, metrics) and must be JSON-serialisable.
    """
    path = Path(path)
    check_writable_output(path, overwrite=True)
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "preset": model.preset.name,
        "preset_fields": dataclasses.asdict(model.preset),
        "classes": class_table(),
        "sam2_weights_sha256": model.sam2_checkpoint_sha256,
        "info": info,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "sssseg_version": __version__,
    }
    try:
        meta_json = json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint info is not JSON-serialisable: {exc}") from None
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if model.preset.backbone == "litemedsam":
        tensors, meta["pretrained_weights"] = _without_pretrained(tensors)
        meta_json = json.dumps(meta)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: meta_json})
    return file_sha256(path)


def read_checkpoint_info(path: Path | str) -> dict:
    """The metadata dict of an SSS checkpoint (cheap: reads only the header)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        msg = f"{path} is not a readable .safetensors file (corrupt or truncated?): {exc}"
        raise CheckpointError(msg) from None
    if METADATA_KEY not in header:
        raise CheckpointError(f"{path} is a safetensors file but not an SSSSegment checkpoint (no metadata)")
    try:
        meta = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: checkpoint metadata is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"{path}: unknown checkpoint format {found!r} (expected {FORMAT_NAME!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {meta.get('format_version')} is not supported "
            f"(this SSSSegment reads version {FORMAT_VERSION})"
        )
    return meta


def load_sss_checkpoint(path: Path | str, device: str | torch.device = "cpu",
                        expected_preset: str | None = None, allow_new_modules: bool = False) -> SSSModel:
    """Rebuild the model stored in an SSS checkpoint (eval mode, on ``device``).

    The architecture comes from the stored preset fields. CheckpointError when the preset is not
    ``expected_preset`` (if given), the class list differs from this version's, or the weights do
    not fit the architecture. ``allow_new_modules`` (for warm-starting training from a checkpoint
    of an older version) accepts weights the file lacks, left at their initial values and listed
    in ``model.checkpoint_info["new_parameters"]``; unknown keys and shape mismatches still fail.
    """
    path = Path(path)
    meta = read_checkpoint_info(path)
    if expected_preset is not None and meta.get("preset") != expected_preset:
        raise CheckpointError(
            f"{path.name} holds a model of preset {meta.get('preset')!r}, "
            f"but preset {expected_preset!r} was requested"
        )
    if meta.get("classes") != class_table():
        raise CheckpointError(
            f"{path.name} was trained for other classes: {meta.get('classes')} (expected {class_table()})"
        )
    preset = _preset_from_fields(meta.get("preset_fields"), path)
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} weights are unreadable (corrupt or truncated?): {exc}") from None
    model = build_model(preset, device="cpu")
    expected = model.state_dict()
    if preset.backbone == "litemedsam":
        expected = _expected_beside_pretrained(expected, meta, model.sam2_checkpoint_sha256, path)
    new_keys = [k for k in expected if k not in state] if allow_new_modules else []
    problem = describe_state_mismatch({k: v for k, v in expected.items() if k not in new_keys}, state)
    if problem:
        raise CheckpointError(f"{path.name} does not fit preset {preset.name!r}: {problem}")
    model.load_state_dict(state, strict=not new_keys and len(expected) == len(model.state_dict()))
    model.sam2_checkpoint_sha256 = meta.get("sam2_weights_sha256")
    model.checkpoint_info = {**meta, "new_parameters": new_keys} if new_keys else meta
    return model.to(device).eval()


def _preset_from_fields(fields: object, path: Path) -> ModelPreset:
    """ModelPreset from stored JSON fields (lists back to tuples)."""
    names = {f.name for f in dataclasses.fields(ModelPreset)}
    required = {f.name for f in dataclasses.fields(ModelPreset) if f.default is dataclasses.MISSING}
    if not isinstance(fields, dict) or not required <= set(fields) <= names:
        raise CheckpointError(f"{path.name}: stored preset fields are incomplete or unknown: {fields!r}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    try:
        return ModelPreset(**values)
    except (TypeError, SSSSegError) as exc:
        raise CheckpointError(f"{path.name}: stored preset is invalid: {exc}") from None


def _without_pretrained(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict]:
    """A lite model's tensors less those equal to the LiteMedSAM weights (the installed package has
    them: about 39 MB a file saved), and the record of what was left out (sha256, key count)."""
    from .lite_sam import read_litemedsam_state

    pretrained, sha = read_litemedsam_state()
    same = {k for k, v in tensors.items()
            if k.startswith("sam.") and k[4:] in pretrained and torch.equal(v, pretrained[k[4:]])}
    kept = {k: v for k, v in tensors.items() if k not in same}
    return kept, {"name": "LiteMedSAM", "sha256": sha, "omitted_keys": len(same)}


def _expected_beside_pretrained(expected: dict[str, torch.Tensor], meta: dict, sha: str | None,
                                path: Path) -> dict[str, torch.Tensor]:
    """The keys a lite checkpoint must hold: all but those it left to the pretrained weights (which
    ``build_model`` loaded, sha256 ``sha``); CheckpointError when it was saved beside other weights."""
    record = meta.get("pretrained_weights")
    if not isinstance(record, dict):
        return expected
    if record.get("sha256") != sha:
        raise CheckpointError(f"{path.name} was saved beside LiteMedSAM weights {record.get('sha256')}, "
                              f"not the installed {sha}")
    from .lite_sam import read_litemedsam_state

    pretrained, _ = read_litemedsam_state()
    omitted = {f"sam.{k}" for k in pretrained}
    with safe_open(str(path), framework="pt") as fh:
        stored = set(fh.keys())
    if len(omitted - stored) != record.get("omitted_keys"):
        raise CheckpointError(f"{path.name}: {len(omitted - stored)} pretrained tensors missing, "
                              f"the file says {record.get('omitted_keys')}")
    return {k: v for k, v in expected.items() if k in stored or k not in omitted}
