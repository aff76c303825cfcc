"""``ModelRegistry``: add, list, activate and roll back model versions in a registry folder."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import re
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import CheckpointError, InputError, OutputError
from ..fsutil import atomic_path, file_sha256
from .location import ACTIVE_NAME, MODEL_NAME, default_registry_dir, read_json

REGISTRY_FORMAT = "sssseg-registry-v1"
VERSION_NAME = "version.json"
_VERSION_RE = re.compile(r"^v\d{4,}$")


@dataclass(frozen=True)
class ModelVersion:
    """One registered model. ``base``: the version it was fine-tuned from (None: imported/bundled);
    ``data_counts``: cases used (labeled, held out, normal, unlabeled); ``config``: the training
    settings; ``metrics``: the gate's figures and decision (``ModelFigures`` / ``GateDecision.to_dict``);
    ``sha256`` of the model file."""

    version: str
    root: Path
    base: str | None
    created: str
    sha256: str
    source: str
    data_counts: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    run_id: str | None = None

    @property
    def model_path(self) -> Path:
        return self.root / "versions" / self.version / MODEL_NAME

    def to_json(self) -> dict:
        values = asdict(self)
        values.pop("root")
        return values


def disk_full_message(what: str, exc: OSError) -> str:
    """The one line a full disk (or another write failure) gives."""
    why = "the disk is full" if exc.errno == errno.ENOSPC else f"{exc.strerror or exc}"
    return f"cannot write {what}: {why}. Nothing was switched: the active model is unchanged"


class ModelRegistry:
    """A registry folder (see the package docstring). Every change is atomic."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @property
    def versions_dir(self) -> Path:
        return self.root / "versions"

    def _ensure(self) -> None:
        try:
            self.versions_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the model registry {self.root}: {exc}") from None

    def versions(self) -> list[ModelVersion]:
        """Every complete version, oldest first (half-written ones never have their final name)."""
        if not self.versions_dir.is_dir():
            return []
        names = sorted(p.name for p in self.versions_dir.iterdir() if _VERSION_RE.match(p.name))
        return [self.get(name) for name in names]

    def get(self, version: str) -> ModelVersion:
        """The version named ``version`` (InputError when unknown, CheckpointError when damaged)."""
        path = self.versions_dir / str(version) / VERSION_NAME
        if not _VERSION_RE.match(str(version)) or not path.is_file():
            known = ", ".join(p.name for p in sorted(self.versions_dir.glob("v*"))) or "none"
            raise InputError(f"no model version {version!r} in {self.root} (versions: {known})")
        try:
            values = read_json(path)
            return ModelVersion(root=self.root, **values)
        except (OSError, ValueError, TypeError) as exc:
            raise CheckpointError(f"model version record {path} is damaged: {exc}") from None

    def _pointer(self) -> dict:
        path = self.root / ACTIVE_NAME
        if not path.is_file():
            return {"format": REGISTRY_FORMAT, "active": None, "history": []}
        try:
            values = read_json(path)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"the registry's active pointer {path} is damaged: {exc}") from None
        if not isinstance(values, dict) or values.get("format") != REGISTRY_FORMAT:
            raise CheckpointError(f"{path} is not an SSSSegment registry pointer ({REGISTRY_FORMAT!r} expected)")
        return values

    def active(self) -> ModelVersion | None:
        """The active version, or None when none was activated yet."""
        name = self._pointer().get("active")
        return None if name is None else self.get(name)

    def history(self) -> list[str]:
        """Versions in the order they were activated (the last one is active)."""
        return list(self._pointer().get("history", []))

    def find_run(self, run_id: str) -> ModelVersion | None:
        """The version a fine-tune run registered (a resumed run must not register twice)."""
        return next((v for v in self.versions() if v.run_id == run_id), None)

    def add_version(self, model_file: Path | str, source: str, base: str | None = None,
                    data_counts: dict | None = None, config: dict | None = None,
                    metrics: dict | None = None, run_id: str | None = None) -> ModelVersion:
        """Verify ``model_file`` (an SSS checkpoint) and copy it in as a new version (not activated)."""
        model_file = Path(model_file)
        verify_checkpoint(model_file)
        self._ensure()
        staging = self.versions_dir / f".incoming-{uuid.uuid4().hex}"
        try:
            staging.mkdir()
            shutil.copyfile(model_file, staging / MODEL_NAME)
            digest = file_sha256(staging / MODEL_NAME)
            if digest != file_sha256(model_file):
                raise CheckpointError(f"{model_file} changed while it was being copied into the registry")
            version = ModelVersion(self._next_name(), self.root, base, _now(), digest, source, data_counts or {},
                                   config or {}, metrics or {}, run_id)
            (staging / VERSION_NAME).write_text(json.dumps(version.to_json(), indent=2))
            os.replace(staging, self.versions_dir / version.version)
        except OSError as exc:
            raise OutputError(disk_full_message(f"a new model version into {self.root}", exc)) from None
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return version

    def _next_name(self) -> str:
        numbers = [int(p.name[1:]) for p in self.versions_dir.iterdir() if _VERSION_RE.match(p.name)]
        return f"v{max(numbers, default=0) + 1:04d}"

    def activate(self, version: str) -> ModelVersion:
        """Make ``version`` the active model (its file is checked against its sha256 first)."""
        chosen = self._intact(version)
        history = [v for v in self.history() if v != version] + [version]
        self._write_pointer({"format": REGISTRY_FORMAT, "active": version, "history": history, "changed": _now()})
        return chosen

    def _intact(self, version: str) -> ModelVersion:
        chosen = self.get(version)
        if not chosen.model_path.is_file() or file_sha256(chosen.model_path) != chosen.sha256:
            raise CheckpointError(f"model version {version} is damaged (its file does not match its sha256); "
                                  "not activated")
        return chosen

    def rollback(self, version: str | None = None) -> ModelVersion:
        """Activate ``version`` (any registered one); default: the version active before the current one."""
        if version is not None:
            return self.activate(version)
        history = self.history()
        if len(history) < 2:
            raise InputError(f"nothing to roll back to in {self.root}: {history or 'no version'} only was ever "
                             "active (name a version: sssseg models list)")
        chosen = self._intact(history[-2])
        self._write_pointer({"format": REGISTRY_FORMAT, "active": chosen.version, "history": history[:-1],
                             "changed": _now()})
        return chosen

    def _write_pointer(self, values: dict) -> None:
        self._ensure()
        try:
            with atomic_path(self.root / ACTIVE_NAME) as tmp:
                tmp.write_text(json.dumps(values, indent=2))
        except OSError as exc:
            raise OutputError(disk_full_message("the registry's active pointer", exc)) from None

    def import_checkpoint(self, path: Path | str, expected_sha256: str | None = None,
                          activate: bool = False) -> ModelVersion:
        """Register an SSS checkpoint made elsewhere (verified: sha256 if given, format, weights)."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"model file not found: {path}")
        expected = (expected_sha256 or "").strip().lower()
        if expected and file_sha256(path) != expected:
            raise CheckpointError(f"{path.name}: SHA-256 is {file_sha256(path)}, expected {expected} "
                                  "(the file is damaged or not the one published)")
        version = self.add_version(path, source=f"imported {path.name}")
        return self.activate(version.version) if activate else version


def active_model_path(registry_dir: Path | str | None = None) -> tuple[str, Path] | None:
    """(version, model file) of the registry's active model, or None when there is none.

    Cheap (reads one small JSON file): the engine calls it on every default model load. A damaged
    pointer is not silently skipped: ``ModelRegistry.active`` raises a clear error for it.
    """
    folder = Path(registry_dir) if registry_dir is not None else default_registry_dir()
    if folder is None or not (folder / ACTIVE_NAME).is_file():
        return None
    version = ModelRegistry(folder).active()
    return None if version is None else (version.version, version.model_path)


def verify_checkpoint(path: Path) -> dict:
    """Refuse a corrupt, truncated or foreign file (CheckpointError); return its metadata.

    Uses the engine's own checkpoint reader: header format and version, class list, and that every
    weight is readable and fits the stored architecture.
    """
    from ..model.checkpoint import load_sss_checkpoint, read_checkpoint_info

    if not path.is_file():
        raise CheckpointError(f"model file not found: {path}")
    if path.suffix.lower() != ".safetensors":
        raise CheckpointError(f"{path.name} is not an SSSSegment checkpoint (.safetensors expected); official "
                              "SAM-2 weights are given with --sam2-checkpoint, not imported as a site model")
    meta = read_checkpoint_info(path)
    load_sss_checkpoint(path, device="cpu")
    return meta


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
