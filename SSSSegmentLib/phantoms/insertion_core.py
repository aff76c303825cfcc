"""``insert_into`` / ``insert_lesions``: draw the classes, place each lesion (``insertion_placement``)
and blend it in (``insertion_blending``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..classes import BACKGROUND_LABEL
from ..errors import InputError
from ..volumes.geometry import Geometry
from .config import LESION_KEYS
from .insertion_background import prepare_background
from .insertion_blending import _accepted, _composite
from .insertion_config import Background, InsertionConfig, InsertionResult
from .insertion_placement import _RENDERERS, _allowed


def _random_keys(rng: np.random.Generator, config: InsertionConfig) -> tuple[str, ...]:
    n = int(rng.integers(1, min(config.max_lesions, len(LESION_KEYS)) + 1))
    return tuple(str(k) for k in rng.choice(LESION_KEYS, size=n, replace=False))


def insert_into(
    bg: Background,
    rng: np.random.Generator,
    keys: Sequence[str] | None = None,
    config: InsertionConfig = InsertionConfig(),  # noqa: B008 (frozen)
) -> InsertionResult:
    """Insert lesions of ``keys`` (class keys; None: 1..max_lesions random classes) into a prepared background.

    Each lesion gets ``config.max_tries`` placements. An explicitly requested class that cannot be placed
    (e.g. no ventricle found) raises InputError; a randomly drawn one is skipped.
    """
    wanted = _random_keys(rng, config) if keys is None else tuple(keys)
    unknown = [k for k in wanted if k not in _RENDERERS]
    if unknown:
        raise InputError(f"unknown lesion class(es) {unknown}; use {', '.join(LESION_KEYS)}")
    hu, labels = bg.hu_zyx.copy(), np.full(bg.hu_zyx.shape, BACKGROUND_LABEL, np.uint8)
    free = _allowed(bg, config).astype(np.float32)
    voxel_ml, records = bg.geometry.voxel_volume_ml, []
    for key in wanted:
        rendered = next((r for r in (_RENDERERS[key](bg, rng, config) for _ in range(config.max_tries))
                         if r is not None and _accepted(r, free, voxel_ml, config)), None)
        if rendered is None:
            if keys is not None:
                raise InputError(f"{bg.source or 'background'}: could not place a {key} in {config.max_tries} tries")
            continue
        records.append(_composite(hu, labels, free, rendered, key, bg.noise, rng, voxel_ml))
    return InsertionResult(hu, labels, tuple(records), bg.noise)


def insert_lesions(
    hu_zyx: np.ndarray,
    geometry: Geometry,
    rng: np.random.Generator,
    keys: Sequence[str] | None = None,
    config: InsertionConfig = InsertionConfig(),  # noqa: B008 (frozen)
) -> InsertionResult:
    """A bleed-free head CT (HU, (K, J, I), LPS ``geometry``) with synthetic lesions and their BHSD labels.

    Same ``rng`` state, inputs and config give the same result. See ``insert_into``.
    """
    return insert_into(prepare_background(hu_zyx, geometry, config), rng, keys, config)
