"""``generate_phantom``: one synthetic head CT with hemorrhage labels, deterministic per seed."""

from __future__ import annotations

import numpy as np

from ..classes import CLASS_BY_KEY
from ..errors import InputError
from .acquisition import (
    Artefacts,
    add_tissue_texture,
    apply_beam_hardening,
    apply_scanner,
    draw_artefacts,
    make_grid,
    sub_slice_count,
)
from .config import SCANNER_PROFILES, LesionRecord, Phantom, PhantomConfig, ScannerProfile
from .geometry_variants import apply_variant, config_for_variant
from .head_sampling import sample_anatomy
from .lesion_sampling import sample_lesions
from .render import render_ideal


def generate_phantom(
    seed: int,
    config: PhantomConfig = PhantomConfig(),  # noqa: B008 (frozen, immutable)
    scanner: ScannerProfile = SCANNER_PROFILES["standard"],
) -> Phantom:
    """A synthetic head CT (see ``Phantom``) for ``seed``; same seed + config + scanner => same arrays.

    Independent random streams drive the anatomy, the lesions, the grid, the scanner noise and the
    scanner artefacts (``case_artefacts``), so a different matrix, scanner profile or artefact strength
    keeps the same head and lesions. With ``config.geometry_variants`` a sixth stream draws the case's
    real-geometry variant (``geometry_variants``; ``Phantom.variant``).
    """
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"phantom seed must be a non-negative integer, got {seed!r}")
    config.validate()
    rng_anatomy, rng_lesions, rng_grid, rng_scan, rng_artefacts, rng_variant = _streams(seed)
    variant, config = _variant(config, rng_variant)
    thickness = config.slice_thickness_mm or scanner.slice_thickness_mm
    if not 0.3 <= thickness <= 10:
        raise InputError(f"slice thickness must be 0.3..10 mm, got {thickness}")
    artefacts = draw_artefacts(rng_artefacts, config, scanner)
    anat = sample_anatomy(rng_anatomy)
    anat, geometry, shape = make_grid(rng_grid, anat, config, thickness)
    lesions = sample_lesions(rng_lesions, anat, config)
    n_sub = sub_slice_count(thickness, config.sub_slice_mm)
    ideal = render_ideal(anat, lesions, geometry, shape, n_sub, artefacts.ssp_width)
    hu = ideal.hu
    add_tissue_texture(rng_scan, hu, ideal.tissue, ideal.lesion_index, anat.tissue_texture_hu)
    apply_beam_hardening(rng_artefacts, hu, ideal.tissue, geometry.spacing_mm[0], artefacts)
    hu = apply_scanner(rng_scan, hu, scanner, geometry.spacing_mm[0], artefacts)
    labels, records = _labels_and_records(ideal.lesion_index, lesions, anat, geometry.voxel_volume_ml)
    phantom = Phantom(
        hu_zyx=hu,
        labels_zyx=labels,
        tissue_zyx=ideal.tissue,
        geometry=geometry,
        lesions=records,
        seed=int(seed),
        scanner=scanner,
        anatomy=anat,
        variant=variant,
    )
    return apply_variant(phantom, variant, rng_variant)


def _streams(seed: int) -> list[np.random.Generator]:
    """The anatomy, lesion, grid, scan-noise, artefact and geometry-variant random streams of ``seed``
    (spawned children 0-4 are those of the five streams before the variants existed)."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(6)]


def case_artefacts(
    seed: int,
    config: PhantomConfig = PhantomConfig(),  # noqa: B008 (frozen, immutable)
    scanner: ScannerProfile = SCANNER_PROFILES["standard"],
) -> Artefacts:
    """The scanner artefacts ``generate_phantom(seed, config, scanner)`` draws (cheap: nothing rendered)."""
    streams = _streams(seed)
    return draw_artefacts(streams[4], _variant(config, streams[5])[1], scanner)


def _variant(config: PhantomConfig, rng_variant: np.random.Generator) -> tuple[str, PhantomConfig]:
    """The case's geometry variant (drawn from ``config.geometry_variants``) and the config it generates with."""
    variant = str(rng_variant.choice(config.geometry_variants)) if config.geometry_variants else "none"
    return variant, config_for_variant(config, variant, rng_variant)


def _labels_and_records(lesion_index: np.ndarray, lesions, anat, voxel_ml: float):  # noqa: ANN001, ANN202
    """BHSD label map (uint8, K, J, I) and one record per lesion that left labelled voxels."""
    lut = np.zeros(len(lesions) + 1, dtype=np.uint8)
    records = []
    counts = np.bincount(lesion_index.ravel(), minlength=len(lesions) + 1)
    for n, lesion in enumerate(lesions, start=1):
        lut[n] = CLASS_BY_KEY[lesion.key].label
        if counts[n]:
            centre = anat.to_lps(np.asarray([lesion.centre_local]))[0]
            records.append(LesionRecord(lesion.key, tuple(float(c) for c in centre), float(counts[n] * voxel_ml)))
    return lut[lesion_index], tuple(records)
