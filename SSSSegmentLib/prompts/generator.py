"""The Prompt Generator with Physical Constraints (PCPG): coarse probabilities -> SAM-2 prompts.

Pure numpy/scipy on the volume grid (arrays ``[k, j, i]``). Steps: candidates per class (arg-max
label with probability >= threshold, minus voxels of bone density; optionally extra-axial
components typed EDH or SDH by shape) -> 26-connected 3D components -> rules (min_volume,
continuity, blood_density, intracranial, location_prior, partial_volume, calcification; the first
failure drops the component)
-> per kept component a box and points on each slice it spans (or its key slice).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from SSSSegmentLib.classes import CLASS_BY_LABEL, HEMORRHAGE_CLASSES, NUM_LABELS
from SSSSegmentLib.errors import InputError
from SSSSegmentLib.prompts.anatomy import inner_table_distance_mm, spacing_zyx
from SSSSegmentLib.prompts.cavity_map import CavityMap, cavity_map
from SSSSegmentLib.prompts.components import (
    ClassComponents,
    ComponentView,
    candidate_label_map,
    class_components,
    component_view,
)
from SSSSegmentLib.prompts.config import PromptConfig
from SSSSegmentLib.prompts.continuity import continuity_groups, grouped_outcomes, join_reach
from SSSSegmentLib.prompts.extra_axial import type_extra_axial
from SSSSegmentLib.prompts.location import location_prior_rule
from SSSSegmentLib.prompts.outcome import RuleOutcome
from SSSSegmentLib.prompts.partial_volume import calcification_rule, partial_volume_rule, thickness_evidence
from SSSSegmentLib.prompts.prompting import Prompt, SlicePart, build_prompt, key_part, slice_parts
from SSSSegmentLib.prompts.rules import blood_density_rule, intracranial_rule, min_volume_rule
from SSSSegmentLib.volumes.geometry import Geometry

KEPT = "kept"


@dataclass(frozen=True)
class ComponentDecision:
    """What happened to one candidate component (for the GUI and logs).

    ``dropped_by``: the rule name that dropped it, or "kept". ``reason``: that rule's explanation
    (for a kept component, the passed rules' explanations joined by "; ").
    """

    label: int
    component_id: int
    n_voxels: int
    volume_ml: float
    mean_hu: float
    slice_range: tuple[int, int]  # first and last slice k (inclusive)
    dropped_by: str
    reason: str

    @property
    def kept(self) -> bool:
        return self.dropped_by == KEPT


@dataclass(frozen=True, eq=False)
class PromptSet:
    """Output of ``generate_prompts``.

    ``prompts``: ordered by (label, component_id, slice_k). ``kept_zyx``: uint8 (K, J, I) label map
    of the accepted components (BHSD label values). ``decisions``: one per candidate component,
    ordered by (label, component_id). ``plausible_zyx``: bool (K, J, I), where blood can physically
    be (inside the intracranial cavity when a skull is found, not of bone density), for the rules
    that are enabled; None when there are no prompts. Refined masks are confined to it. ``notes``:
    log lines about the anatomy the rules read (e.g. the slices whose skull ring could not be closed).
    """

    prompts: tuple[Prompt, ...]
    kept_zyx: np.ndarray
    decisions: tuple[ComponentDecision, ...]
    plausible_zyx: np.ndarray | None = None
    notes: tuple[str, ...] = ()


class _Anatomy:
    """Cavity and inner-table distance, computed once and only when a rule needs them.

    ``cavity`` is the cavity where the skull ring closed and, on the slices where it did not, the
    weaker fallback region (``CavityMap.effective``): every rule that reads the cavity fails open there.
    """

    def __init__(self, hu_zyx: np.ndarray, geometry: Geometry, config: PromptConfig) -> None:
        self._hu, self._geometry, self._config = hu_zyx, geometry, config
        self._map: CavityMap | None = None
        self._cavity: np.ndarray | None = None
        self._distance: np.ndarray | None = None
        self._evidence = (np.zeros(hu_zyx.shape, dtype=bool), np.zeros(hu_zyx.shape, dtype=bool))
        self._evidence_done = np.zeros(hu_zyx.shape[0], dtype=bool)  # slices whose evidence is computed

    @property
    def cavity_map(self) -> CavityMap:
        if self._map is None:
            self._map = cavity_map(self._hu, self._geometry, self._config.cavity)
        return self._map

    @property
    def cavity(self) -> np.ndarray:
        if self._cavity is None:
            self._cavity = self.cavity_map.effective()
        return self._cavity

    @property
    def skull_found(self) -> bool:
        return bool(self.cavity_map.mask.any())

    def notes(self) -> tuple[str, ...]:
        """The cavity's log line, when it was computed and some slices' ring was not closed."""
        note = self._map.note() if self._map is not None else None
        return (note,) if note else ()

    @property
    def distance(self) -> np.ndarray:
        if self._distance is None:
            self._distance = inner_table_distance_mm(self._hu, self._geometry, self.cavity)
        return self._distance

    def thickness_evidence(self, opened: bool, box: tuple[slice, slice, slice]) -> np.ndarray:
        """Bool over ``box`` (a crop of the (K, J, I) grid): blood-density tissue deeper than the skull's
        partial-volume reach, after the in-plane opening (``opened``) or without it. Both maps are
        computed together, once per slice, and only on the slices a component asks about (a normal
        scan's few candidates that reach this rule span a few of its slices)."""
        missing = np.flatnonzero(~self._evidence_done[box[0]]) + box[0].start
        if missing.size:
            k_range = (int(missing[0]), int(missing[-1]) + 1)
            found = thickness_evidence(self._hu, self.cavity, spacing_zyx(self._geometry),
                                       self._config.partial_volume, k_range)
            for whole, part in zip(self._evidence, found, strict=True):
                whole[k_range[0] : k_range[1]] = part
            self._evidence_done[k_range[0] : k_range[1]] = True
        return self._evidence[0 if opened else 1][box]


def _check_inputs(prob_lzyx: np.ndarray, hu_zyx: np.ndarray) -> None:
    if prob_lzyx.ndim != 4 or prob_lzyx.shape[0] != NUM_LABELS:
        raise InputError(f"probabilities must have shape ({NUM_LABELS}, K, J, I), got {prob_lzyx.shape}")
    if hu_zyx.shape != prob_lzyx.shape[1:]:
        raise InputError(f"CT shape {hu_zyx.shape} differs from the probability grid {prob_lzyx.shape[1:]}")
    if not np.isfinite(prob_lzyx).all() or not np.isfinite(hu_zyx).all():
        raise InputError("probabilities and CT must be finite (found NaN or inf)")


def _view_padding(geometry: Geometry, config: PromptConfig) -> tuple[int, int, int]:
    """Margin (k, j, i) voxels around each component: room for the IVH CSF shell."""
    _, s_j, s_i = spacing_zyx(geometry)
    radius = config.location_prior.ivh_csf_radius_mm
    return (1, math.ceil(radius / s_j) + 1, math.ceil(radius / s_i) + 1)


def _component_rules(
    view: ComponentView, continuity: RuleOutcome, anatomy: _Anatomy, config: PromptConfig
) -> list[tuple[str, RuleOutcome]]:
    """Rule outcomes in order, stopping at the first failure."""
    opened = _applies(view, config.partial_volume.classes)
    pv_classes = config.partial_volume.classes + config.partial_volume.unopened_classes
    checks = (
        ("min_volume", config.min_volume.enabled, lambda: min_volume_rule(view, config.min_volume)),
        ("continuity", config.continuity.enabled, lambda: continuity),
        (
            "blood_density",
            config.blood_density.enabled,
            lambda: blood_density_rule(view, config.blood_density),
        ),
        (
            "intracranial",
            config.intracranial.enabled,
            lambda: intracranial_rule(view, anatomy.cavity[view.box], anatomy.skull_found, config.intracranial,
                                      ~anatomy.cavity_map.closed_k[view.box[0]]),
        ),
        (
            "location_prior",
            config.location_prior.enabled,
            lambda: location_prior_rule(view, anatomy.distance[view.box], config.location_prior),
        ),
        (
            "partial_volume",
            config.partial_volume.enabled and _applies(view, pv_classes) and anatomy.skull_found,
            lambda: partial_volume_rule(view, anatomy.thickness_evidence(opened, view.box), config.partial_volume),
        ),
        (
            "calcification",
            config.calcification.enabled and _applies(view, config.calcification.classes),
            lambda: calcification_rule(view, config.calcification),
        ),
    )
    results = []
    for name, enabled, run in checks:
        if enabled:
            results.append((name, run()))
            if not results[-1][1].passed:
                break
    return results


def _applies(view: ComponentView, class_keys: tuple[str, ...]) -> bool:
    return CLASS_BY_LABEL[view.label].key in class_keys


def _decide(view: ComponentView, results: list[tuple[str, RuleOutcome]]) -> ComponentDecision:
    failed = [(name, out) for name, out in results if not out.passed]
    if failed:
        dropped_by, reason = failed[0][0], failed[0][1].reason
    else:
        dropped_by, reason = (
            KEPT,
            "; ".join(f"{name}: {out.reason}" for name, out in results) or "no rule enabled",
        )
    ks = view.slice_indices
    return ComponentDecision(
        view.label,
        view.component_id,
        view.n_voxels,
        view.volume_ml,
        view.mean_hu,
        (int(ks[0]), int(ks[-1])),
        dropped_by,
        reason,
    )


def _judge_class(
    comps: ClassComponents, hu_zyx: np.ndarray, geometry: Geometry, anatomy: _Anatomy, config: PromptConfig
) -> list[tuple[ComponentView, ComponentDecision]]:
    pad, spacing = _view_padding(geometry, config), spacing_zyx(geometry)
    views = [component_view(comps, cid, hu_zyx, pad, spacing) for cid in range(1, comps.count + 1)]
    volumes = np.array([v.volume_ml for v in views])
    groups = continuity_groups(comps.labels, join_reach(spacing[0], config.continuity.join_mm))
    continuity = grouped_outcomes(comps.slice_counts(hu_zyx.shape[0]), volumes, groups, config.continuity, spacing[0])
    return [(v, _decide(v, _component_rules(v, c, anatomy, config))) for v, c in zip(views, continuity, strict=True)]


def _prompts(kept: list[ComponentView], shape_ji: tuple[int, int], config: PromptConfig) -> tuple[Prompt, ...]:
    parts_by_component = [slice_parts(v, shape_ji, config.box_pad_px, config.positive_points) for v in kept]
    by_slice: dict[int, list[SlicePart]] = defaultdict(list)
    for parts in parts_by_component:
        for part in parts:
            by_slice[part.slice_k].append(part)
    prompts = []
    for parts in parts_by_component:
        chosen = parts if config.prompt_slices == "all" else [key_part(parts)]
        for part in chosen:
            others = by_slice[part.slice_k] if config.negative_points else []
            prompts.append(build_prompt(part, others, config.max_negative_points))
    return tuple(prompts)


def decision_log_lines(decisions: tuple[ComponentDecision, ...], min_ml: float = 0.1) -> list[str]:
    """Log lines for the GUI and the command line: every dropped component of at least ``min_ml`` with
    its rule, reason and size, then one count per rule for the smaller ones, then what was kept."""
    lines, small = [], defaultdict(lambda: [0, 0.0])
    for d in decisions:
        if d.kept:
            continue
        if d.volume_ml >= min_ml:
            lines.append(f"dropped {CLASS_BY_LABEL[d.label].key} {d.volume_ml:.2f} mL on slices "
                         f"{d.slice_range[0]}-{d.slice_range[1]} ({d.dropped_by}): {d.reason}")
        else:
            small[d.dropped_by][0] += 1
            small[d.dropped_by][1] += d.volume_ml
    for rule, (count, volume) in sorted(small.items()):
        lines.append(f"dropped {count} component(s) under {min_ml} mL ({rule}), {volume:.2f} mL in all")
    kept_ml = [d.volume_ml for d in decisions if d.kept]
    lines.append(f"kept {len(kept_ml)} of {len(decisions)} candidate component(s), {sum(kept_ml):.2f} mL")
    return lines


def generate_prompts(
    prob_lzyx: np.ndarray, hu_zyx: np.ndarray, geometry: Geometry, config: PromptConfig | None = None
) -> PromptSet:
    """Turn coarse per-label probabilities into physically plausible SAM-2 prompts.

    ``prob_lzyx``: float (6, K, J, I) probabilities on the volume grid (label 0 background, 1..5
    EDH IPH IVH SAH SDH). ``hu_zyx``: float (K, J, I) raw CT in HU. ``geometry``: the volume grid
    (spacing in i, j, k order). Raises ``InputError`` on mismatched shapes or non-finite values.
    """
    config = config or PromptConfig()
    _check_inputs(prob_lzyx, hu_zyx)
    return prompts_from_candidates(candidate_label_map(prob_lzyx, config.prob_threshold), hu_zyx, geometry, config)


def prompts_from_candidates(
    candidates: np.ndarray, hu_zyx: np.ndarray, geometry: Geometry, config: PromptConfig | None = None
) -> PromptSet:
    """``generate_prompts`` from the candidate map (``candidate_label_map`` of the probabilities, uint8
    (K, J, I); modified in place), for callers that reduce the probabilities slice by slice."""
    config = config or PromptConfig()
    if candidates.shape != hu_zyx.shape:
        raise InputError(f"CT shape {hu_zyx.shape} differs from the candidate grid {candidates.shape}")
    dense_limit = config.blood_density.exclude_voxels_above_hu
    if config.blood_density.enabled and dense_limit is not None:
        candidates[hu_zyx > dense_limit] = 0  # bone and calcification are never blood
    if config.extra_axial_shape.enabled:
        candidates = type_extra_axial(candidates, spacing_zyx(geometry), config.extra_axial_shape)
    anatomy = _Anatomy(hu_zyx, geometry, config)
    pad = _view_padding(geometry, config)
    judged, class_boxes = [], ndimage.find_objects(candidates)
    for cls in HEMORRHAGE_CLASSES:
        comps = class_components(candidates, cls.label, pad, class_boxes)
        judged += _judge_class(comps, hu_zyx, geometry, anatomy, config)
    kept_views = [view for view, decision in judged if decision.kept]
    kept_zyx = np.zeros(hu_zyx.shape, dtype=np.uint8)
    for view in kept_views:
        kept_zyx[view.box][view.mask] = view.label
    prompts = _prompts(kept_views, hu_zyx.shape[1:], config)
    plausible = _plausible_voxels(hu_zyx, anatomy, config) if prompts else None
    return PromptSet(prompts, kept_zyx, tuple(decision for _, decision in judged), plausible, anatomy.notes())


def _plausible_voxels(hu_zyx: np.ndarray, anatomy: _Anatomy, config: PromptConfig) -> np.ndarray:
    """Bool (K, J, I): not of bone density and inside the cavity (each when its rule is enabled)."""
    plausible = np.ones(hu_zyx.shape, dtype=bool)
    dense_limit = config.blood_density.exclude_voxels_above_hu
    if config.blood_density.enabled and dense_limit is not None:
        plausible &= hu_zyx <= dense_limit
    if config.intracranial.enabled and anatomy.skull_found:
        plausible &= anatomy.cavity
    return plausible
