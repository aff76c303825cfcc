"""Which model file a batch uses, named and hashed once by the driver before any worker starts.

The engine's default model (the site registry's active version, else the best bundled model) is
resolved here to its file, so every worker of the batch, in this process or on another machine,
loads that same file even if the registry changes meanwhile, and every row of ``results.csv``
names it (``model``) with its SHA-256 (``model_sha256``). A rerun skips only cases done with the
same model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError
from ..fsutil import file_sha256
from .worker import ModelSpec


@dataclass(frozen=True)
class ModelIdentity:
    """``name``: how the model is described in the table; ``sha256``: of its weights file (empty
    for random weights)."""

    name: str
    sha256: str


def pin_model(spec: ModelSpec) -> tuple[ModelSpec, ModelIdentity]:
    """``spec`` with the model resolved to a file (the same precedence as ``api.load_model``) and
    that file's SHA-256 to check, plus the model's identity. CheckpointError when no model is
    available and random weights were not allowed, or a given file is missing."""
    for given in (spec.checkpoint, spec.sam2_checkpoint):
        if given is not None and not Path(given).is_file():
            raise CheckpointError(f"model file not found: {given}")
    if spec.checkpoint is not None:
        return _pinned(spec, Path(spec.checkpoint), f"checkpoint {Path(spec.checkpoint).name}")
    if spec.sam2_checkpoint is not None:
        name = f"SAM-2 weights {Path(spec.sam2_checkpoint).name} (SSS heads untrained), preset {spec.preset or 'auto'}"
        sha = file_sha256(spec.sam2_checkpoint)
        return dataclasses.replace(spec, expected_sha256=sha), ModelIdentity(name, sha)
    default = _default_model_file(spec.preset)
    if default is not None:
        path, label = default
        return _pinned(dataclasses.replace(spec, checkpoint=path), path, label)
    if not spec.allow_untrained:
        from ..bundled_models import no_model_message

        raise CheckpointError(no_model_message(spec.preset))
    return spec, ModelIdentity(f"untrained {spec.preset or 'tiny'} (random weights, seed 0)", "")


def _pinned(spec: ModelSpec, path: Path, label: str) -> tuple[ModelSpec, ModelIdentity]:
    sha = file_sha256(path)
    return dataclasses.replace(spec, expected_sha256=sha), ModelIdentity(label, sha)


def _default_model_file(preset: str | None) -> tuple[Path, str] | None:
    """The engine's default model file (``api.default_model_file``) with a label for the table; None
    when there is none."""
    from ..api import default_model_file

    default = default_model_file(preset)
    if default is None:
        return None
    where = f"registry {default.version}" if default.version is not None else "bundled"
    return default.path, f"{where} {default.path.name}"
