"""Where the registry lives: ``$SSSSEG_REGISTRY``, else ``<user data dir>/sssseg/registry``.

The bottom of the package: it names folders and files and imports nothing else of the registry
(``store`` builds on it).

The user data dir is ``$XDG_DATA_HOME`` (default ``~/.local/share``) on Linux, ``%APPDATA%`` on
Windows and ``~/Library/Application Support`` on macOS. ``SSSSEG_REGISTRY`` set to an empty string
turns the registry off (the engine then uses the bundled model). Plain Python: no torch.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REGISTRY_ENV = "SSSSEG_REGISTRY"
ACTIVE_NAME = "active.json"
MODEL_NAME = "model.safetensors"


def user_data_dir() -> Path:
    if sys.platform == "win32" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"])
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def default_registry_dir() -> Path | None:
    """The registry folder every entry point uses by default (None: turned off by an empty variable)."""
    value = os.environ.get(REGISTRY_ENV)
    if value is not None:
        return Path(value).expanduser() if value.strip() else None
    return user_data_dir() / "sssseg" / "registry"


def read_json(path: Path) -> object:
    """JSON of a small registry file (ValueError / OSError propagate to the caller's message)."""
    return json.loads(Path(path).read_text())
