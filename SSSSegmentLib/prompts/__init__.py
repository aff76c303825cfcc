"""Prompt Generator with Physical Constraints (PCPG): coarse class probabilities -> SAM-2 prompts.

Pure numpy/scipy on the volume grid (arrays ``[k, j, i]``); see docs/architecture.md (step 4c)
and ``generator.generate_prompts``.
"""

from SSSSegmentLib.prompts.anatomy import CavityConfig, inner_table_distance_mm, intracranial_cavity
from SSSSegmentLib.prompts.components import STRUCTURE_26, ComponentView, candidate_label_map
from SSSSegmentLib.prompts.config import PromptConfig
from SSSSegmentLib.prompts.continuity import ContinuityConfig, continuity_outcomes, window_sizes
from SSSSegmentLib.prompts.extra_axial import ExtraAxialShapeConfig, type_extra_axial
from SSSSegmentLib.prompts.generator import KEPT, ComponentDecision, PromptSet, generate_prompts
from SSSSegmentLib.prompts.location import LocationPriorConfig, location_prior_rule
from SSSSegmentLib.prompts.outcome import RuleOutcome
from SSSSegmentLib.prompts.prompting import Prompt
from SSSSegmentLib.prompts.rules import (
    BloodDensityConfig,
    IntracranialConfig,
    MinVolumeConfig,
    blood_density_rule,
    intracranial_rule,
    min_volume_rule,
)

__all__ = [
    "KEPT",
    "STRUCTURE_26",
    "BloodDensityConfig",
    "CavityConfig",
    "ComponentDecision",
    "ComponentView",
    "ContinuityConfig",
    "ExtraAxialShapeConfig",
    "IntracranialConfig",
    "LocationPriorConfig",
    "MinVolumeConfig",
    "Prompt",
    "PromptConfig",
    "PromptSet",
    "RuleOutcome",
    "blood_density_rule",
    "candidate_label_map",
    "continuity_outcomes",
    "generate_prompts",
    "inner_table_distance_mm",
    "intracranial_cavity",
    "intracranial_rule",
    "location_prior_rule",
    "min_volume_rule",
    "type_extra_axial",
    "window_sizes",
]
