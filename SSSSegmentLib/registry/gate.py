"""The safety gate: a new model becomes active only if it is not worse than the active one.

"Worse" (both measured on the same site cases, with the full automatic pipeline):
- its Dice over the classes present on the held-out corrected cases is lower than the active
  model's by more than ``max_dice_drop`` (default 0: any drop), or
- it calls more than ``max_normal_ml_increase`` mL (default 0) more bleed than the active model on
  the site's confirmed-normal cases (corrected cases with an empty label map).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SiteMetrics:
    """A model's figures on a site's cases.

    ``dice_present``: mean Dice over (held-out case, class present in its truth) pairs, None when
    no held-out case has a bleed; ``normal_ml``: total mL called bleed on the confirmed-normal cases;
    ``heldout_cases`` / ``normal_cases``: how many cases each figure is measured on.
    """

    dice_present: float | None
    normal_ml: float
    heldout_cases: int
    normal_cases: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> SiteMetrics:
        return cls(values.get("dice_present"), float(values["normal_ml"]), int(values["heldout_cases"]),
                   int(values["normal_cases"]))

    def describe(self) -> str:
        dice = "n/a" if self.dice_present is None else f"{self.dice_present:.3f}"
        return (f"Dice over classes present {dice} on {self.heldout_cases} held-out case(s); "
                f"{self.normal_ml:.2f} mL called bleed on {self.normal_cases} confirmed-normal case(s)")


@dataclass(frozen=True)
class GateDecision:
    """Whether the candidate passes, and why (one line per criterion)."""

    passed: bool
    reasons: tuple[str, ...]

    def describe(self) -> str:
        verdict = "PASSED: the new version becomes active" if self.passed else "FAILED: the active model stays"
        return f"gate {verdict}\n" + "\n".join(f"  - {r}" for r in self.reasons)


@dataclass(frozen=True)
class GateRule:
    """The configurable gate (see module docstring); ``describe()`` is what the user is shown."""

    max_dice_drop: float = 0.0
    max_normal_ml_increase: float = 0.0

    def __post_init__(self) -> None:
        if not (self.max_dice_drop >= 0 and self.max_normal_ml_increase >= 0):
            raise ValueError("gate tolerances must be >= 0")

    def describe(self) -> str:
        return (f"a new version becomes active only if its Dice over the classes present on the held-out "
                f"corrected cases is at least the active model's - {self.max_dice_drop:g}, and it calls at most "
                f"{self.max_normal_ml_increase:g} mL more bleed than the active model on the site's "
                "confirmed-normal cases")

    def decide(self, candidate: SiteMetrics, active: SiteMetrics | None) -> GateDecision:
        """Compare ``candidate`` with the ``active`` model's metrics (None: no active model, passes)."""
        if active is None:
            return GateDecision(True, ("no active model to compare with",))
        reasons = [self._dice_reason(candidate, active), self._normal_reason(candidate, active)]
        passed = all(ok for ok, _ in reasons)
        return GateDecision(passed, tuple(text for _, text in reasons))

    def _dice_reason(self, new: SiteMetrics, old: SiteMetrics) -> tuple[bool, str]:
        if new.dice_present is None or old.dice_present is None:
            return True, "Dice: no held-out case with a bleed, not compared"
        new_d, old_d = float(new.dice_present), float(old.dice_present)
        ok = math.isfinite(new_d) and new_d >= old_d - self.max_dice_drop
        return ok, f"Dice over classes present: new {new_d:.3f} vs active {old_d:.3f} ({'ok' if ok else 'lower'})"

    def _normal_reason(self, new: SiteMetrics, old: SiteMetrics) -> tuple[bool, str]:
        if new.normal_cases == 0:
            return True, "normal scans: no confirmed-normal case, not compared"
        ok = new.normal_ml <= old.normal_ml + self.max_normal_ml_increase
        return ok, (f"bleed called on confirmed-normal scans: new {new.normal_ml:.2f} mL vs active "
                    f"{old.normal_ml:.2f} mL ({'ok' if ok else 'more'})")
