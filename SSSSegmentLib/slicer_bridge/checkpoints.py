"""Offline model import into the model registry the engine reads, and the list of installed models.

Hospital machines are often offline: the user downloads a checkpoint elsewhere and imports the
file. An SSS checkpoint (``.safetensors``) becomes a version of the model registry
(``SSSSegmentLib.registry``, the same folder ``api.load_model`` and ``sssseg models`` use), after
the registry's checks (format, class list, every weight readable). Official SAM-2 weights
(``.pt``/``.pth``/``.ckpt``, loaded later with ``weights_only=True``) are copied into the
registry's ``sam2/`` folder. Nothing is unpickled here.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..bundled_models import installed_bundled_presets
from ..errors import CheckpointError, OutputError
from ..fsutil import atomic_path, file_sha256
from ..registry import ModelRegistry

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors")
SAM2_FOLDER = "sam2"


def import_checkpoint(source: Path | str, registry_dir: Path | str, expected_sha256: str | None = None) -> Path:
    """Import ``source`` into the registry at ``registry_dir`` after checking it; return the stored file.

    Raises CheckpointError when the file is missing, empty, not a model file type, corrupt or foreign,
    or its SHA-256 differs from ``expected_sha256``. An SSS checkpoint already registered (same
    sha256) is not registered twice: its version's file is returned. Importing does not activate it.
    """
    source = Path(source)
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
    registry = ModelRegistry(registry_dir)
    if source.suffix.lower() != ".safetensors":
        return _copy_sam2_weights(source, registry.root / SAM2_FOLDER, digest)
    known = next((v for v in registry.versions() if v.sha256 == digest), None)
    return (known or registry.import_checkpoint(source)).model_path


def _copy_sam2_weights(source: Path, folder: Path, digest: str) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the model folder {folder}: {exc}") from exc
    target = folder / source.name
    if target.exists():
        if file_sha256(target) == digest:
            return target
        raise OutputError(f"a different model named {source.name} is already in {folder}: rename the file")
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


def installed_models(registry_dir: Path | str | None) -> list[InstalledModel]:
    """The installed models, the default first: the registry's active version (the engine's default
    when there is one), the bundled models (best first), the other registry versions, then the
    official SAM-2 weights imported into the registry's ``sam2/`` folder. Every entry works offline."""
    registry = ModelRegistry(registry_dir) if registry_dir else None
    versions = registry.versions() if registry is not None else []
    active = registry.active() if versions else None
    models = [_version_entry(active, "active site model")] if active is not None else []
    models += [
        InstalledModel(preset, f"{preset}: bundled demonstration model (synthetic phantoms)", preset=preset,
                       bundled=True)
        for preset in installed_bundled_presets()
    ]
    models += [_version_entry(v, "registry") for v in versions if active is None or v.version != active.version]
    folder = Path(registry_dir) / SAM2_FOLDER if registry_dir else None
    if folder is not None and folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix.lower() in CHECKPOINT_SUFFIXES and path.stat().st_size > 0:
                models.append(InstalledModel(str(path), f"{path.name} (imported SAM-2 weights)", checkpoint=str(path)))
    return models


def _version_entry(version, role: str) -> InstalledModel:  # noqa: ANN001  (registry.ModelVersion)
    path = str(version.model_path)
    return InstalledModel(path, f"{version.version} ({role}): {version.source}", checkpoint=path)
