"""The safety gate: a new model becomes active only if three checks against the active model pass.

Both models are measured on the same cases with the full automatic pipeline (``ModelFigures``):

1. **Reference set** (fixed phantoms that do not depend on the site's data, every class; catches
   forgetting): non-inferiority. The per-case Dice differences (new - active) get a paired bootstrap
   interval; the lower end must be at least ``-reference_margin``.
2. **Confirmed-normal site cases** (every one of them): the new model calls no more mL of bleed in
   total than the active one (``max_normal_ml_increase`` tolerated).
3. **Held-out corrected cases**: the same paired interval on their per-case Dice differences; the
   version is refused when the interval lies wholly below ``-max_dice_drop`` (the evidence shows it
   worse). With fewer than ``min_heldout`` held-out cases with a bleed the gate says it cannot judge
   improvement and decides on 1 and 2 alone.

The interval is a percentile bootstrap of the mean difference (``resamples`` draws with replacement,
fixed ``seed``, two-sided ``confidence``): it widens as the cases get fewer, so one case that rose
cannot carry the decision. Plain numpy: no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PASS, FAIL, NOT_JUDGED = "pass", "fail", "not judged"


@dataclass(frozen=True)
class ModelFigures:
    """One model's per-case figures on the gate's cases (the same cases, in the same order, for every
    model compared).

    ``reference_dice``: per reference phantom, the mean Dice over the classes in its truth;
    ``reference_class_dice``: class key -> mean Dice over the reference phantoms holding that class
    (shown, not judged separately); ``heldout_dice``: per held-out corrected case with a bleed, the
    mean Dice over the classes in its truth; ``normal_ml``: per confirmed-normal case, mL called bleed.
    """

    reference_dice: tuple[float, ...]
    reference_class_dice: tuple[tuple[str, float], ...]
    heldout_dice: tuple[float, ...]
    normal_ml: tuple[float, ...]

    def to_dict(self) -> dict:
        return {"reference_dice": list(self.reference_dice), "reference_class_dice": dict(self.reference_class_dice),
                "heldout_dice": list(self.heldout_dice), "normal_ml": list(self.normal_ml)}

    @classmethod
    def from_dict(cls, values: dict) -> ModelFigures:
        return cls(tuple(map(float, values["reference_dice"])),
                   tuple((k, float(v)) for k, v in values["reference_class_dice"].items()),
                   tuple(map(float, values["heldout_dice"])), tuple(map(float, values["normal_ml"])))

    def describe(self) -> str:
        classes = ", ".join(f"{k} {v:.3f}" for k, v in self.reference_class_dice)
        return (f"reference set: mean Dice {_mean(self.reference_dice)} on {len(self.reference_dice)} phantom(s) "
                f"({classes}); held-out: mean Dice {_mean(self.heldout_dice)} on {len(self.heldout_dice)} case(s); "
                f"{sum(self.normal_ml):.2f} mL called bleed on {len(self.normal_ml)} confirmed-normal case(s)")


def _mean(values: Sequence[float]) -> str:
    return f"{float(np.mean(values)):.3f}" if len(values) else "n/a"


@dataclass(frozen=True)
class Interval:
    """Mean of paired differences and its bootstrap interval ``[low, high]`` over ``n`` cases."""

    mean: float
    low: float
    high: float
    n: int

    def describe(self) -> str:
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}] over {self.n} case(s)"


def paired_bootstrap(new: Sequence[float], old: Sequence[float], confidence: float = 0.9,
                     resamples: int = 2000, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of mean(new - old) over paired cases (same length, >= 1)."""
    diff = np.asarray(new, dtype=float) - np.asarray(old, dtype=float)
    if diff.ndim != 1 or diff.size == 0 or len(new) != len(old):
        raise ValueError(f"paired figures needed, got {len(new)} and {len(old)}")
    draws = np.random.default_rng(seed).integers(0, diff.size, size=(resamples, diff.size))
    means = diff[draws].mean(axis=1)
    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return Interval(float(diff.mean()), float(low), float(high), int(diff.size))


@dataclass(frozen=True)
class GatePart:
    """One check of the gate: ``name``, ``status`` (pass, fail, not judged) and its figures in words."""

    name: str
    status: str
    text: str

    def line(self) -> str:
        return f"{self.name}: {self.status.upper()}: {self.text}"


@dataclass(frozen=True)
class GateDecision:
    """Whether the candidate passes, and each part of the decision with its figures."""

    passed: bool
    parts: tuple[GatePart, ...]

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(p.line() for p in self.parts)

    def describe(self) -> str:
        verdict = "PASSED: the new version becomes active" if self.passed else "FAILED: the active model stays"
        return f"gate {verdict}\n" + "\n".join(f"  - {r}" for r in self.reasons)

    def to_dict(self) -> dict:
        return {"passed": self.passed, "parts": [vars(p).copy() for p in self.parts]}

    @classmethod
    def from_dict(cls, values: dict) -> GateDecision:
        return cls(bool(values["passed"]), tuple(GatePart(**p) for p in values["parts"]))


