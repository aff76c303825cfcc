"""Offline model import: verify a checkpoint file's SHA-256 and copy it into the model folder.

Hospital machines are often offline: the user downloads a checkpoint elsewhere and imports the
file. Nothing is unpickled here; the engine loads checkpoints with ``weights_only=True``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..bundled_models import installed_bundled_presets
from ..errors import CheckpointError, OutputError
from ..fsutil import atomic_path, file_sha256

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors")


def import_checkpoint(source: Path | str, model_dir: Path | str, expected_sha256: str | None = None) -> Path:
    """Copy ``source`` into ``model_dir`` (created if needed) after checking it; return the copy.

    Raises CheckpointError when the file is missing, empty, not a checkpoint file type, or its
    SHA-256 differs from ``expected_sha256``; OutputError when a different file of the same name
    is already in the model folder. Importing the identical file twice returns the existing copy.
    """
    source, model_dir = Path(source), Path(model_dir)
    if not source.is_file():
        raise CheckpointError(f"model file not found: {source}")
    if source.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise CheckpointError(f"{source.name} is not a model file ({', '.join(CHECKPOINT_SUFFIXES)})")
    if source.stat().st_size == 0:
        raise CheckpointError(f"model file is empty: {source}")
    digest = file_sha256(source)
    expected = (expected_sha256 or "").strip().lower()
    if expected and digest != expected:
        raise CheckpointError(f"{source.name}: SHA-256 is {digest}, expected {expected} "
                              "(the file is damaged or not the one published)")
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the model folder {model_dir}: {exc}") from exc
    target = model_dir / source.name
    if target.exists():
        if file_sha256(target) == digest:
            return target
        raise OutputError(f"a different model named {source.name} is already in {model_dir}: rename the file")
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return target


@dataclass(frozen=True)
class InstalledModel:
    """A model the module can use without downloading anything.

    ``key``: what the parameter node stores (a bundled preset name, or an imported file's path).
    ``preset`` / ``checkpoint``: the engine options that select it (None: the engine decides).
    """

    key: str
    label: str
    preset: str | None = None
    checkpoint: str | None = None
    bundled: bool = False


def installed_models(model_dir: Path | str | None) -> list[InstalledModel]:
    """The installed models, the default first: bundled ones (best first), then the imported files.

    Only presets whose bundled file exists are listed, so every entry works offline. Imported
    files are the model files in ``model_dir`` (the folder :func:`import_checkpoint` copies into).
    """
    models = [
        InstalledModel(preset, f"{preset}: bundled demonstration model (synthetic phantoms)", preset=preset,
                       bundled=True)
        for preset in installed_bundled_presets()
    ]
    folder = Path(model_dir) if model_dir else None
    if folder is not None and folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix.lower() in CHECKPOINT_SUFFIXES and path.stat().st_size > 0:
                models.append(InstalledModel(str(path), f"{path.name} (imported)", checkpoint=str(path)))
    return models
