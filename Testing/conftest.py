"""Shared pytest fixtures: paths to the shared real data (skipped, with the reason, when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The engine's default model would come from the user's model registry (~/.local/share/sssseg/registry):
# tests use the bundled model unless they point SSSSEG_REGISTRY at their own folder.
os.environ["SSSSEG_REGISTRY"] = ""

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = PROJECT_ROOT.parent / "shared"
TILTED_CT_DIR = SHARED_DIR / "data" / "ct_head_ge_tilted"
REAL_CT_HOWTO = (
    f"real head CT not found at {TILTED_CT_DIR}: it is not in the repository; to run this test put the GE "
    "head CT DICOM folder (28 slices, gantry tilt 18.5 deg) there, beside the project folder, and rerun "
    "(README, Tests)"
)


@pytest.fixture(scope="session")
def tilted_ct_dir() -> Path:
    """The real GE head CT (28 DICOM slices, gantry tilt 18.5 deg) from ../shared/data."""
    if not TILTED_CT_DIR.is_dir():
        pytest.skip(REAL_CT_HOWTO)
    return TILTED_CT_DIR


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 small phantoms (2 labeled with bleeds, 1 unlabeled), 8 slices of 96 x 96 (training tests)."""
    from SSSSegmentLib.phantoms import PhantomConfig, write_dataset

    out = tmp_path_factory.mktemp("phantoms")
    config = PhantomConfig(matrix=96, num_slices=8, lesion_keys=("IPH", "SDH"), lesion_size_quantiles=(0.6, 1.0))
    write_dataset(out, 3, seed=5, labeled_fraction=0.67, config=config)
    return out


@pytest.fixture(autouse=True)
def _restore_thread_count():  # noqa: ANN202
    """A command run in-process (``cli.main``) sets torch's thread count for the whole process
    (``SSSSegmentLib.threads``); put it back after each test so the next one starts as a fresh process."""
    import sys

    from SSSSegmentLib import threads

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else threads.usable_cores()
    yield
    threads._chosen.clear()  # noqa: SLF001
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != before:
        torch.set_num_threads(before)
