"""The gate's fixed reference set: phantoms that do not depend on the site's data, to catch forgetting.

Every fine-tune is judged, against the active model, on the same generated phantoms (fixed seeds,
two lesions each, every class at least ``cases * 2 // 5`` times), rendered with the site's scanner
profile where it can be estimated from the site's corrected scans (``estimate_scanner_profile``):

- slice thickness: the median slice spacing (k) of the scans;
- noise: the median noise std of deep parenchyma (``phantoms.insertion.estimate_noise``; on phantoms
  it reads 5.2-5.3 HU for a 5 HU profile and 8.9 for 9 HU);
- HU calibration: the median parenchyma HU minus ``PHANTOM_BRAIN_HU``, what the same measure reads
  on phantoms rendered without offset (29.2-31.8 HU on seeds 11-13, matrix 256), clipped to +-10 HU.

The in-plane point spread is not estimated (the standard profile's is kept). A scan without an
intracranial cavity (no skull found) is skipped; with none left, the standard profile is used and
the log says so. Arrays are (K, J, I) = (z, y, x).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..datasets import CasePaths
from ..errors import InputError
from ..phantoms import PhantomConfig, generate_phantom
from ..phantoms.config import LESION_KEYS, SCANNER_PROFILES, Phantom, ScannerProfile

PHANTOM_BRAIN_HU = 30.0
MAX_HU_OFFSET = 10.0
SCANS_MEASURED = 3  # corrected scans the profile is estimated from (the first ones)


@dataclass(frozen=True)
class ReferenceSpec:
    """Which phantoms make the reference set: ``cases`` phantoms from seed ``seed`` on, each with two
    lesions of different classes (cycling through every class), ``matrix`` in-plane, ``num_slices``
    (None: the whole head), lesions drawn from ``size_quantiles`` of each class's size distribution
    (no specks: a speck's Dice is all-or-nothing and makes the comparison noisy)."""

    cases: int = 8
    seed: int = 77_000_000
    matrix: int = 256
    num_slices: int | None = None
    size_quantiles: tuple[float, float] = (0.3, 1.0)

    def __post_init__(self) -> None:
        if self.cases < 1:
            raise ValueError("the reference set needs at least 1 case")


def lesion_pairs(cases: int) -> list[tuple[str, str]]:
    """The two lesion classes of each reference case: consecutive classes of a cycle over every class
    (EDH+IPH, IVH+SAH, SDH+EDH, ...), so each class comes back every 2.5 cases."""
    cycle = [LESION_KEYS[i % len(LESION_KEYS)] for i in range(2 * cases)]
    return [(cycle[2 * i], cycle[2 * i + 1]) for i in range(cases)]


def reference_phantoms(spec: ReferenceSpec, scanner: ScannerProfile) -> list[Phantom]:
    """The reference phantoms of ``spec`` rendered with ``scanner`` (same seeds, same heads and lesions
    for every profile: the generator's random streams are independent)."""
    phantoms = []
    for index, pair in enumerate(lesion_pairs(spec.cases)):
        config = PhantomConfig(matrix=spec.matrix, num_slices=spec.num_slices, lesion_keys=pair,
                               lesion_size_quantiles=spec.size_quantiles)
        phantoms.append(generate_phantom(spec.seed + index, config, scanner))
    return phantoms


def estimate_scanner_profile(scans: Sequence[CasePaths], log: Callable[[str], None] = lambda _m: None
                             ) -> ScannerProfile:
    """The site's scanner profile from up to ``SCANS_MEASURED`` of ``scans`` (see module docstring)."""
    from ..phantoms.insertion import prepare_background
    from ..training.cases import read_case

    standard = SCANNER_PROFILES["standard"]
    noise, brain, thickness = [], [], []
    for case in list(scans)[:SCANS_MEASURED]:
        volume, _ = read_case(case)
        try:
            background = prepare_background(volume.hu_zyx, volume.geometry, source=case.case_id)
        except InputError as exc:
            log(f"reference set: {exc}; not used to estimate the scanner profile")
            continue
        noise.append(background.noise.std_hu)
        brain.append(background.brain_hu)
        thickness.append(float(volume.geometry.spacing_mm[2]))
    if not noise:
        log("reference set: no site scan to estimate the scanner profile from; rendered with the standard one")
        return standard
    offset = float(np.clip(np.median(brain) - PHANTOM_BRAIN_HU, -MAX_HU_OFFSET, MAX_HU_OFFSET))
    profile = replace(standard, name="site (estimated)", noise_std_hu=round(float(np.median(noise)), 2),
                      hu_offset=round(offset, 1), slice_thickness_mm=round(float(np.clip(np.median(thickness),
                                                                                        0.3, 10.0)), 2))
    log(f"reference set: site scanner profile estimated from {len(noise)} scan(s): {describe_profile(profile)}")
    return profile


def describe_profile(profile: ScannerProfile) -> str:
    return (f"noise {profile.noise_std_hu:g} HU, HU offset {profile.hu_offset:+g}, slices "
            f"{profile.slice_thickness_mm:g} mm, in-plane blur {profile.inplane_blur_mm:g} mm")


def profile_to_dict(profile: ScannerProfile) -> dict:
    from dataclasses import asdict

    return asdict(profile)


def profile_from_dict(values: dict) -> ScannerProfile:
    return ScannerProfile(**values)
