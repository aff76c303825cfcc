"""The model registry on disk: versions of a site's model, an ``active`` pointer, a gate, rollback.

Layout of a registry folder (plain files; no database)::

    REGISTRY/active.json                   {"format", "active": "v0002", "history": ["v0001", "v0002"]}
    REGISTRY/versions/v0001/model.safetensors
    REGISTRY/versions/v0001/version.json   base, data counts, config, validation metrics, date, sha256
    REGISTRY/work/                         a fine-tune run in progress (``sssseg finetune``)

A version folder is written under a temporary name and renamed into place, and ``active.json``
is replaced with ``os.replace``: a kill at any moment leaves either the old or the new state.
The engine (``api.load_model``), the CLI and the Slicer module read the same registry:
``default_registry_dir()`` says which.
"""

from __future__ import annotations

from .gate import GateDecision, GatePart, GateRule, ModelFigures, paired_bootstrap
from .location import REGISTRY_ENV, default_registry_dir
from .store import ModelRegistry, ModelVersion, active_model_path

__all__ = ["REGISTRY_ENV", "GateDecision", "GatePart", "GateRule", "ModelFigures", "ModelRegistry", "ModelVersion",
           "active_model_path", "default_registry_dir", "paired_bootstrap"]
