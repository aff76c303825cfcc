"""``PromptConfig``: every knob of the prompt generator, readable from a ``yaml.safe_load`` mapping."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from SSSSegmentLib.errors import SSSSegError
from SSSSegmentLib.prompts.anatomy import CavityConfig
from SSSSegmentLib.prompts.continuity import ContinuityConfig
from SSSSegmentLib.prompts.extra_axial import ExtraAxialShapeConfig
from SSSSegmentLib.prompts.location import LocationPriorConfig
from SSSSegmentLib.prompts.partial_volume import CalcificationConfig, PartialVolumeConfig
from SSSSegmentLib.prompts.rules import BloodDensityConfig, IntracranialConfig, MinVolumeConfig

PROMPT_SLICE_MODES = ("all", "key")


@dataclass(frozen=True)
class PromptConfig:
    """Configuration of ``generate_prompts``.

    ``prob_threshold``: a voxel is a candidate of class c when c is its arg-max label and
    p_c >= this. ``extra_axial_shape`` (when enabled) first types every extra-axial candidate
    component as EDH or SDH by its shape. Rules run in the order min_volume, continuity,
    blood_density, intracranial, location_prior, partial_volume, calcification; the first that fails
    drops the component.
    ``prompt_slices``: "all" = one prompt per slice the component spans (per-slice box), "key" =
    only its largest-area slice.
    ``positive_points``: points per prompt (the first is the most interior pixel). ``box_pad_px``:
    pixels added on each side of every box (clipped to the image). ``negative_points``: add the
    interior points of other classes' kept components on the same slice (label 0), at most
    ``max_negative_points`` per prompt.
    """

    prob_threshold: float = 0.5
    prompt_slices: str = "all"
    positive_points: int = 1
    box_pad_px: int = 0
    negative_points: bool = False
    max_negative_points: int = 4
    cavity: CavityConfig = field(default_factory=CavityConfig)
    extra_axial_shape: ExtraAxialShapeConfig = field(default_factory=ExtraAxialShapeConfig)
    min_volume: MinVolumeConfig = field(default_factory=MinVolumeConfig)
    continuity: ContinuityConfig = field(default_factory=ContinuityConfig)
    blood_density: BloodDensityConfig = field(default_factory=BloodDensityConfig)
    intracranial: IntracranialConfig = field(default_factory=IntracranialConfig)
    location_prior: LocationPriorConfig = field(default_factory=LocationPriorConfig)
    partial_volume: PartialVolumeConfig = field(default_factory=PartialVolumeConfig)
    calcification: CalcificationConfig = field(default_factory=CalcificationConfig)

    def __post_init__(self) -> None:
        if not 0.0 <= self.prob_threshold <= 1.0:
            raise SSSSegError(f"prob_threshold must be in [0, 1], got {self.prob_threshold}")
        if self.prompt_slices not in PROMPT_SLICE_MODES:
            raise SSSSegError(f"prompt_slices must be one of {PROMPT_SLICE_MODES}, got {self.prompt_slices!r}")
        if self.positive_points < 1 or self.box_pad_px < 0 or self.max_negative_points < 0:
            raise SSSSegError("positive_points must be >= 1, box_pad_px and max_negative_points >= 0")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> PromptConfig:
        """Build from a (yaml) mapping with nested rule sections; an unknown key raises SSSSegError."""
        return _build(cls, data or {}, "")


def _default_of(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _optional(f: dataclasses.Field) -> bool:
    """True for a field annotated ``X | None`` (annotations are strings under ``from __future__``)."""
    return "| None" in str(f.type)


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise SSSSegError(f"prompt config section '{where or '<root>'}' must be a mapping, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in data.items():
        if key not in known:
            raise SSSSegError(f"unknown prompt config key '{where}{key}' (known: {', '.join(known)})")
        f = known[key]
        if value is None and _optional(f):
            values[key] = None  # e.g. blood_density.exclude_voxels_above_hu: null turns that step off
            continue
        values[key] = _coerce(value, _default_of(f), f"{where}{key}", bool(f.metadata.get("class_map")))
    return cls(**values)


def _coerce(value: Any, default: Any, where: str, class_map: bool) -> Any:
    if dataclasses.is_dataclass(default):
        return _build(type(default), value, f"{where}.")
    if class_map:
        if not isinstance(value, Mapping):
            raise SSSSegError(f"prompt config '{where}' must map class keys to numbers, got {value!r}")
        return tuple(sorted((str(k), _coerce(v, 0.0, f"{where}.{k}", False)) for k, v in value.items()))
    if isinstance(default, tuple):
        if not isinstance(value, list | tuple):
            raise SSSSegError(f"prompt config '{where}' must be a list, got {value!r}")
        item_default = default[0] if default else ""
        return tuple(_coerce(v, item_default, f"{where}[{n}]", False) for n, v in enumerate(value))
    return _scalar(value, default, where)


def _scalar(value: Any, default: Any, where: str) -> Any:
    expected = type(default)
    if expected is bool and isinstance(value, bool):
        return value
    if expected is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if expected is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if expected is str and isinstance(value, str):
        return value
    raise SSSSegError(f"prompt config '{where}' must be {expected.__name__}, got {value!r}")