@dataclass(frozen=True)
class GateRule:
    """The configurable gate (see module docstring); ``describe()`` is what the user is shown."""

    reference_margin: float = 0.02
    max_normal_ml_increase: float = 0.0
    max_dice_drop: float = 0.0
    min_heldout: int = 4
    confidence: float = 0.9
    resamples: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        tolerances = (self.reference_margin, self.max_normal_ml_increase, self.max_dice_drop)
        if not all(math.isfinite(t) and t >= 0 for t in tolerances):
            raise ValueError("gate tolerances must be >= 0")
        if self.min_heldout < 2 or not 0.5 <= self.confidence < 1.0 or self.resamples < 100:
            raise ValueError("gate: min_heldout must be >= 2, confidence in [0.5, 1), resamples >= 100")

    def describe(self) -> str:
        level = f"{100 * self.confidence:g}%"
        return (f"a new version becomes active only if (1) on the fixed reference phantoms the {level} paired "
                f"bootstrap interval of its per-case Dice minus the active model's stays above "
                f"-{self.reference_margin:g}, (2) it calls at most {self.max_normal_ml_increase:g} mL more bleed "
                f"than the active model over the site's confirmed-normal cases, and (3) on the held-out corrected "
                f"cases that interval does not lie wholly below -{self.max_dice_drop:g} (with fewer than "
                f"{self.min_heldout} held-out cases it cannot judge improvement and decides on (1) and (2))")

    def _interval(self, new: Sequence[float], old: Sequence[float]) -> Interval:
        return paired_bootstrap(new, old, self.confidence, self.resamples, self.seed)

    def decide(self, candidate: ModelFigures, active: ModelFigures | None) -> GateDecision:
        """Compare ``candidate`` with the ``active`` model's figures (None: no active model, passes)."""
        if active is None:
            return GateDecision(True, (GatePart("active model", PASS, "none to compare with"),))
        parts = (self._reference(candidate, active), self._normal(candidate, active),
                 self._heldout(candidate, active))
        return GateDecision(all(p.status != FAIL for p in parts), parts)

    def _reference(self, new: ModelFigures, old: ModelFigures) -> GatePart:
        name = "reference set (forgetting)"
        if not new.reference_dice:
            return GatePart(name, FAIL, "no reference case was measured")
        iv = self._interval(new.reference_dice, old.reference_dice)
        ok = math.isfinite(iv.low) and iv.low >= -self.reference_margin
        return GatePart(name, PASS if ok else FAIL,
                        f"Dice new {_mean(new.reference_dice)} vs active {_mean(old.reference_dice)}; difference "
                        f"{iv.describe()}; lower end {'>=' if ok else '<'} -{self.reference_margin:g}")

    def _normal(self, new: ModelFigures, old: ModelFigures) -> GatePart:
        name = "confirmed-normal site cases"
        if not new.normal_ml:
            return GatePart(name, NOT_JUDGED, "the site has no confirmed-normal case")
        new_ml, old_ml = sum(new.normal_ml), sum(old.normal_ml)
        ok = math.isfinite(new_ml) and new_ml <= old_ml + self.max_normal_ml_increase
        per_case = ", ".join(f"{n:.2f}/{o:.2f}" for n, o in zip(new.normal_ml, old.normal_ml, strict=True))
        return GatePart(name, PASS if ok else FAIL,
                        f"bleed called: new {new_ml:.2f} mL vs active {old_ml:.2f} mL on {len(new.normal_ml)} "
                        f"case(s) (per case new/active: {per_case}); {'not more' if ok else 'more'} than "
                        f"active + {self.max_normal_ml_increase:g} mL")

    def _heldout(self, new: ModelFigures, old: ModelFigures) -> GatePart:
        name = "held-out corrected cases"
        n = len(new.heldout_dice)
        figures = f"Dice new {_mean(new.heldout_dice)} vs active {_mean(old.heldout_dice)}"
        if n < self.min_heldout:
            return GatePart(name, NOT_JUDGED,
                            f"{figures} on {n} case(s): cannot judge improvement with fewer than "
                            f"{self.min_heldout} held-out cases; decided on the reference set and the normal "
                            "cases alone")
        iv = self._interval(new.heldout_dice, old.heldout_dice)
        worse = not math.isfinite(iv.high) or iv.high < -self.max_dice_drop
        verdict = ("shows it worse" if worse else "shows it better" if iv.low > 0 else
                   "does not show it worse (nor better)")
        return GatePart(name, FAIL if worse else PASS, f"{figures}; difference {iv.describe()}: {verdict}")
