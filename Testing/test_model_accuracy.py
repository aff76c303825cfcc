"""Regression test of the bundled model's accuracy: the demo phantom, and a head without bleeds.

Both figures are deterministic (seeded phantom, CPU inference). The floors are stated constants, set
below today's measurement so that a retrained model or changed PCPG rules may move them a little but
a broken model, checkpoint loading or pipeline cannot pass. Raise them when the model improves.
"""

from __future__ import annotations

import numpy as np
import pytest

from SSSSegmentLib import api
from SSSSegmentLib.demo import DEMO_SEED
from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom

# Mean Dice over the classes in the demo phantom's truth (the measure `sssseg demo` prints). Measured
# 2026-11-30 with the stage-5 bundled model (sha256 3284ff83...) and the PCPG defaults of that day:
# IVH 0.804, SDH 0.857, SAH 0.000, mean 0.554 (and a false EDH of 0.84 mL). Floor: that minus 0.1.
DEMO_MIN_MEAN_DICE = 0.45
# mL of bleed called on a head without bleeds: the module self-test's head (SSSSegment.py) at full size.
# The model is more tempted there than on the demo head without bleeds: PCPG gets 2.0 mL of candidates
# (1.0 mL on the demo head) and keeps 0.61 mL (one small SAH), measured the same day. The limit is
# the self-test's MAX_FALSE_ML, the goal for a bleed-free scan.
NO_BLEED_SEED = 90_000_100
MAX_FALSE_ML = 1.0


@pytest.fixture(scope="module")
def bundled() -> api.LoadedModel:
    loaded = api.load_model(device="cpu")  # the default: the best bundled model installed
    assert loaded.bundled and loaded.trained
    return loaded


def _dice(pred: np.ndarray, truth: np.ndarray) -> float:
    return 2.0 * float(np.count_nonzero(pred & truth)) / float(np.count_nonzero(pred) + np.count_nonzero(truth))


def test_bundled_model_on_the_demo_phantom_reaches_the_floor(bundled: api.LoadedModel):
    phantom = generate_phantom(DEMO_SEED)
    labels = api.segment_volume(phantom.to_ct_volume(), bundled).labels_zyx
    present = [int(v) for v in np.unique(phantom.labels_zyx) if v != 0]
    assert len(present) >= 2, "the demo phantom should hold several bleed types"
    per_class = {c: _dice(labels == c, phantom.labels_zyx == c) for c in present}
    mean = float(np.mean(list(per_class.values())))
    assert mean >= DEMO_MIN_MEAN_DICE, f"mean Dice {mean:.3f} over classes {per_class} < {DEMO_MIN_MEAN_DICE}"


def test_bundled_model_finds_at_most_a_trace_on_a_head_without_bleeds(bundled: api.LoadedModel):
    phantom = generate_phantom(NO_BLEED_SEED, PhantomConfig(p_no_lesion=1.0))
    assert not phantom.labels_zyx.any()
    result = api.segment_volume(phantom.to_ct_volume(), bundled)
    called_ml = float(np.count_nonzero(result.labels_zyx)) * phantom.geometry.voxel_volume_ml
    assert called_ml <= MAX_FALSE_ML, f"{called_ml:.2f} mL called on a head without bleeds: {result.volumes_ml}"
