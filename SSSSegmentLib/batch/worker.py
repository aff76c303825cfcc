"""One batch worker: loads the model once, then segments case after case into a staging folder.

The same :class:`CaseWorker` runs in the batch's own process (``--workers 1``) or as a Ray actor
(``ray.remote(CaseWorker)``); it never raises for a bad case: every case ends as a
:class:`CaseOutcome`, ``ok`` or with the one-line reason it failed.

Outputs of a case go to ``OUT_DIR/.staging/<case_id>/`` and are moved into ``OUT_DIR`` by the
batch driver once the case's row is on disk (see :mod:`.engine`).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CheckpointError, SSSSegError
from .cases import Case

STAGING_DIR = ".staging"
QC_SUFFIX = ".qc.png"
LABEL_SUFFIXES = (".seg.nrrd", ".nii.gz")
DICOM_SEG_SUFFIX = ".dcm"


@dataclass(frozen=True)
class ModelSpec:
    """The model and settings every worker uses, as ``sssseg segment`` takes them.

    ``checkpoint``: an SSS checkpoint file; ``sam2_checkpoint``: official SAM-2 weights; both None:
    the engine's default (see :func:`..api.load_model`). :func:`.identity.pin_model` turns the
    default into the file it resolves to, so every worker loads the same one. ``expected_sha256``:
    the file's SHA-256 as the driver read it (a worker refuses another file). ``refine``:
    ``model``/``on``/``off`` as ``segment --refine``. ``threads``: torch threads per worker (None:
    torch's default). ``label_suffix``: ``.seg.nrrd`` or ``.nii.gz``; ``qc``: write the QC picture;
    ``dicom_seg``: also a DICOM Segmentation (``<case_id>.dcm``) for each case read from DICOM.
    """

    preset: str | None = None
    checkpoint: Path | None = None
    sam2_checkpoint: Path | None = None
    device: str = "auto"
    allow_untrained: bool = False
    batch_size: int | None = None
    refine: str = "model"
    threads: int | None = None
    expected_sha256: str = ""
    label_suffix: str = ".seg.nrrd"
    qc: bool = True
    dicom_seg: bool = False

    def __post_init__(self) -> None:
        if self.label_suffix not in LABEL_SUFFIXES:
            raise ValueError(f"label_suffix must be one of {LABEL_SUFFIXES}, got {self.label_suffix!r}")
        if self.refine not in ("model", "on", "off"):
            raise ValueError(f"refine must be model, on or off, got {self.refine!r}")


@dataclass(frozen=True)
class CaseOutcome:
    """How one case ended in its worker: ``error`` empty when ok; ``files``: output names (in the
    staging folder, moved to OUT_DIR later); ``volumes_ml``: class key -> mL; ``seconds``: wall time."""

    case: Case
    error: str = ""
    volumes_ml: Mapping[str, float] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    seconds: float = 0.0
    worker: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def output_names(case: Case, spec: ModelSpec) -> tuple[str, ...]:
    """The files a case writes in OUT_DIR: its label map, its QC picture (when ``spec.qc``), then its
    DICOM SEG (when ``spec.dicom_seg`` and the case is read from DICOM)."""
    names = [f"{case.case_id}{spec.label_suffix}"]
    if spec.qc:
        names.append(f"{case.case_id}{QC_SUFFIX}")
    if spec.dicom_seg and is_dicom_case(case):
        names.append(f"{case.case_id}{DICOM_SEG_SUFFIX}")
    return tuple(names)


def is_dicom_case(case: Case) -> bool:
    """Whether ``case`` is read from a DICOM series (a folder or a DICOM file), not a volume file."""
    from ..volumes.io import input_folder

    return input_folder(case.path) is not None


def staging_dir(out_dir: Path, case_id: str) -> Path:
    """Where a worker writes the outputs of ``case_id`` before they are moved into ``out_dir``."""
    return out_dir / STAGING_DIR / case_id


class CaseWorker:
    """Loads the model of ``spec`` once (:meth:`load`) and segments cases with it (:meth:`segment`)."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._loaded = None  # api.LoadedModel
        self._config = None  # InferenceConfig
        self.name = worker_name()

    def load(self) -> tuple[str, int]:
        """Load the model (once); returns ``("", 0)`` or the error message and its exit code."""
        try:
            self._ensure_loaded()
        except SSSSegError as error:
            return str(error), error.exit_code
        return "", 0

    def segment(self, case: Case, out_dir: str) -> CaseOutcome:
        """Segment ``case`` into ``out_dir/.staging/<case_id>/``; never raises for a bad case."""
        start = time.perf_counter()
        staging = staging_dir(Path(out_dir), case.case_id)
        try:
            self._ensure_loaded()
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            result = self._segment_into(case, staging)
        except SSSSegError as error:
            return self._failed(case, str(error), start, staging)
        except Exception as error:  # a bug or a resource problem on this case: record it, go on
            return self._failed(case, f"internal error ({type(error).__name__}: {error})", start, staging)
        return CaseOutcome(case, "", dict(result.volumes_ml), output_names(case, self.spec),
                           time.perf_counter() - start, self.name)

    def _segment_into(self, case: Case, staging: Path):  # noqa: ANN202  (SegmentationResult)
        from .. import api

        paths = [staging / name for name in output_names(case, self.spec)]
        qc = next((p for p in paths if p.name.endswith(QC_SUFFIX)), None)
        result, _ = api.segment_file(case.path, paths[0], self._loaded, self._config, log=_quiet, overwrite=True,
                                     series_uid=case.series_uid, qc_png=qc)
        if paths[-1].name.endswith(DICOM_SEG_SUFFIX):
            self._write_dicom_seg(case, result, paths[-1])
        return result

    def _write_dicom_seg(self, case: Case, result, path: Path) -> None:  # noqa: ANN001  (SegmentationResult)
        """The case's DICOM SEG at ``path`` (on the source images, as ``sssseg segment --dicom-seg``)."""
        from ..export import check_dicom_seg_output, model_identity, write_dicom_seg

        target = check_dicom_seg_output(path, case.path, case.series_uid, overwrite=True)
        identity = model_identity(self._loaded.weights, self._loaded.model.preset.name)
        write_dicom_seg(target, result.labels_zyx, result.geometry, identity, True, _quiet)

    def _failed(self, case: Case, message: str, start: float, staging: Path) -> CaseOutcome:
        shutil.rmtree(staging, ignore_errors=True)
        return CaseOutcome(case, message or "unknown error", seconds=time.perf_counter() - start, worker=self.name)

    def _ensure_loaded(self) -> None:
        if self._loaded is not None:
            return
        from .. import api
        from ..fsutil import file_sha256
        from ..inference import config_for_run

        spec = self.spec
        if spec.threads:
            import torch

            torch.set_num_threads(spec.threads)
        weights = spec.checkpoint or spec.sam2_checkpoint
        if weights is not None and spec.expected_sha256:
            if not Path(weights).is_file():
                raise CheckpointError(f"model file not found on {socket.gethostname()}: {weights}")
            if file_sha256(weights) != spec.expected_sha256:
                raise CheckpointError(f"model file {weights} on {socket.gethostname()} is not the one the batch "
                                      "started with (its SHA-256 differs)")
        loaded = api.load_model(spec.preset, spec.checkpoint, spec.sam2_checkpoint, spec.device, spec.allow_untrained)
        config = config_for_run(loaded.model, spec.batch_size, spec.refine)
        self._loaded, self._config = loaded, config


def worker_name() -> str:
    """``host:pid`` of this process, with ``@`` and the first 8 hex digits of its Ray node id in a Ray worker."""
    name = f"{socket.gethostname()}:{os.getpid()}"
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        name += f"@{ray.get_runtime_context().get_node_id()[:8]}"
    return name


def _quiet(message: str) -> None:
    """Per-case engine log lines are dropped in a batch (the results table keeps what matters)."""
