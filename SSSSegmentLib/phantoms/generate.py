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
    keeps the same head and lesions.
    """
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"phantom seed must be a non-negative integer, got {seed!r}")
    config.validate()
    thickness = config.slice_thickness_mm or scanner.slice_thickness_mm
    if not 0.3 <= thickness <= 10:
        raise InputError(f"slice thickness must be 0.3..10 mm, got {thickness}")
    rng_anatomy, rng_lesions, rng_grid, rng_scan, rng_artefacts = _streams(seed)
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
    return Phantom(
        hu_zyx=hu,
        labels_zyx=labels,
        tissue_zyx=ideal.tissue,
        geometry=geometry,
        lesions=records,
        seed=int(seed),
        scanner=scanner,
        anatomy=anat,
    )


def _streams(seed: int) -> list[np.random.Generator]:
    """The anatomy, lesion, grid, scan-noise and artefact random streams of ``seed``."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(5)]


def case_artefacts(
    seed: int,
    config: PhantomConfig = PhantomConfig(),  # noqa: B008 (frozen, immutable)
    scanner: ScannerProfile = SCANNER_PROFILES["standard"],
) -> Artefacts:
    """The scanner artefacts ``generate_phantom(seed, config, scanner)`` draws (cheap: nothing rendered)."""
    return draw_artefacts(_streams(seed)[4], config, scanner)


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
