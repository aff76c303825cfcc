"""SAM-2 model configs frozen to JSON, so a model is built without composing Hydra configs.

``sam2.build_sam.build_sam2`` composes the preset's YAML with its overrides through Hydra's global
state on every build (about 0.17 s of a 0.3 s model load for ``tiny``, before any weight is made).
Each preset's composed, resolved config is stored in ``resources/sam2_configs/<preset>.json`` with
the sam2 version, config name and overrides it was composed from; ``build_sam`` instantiates from
it when all three still match, and falls back to Hydra otherwise. ``Testing/test_model.py`` checks
every stored config against a fresh composition; ``python -m SSSSegmentLib.model.sam2_config``
writes them again.
"""

from __future__ import annotations

import importlib
import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

from ..errors import SSSSegError
from .presets import PRESETS, SAM2_PRESETS, ModelPreset

CONFIG_DIR = Path(__file__).resolve().parents[1] / "resources" / "sam2_configs"
# What build_sam2 adds to every build (its ``apply_postprocessing``), so the frozen config matches it.
POSTPROCESSING_OVERRIDES = (
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
)
_TARGET_PREFIX = "sam2."


def compose_config(preset: ModelPreset) -> dict[str, Any]:
    """The record ``build_sam2`` would build ``preset`` from: the resolved ``model`` config (plain
    dicts and lists) with the sam2 version, config name and overrides (Hydra, as sam2 does)."""
    import sam2  # noqa: F401  (initialises Hydra's config module, as build_sam2 expects)
    from hydra import compose
    from omegaconf import OmegaConf

    overrides = [*preset.all_overrides(), *POSTPROCESSING_OVERRIDES]
    cfg = compose(config_name=preset.sam2_config, overrides=overrides)
    return {"sam2_version": version("sam2"), "sam2_config": preset.sam2_config, "overrides": overrides,
            "model": OmegaConf.to_container(cfg.model, resolve=True)}


def frozen_config(preset: ModelPreset) -> dict[str, Any] | None:
    """The stored ``model`` config of ``preset``, or None when there is none or it was composed from
    another sam2 version, config name or overrides."""
    path = CONFIG_DIR / f"{preset.name}.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    expected = (version("sam2"), preset.sam2_config, [*preset.all_overrides(), *POSTPROCESSING_OVERRIDES])
    if (record.get("sam2_version"), record.get("sam2_config"), record.get("overrides")) != expected:
        return None
    return record["model"]


def instantiate(node: Any) -> Any:  # noqa: ANN401  (a config node: dict, list or scalar)
    """Hydra-style recursive instantiation of a plain config: a dict with ``_target_`` (a class in
    ``sam2``) is constructed from its other keys, each instantiated first; lists and other dicts are
    instantiated item by item; scalars stay."""
    if isinstance(node, list):
        return [instantiate(item) for item in node]
    if not isinstance(node, dict):
        return node
    kwargs = {key: instantiate(value) for key, value in node.items() if key != "_target_"}
    target = node.get("_target_")
    if target is None:
        return kwargs
    if not isinstance(target, str) or not target.startswith(_TARGET_PREFIX):
        raise SSSSegError(f"SAM-2 config target {target!r} is not a sam2 class")
    module_name, _, name = target.rpartition(".")
    return getattr(importlib.import_module(module_name), name)(**kwargs)


def write_frozen_configs() -> list[Path]:
    """Compose every SAM-2 preset's config and store it (``CONFIG_DIR/<preset>.json``)."""
    CONFIG_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for preset in (PRESETS[name] for name in SAM2_PRESETS):
        path = CONFIG_DIR / f"{preset.name}.json"
        path.write_text(json.dumps(compose_config(preset), indent=1) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_frozen_configs():
        print(f"wrote {written_path}")
