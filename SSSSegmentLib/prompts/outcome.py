"""The result of one rule on one component."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuleOutcome:
    """``passed``: whether the component survives the rule; ``reason``: why, with the measured numbers."""

    passed: bool
    reason: str
