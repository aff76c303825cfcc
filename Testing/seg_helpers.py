"""Helpers of the DICOM SEG tests: the CLI in-process, a fixed segmentation, a phantom DICOM series, the
SEG read back by highdicom, dciodvfy."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from dicom_series import write_ct_series

from SSSSegmentLib.cli import main
from SSSSegmentLib.inference import SegmentationResult
from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom
from SSSSegmentLib.volumes import CTVolume, Geometry

TINY = ["--preset", "tiny", "--device", "cpu", "--progress", "none"]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two masks; 1.0 when both are empty."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def run_cli(args: list[str]) -> tuple[int, str]:
    """``sssseg`` in-process: (exit code, everything it printed or logged, stdout + stderr + log records)."""
    out, records = io.StringIO(), []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger().addHandler(handler)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(args)
    finally:
        logging.getLogger().removeHandler(handler)
    return code, out.getvalue() + "\n".join(records)


def fixed_segmentation(make_labels):  # noqa: ANN001, ANN201
    """A stand-in for ``api.segment_volume`` that returns ``make_labels(volume)`` on the volume's grid."""

    def segment(volume: CTVolume, *args: object, **kwargs: object) -> SegmentationResult:
        labels = make_labels(volume).astype(np.uint8)
        return SegmentationResult(labels, volume.geometry, {k: 0.0 for k in ("EDH", "IPH", "IVH", "SAH", "SDH")},
                                  prompt_set=None)

    return segment



@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], np.ndarray]:
    """(DICOM folder, SOP Instance UIDs in slice order, the phantom's own labels (K, J, I))."""
    config = PhantomConfig(matrix=96, num_slices=10, lesion_keys=("IPH", "SDH"), lesion_size_quantiles=(0.7, 1.0),
                           artefact_strength=(0.0, 0.0))
    phantom = generate_phantom(11, config)
    folder = tmp_path_factory.mktemp("seg") / "ct_series"
    uids = write_ct_series(folder, phantom.hu_zyx, phantom.geometry)
    assert set(np.unique(phantom.labels_zyx)) >= {0, 2, 5}
    return folder, uids, phantom.labels_zyx


def five_class_labels(phantom_labels: np.ndarray) -> np.ndarray:
    """The phantom's IPH/SDH plus one asymmetric block per other class: all five classes present."""
    labels = phantom_labels.copy()
    k_mid = labels.shape[0] // 2
    labels[k_mid - 1:k_mid + 1, 10:14, 20:27] = 1  # EDH, 2 slices
    labels[k_mid, 40:46, 44:47] = 3  # IVH, 1 slice
    labels[k_mid + 1:k_mid + 4, 60:62, 30:39] = 4  # SAH, 3 slices
    return labels



def highdicom_labels(seg_path: Path, source_uids: list[str]) -> np.ndarray:
    """The SEG read by highdicom as one label map (S, rows, columns), frame s on source image s."""
    import highdicom as hd

    seg = hd.seg.segread(seg_path)
    return seg.get_pixels_by_source_instance(source_uids, segment_numbers=[1, 2, 3, 4, 5], combine_segments=True,
                                             skip_overlap_checks=False).astype(np.uint8)



def dciodvfy_errors(path: Path) -> list[str]:
    """The ``Error`` lines dciodvfy prints for a DICOM file."""
    proc = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("Error")]


@pytest.fixture(scope="module")
def dciodvfy() -> None:
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not on PATH: scripts/setup.sh installs it with apt-get "
                    "only when run as root or with passwordless sudo (apt-get install dicom3tools)")



def small_ct() -> CTVolume:
    """A tiny head-like CT (6 slices of 40 x 40): air around a block of brain."""
    hu = np.full((6, 40, 40), -1000.0, np.float32)
    hu[:, 5:35, 5:35] = 40.0
    return CTVolume(hu, Geometry((0.8, 0.8, 5.0)))
