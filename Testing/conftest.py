"""Shared pytest fixtures: paths to the shared real data (skipped, with the reason, when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = PROJECT_ROOT.parent / "shared"
TILTED_CT_DIR = SHARED_DIR / "data" / "ct_head_ge_tilted"


@pytest.fixture(scope="session")
def tilted_ct_dir() -> Path:
    """The real GE head CT (28 DICOM slices, gantry tilt 18.5 deg) from ../shared/data."""
    if not TILTED_CT_DIR.is_dir():
        pytest.skip(f"real head CT not found at {TILTED_CT_DIR} (it ships beside the repo in CI, not in a clone)")
    return TILTED_CT_DIR
