"""Batch segmentation of files from Slicer's console: one engine child per input, one CSV of volumes.

Each input (a CT file or a DICOM folder) gives ``<name>.seg.nrrd`` and, unless turned off, its QC
picture ``<name>.qc.png`` (:mod:`..qc.case_picture`) in the output folder (with ``dicom_seg``, a DICOM
input also gives its DICOM Segmentation ``<name>.dcm``, :mod:`..export`); the per-class volumes (mL)
of every case go to ``volumes.csv``. A failing case is recorded (its row
says why) and the batch goes on; a cancel stops it.
"""

from __future__ import annotations

import csv
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..classes import HEMORRHAGE_CLASSES
from ..errors import Cancelled, InputError, OutputError, SSSSegError
from ..export import DICOM_SEG_SUFFIX
from ..fsutil import atomic_path, check_writable_output
from ..runner import ChildProcessRunner, Event, Spawn, run_to_completion
from ..volumes.io import ITK_VOLUME_SUFFIXES, full_suffix
from .engine import SegmentOptions, engine_environment, segment_command

VOLUMES_CSV = "volumes.csv"
QC_SUFFIX = ".qc.png"


@dataclass(frozen=True)
class CaseResult:
    """One input of a batch: where its segmentation and QC picture went, its volumes (mL) or why it failed."""

    input_path: str
    output_path: str
    volumes_ml: dict[str, float] = field(default_factory=dict)
    error: str = ""
    qc_path: str = ""
    dicom_seg_path: str = ""  # the case's DICOM SEG (batch option ``dicom_seg``), "" when none

    @property
    def ok(self) -> bool:
        return not self.error


def case_name(path: Path) -> str:
    """Output base name for an input: file name without its volume suffix, or the folder name."""
    path = Path(path)
    suffix = full_suffix(path, ITK_VOLUME_SUFFIXES) if path.is_file() else None
    if suffix:
        return path.name[: -len(suffix)] or "case"
    return (path.stem if path.suffix.lower() == ".dcm" else path.name) or "case"


def segment_files(
    paths: Sequence[Path | str],
    output_dir: Path | str,
    options: SegmentOptions | None = None,
    *,
    on_event: Callable[[str, Event], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    spawn: Spawn = subprocess.Popen,
    python: str | None = None,
    qc: bool = True,
    dicom_seg: bool = False,
) -> list[CaseResult]:
    """Segment every input into ``output_dir/<name>.seg.nrrd``; write ``output_dir/volumes.csv``.

    ``qc`` (default True): also ``output_dir/<name>.qc.png``, the case's QC picture.
    ``dicom_seg`` (default False): also ``output_dir/<name>.dcm``, a DICOM SEG, for each DICOM input
    (a folder or a DICOM file; NIfTI/NRRD inputs have no source images to reference and get none).
    ``options.overwrite`` False (the default here) refuses to replace existing outputs.
    ``on_event(case name, event)`` sees every engine event. Raises OutputError when the output
    folder is unusable or two inputs share a name, Cancelled when ``should_cancel()`` turns true.
    """
    options = options or SegmentOptions(overwrite=False)
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise OutputError(f"output folder does not exist: {output_dir}")
    names = [case_name(Path(p)) for p in paths]
    if len(set(names)) != len(names):
        raise OutputError(f"two inputs would write the same output name: {sorted(names)}")
    check_writable_output(output_dir / VOLUMES_CSV, overwrite=options.overwrite)
    results = [
        _segment_one(Path(p), output_dir / f"{n}.seg.nrrd", output_dir / f"{n}{QC_SUFFIX}" if qc else None,
                     options, on_event, should_cancel, spawn, python,
                     output_dir / f"{n}{DICOM_SEG_SUFFIX}" if dicom_seg and _is_dicom(Path(p)) else None)
        for p, n in zip(paths, names, strict=True)
    ]
    write_volumes_csv(results, output_dir / VOLUMES_CSV, overwrite=options.overwrite)
    return results


def _is_dicom(path: Path) -> bool:
    """A DICOM input: a folder, or a file that is not a NIfTI/NRRD/MetaImage volume."""
    return path.is_dir() or (path.is_file() and full_suffix(path, ITK_VOLUME_SUFFIXES) is None)


def _segment_one(path: Path, output: Path, qc_png: Path | None, options: SegmentOptions,
                 on_event, should_cancel, spawn: Spawn, python: str | None,  # noqa: ANN001
                 dicom_seg: Path | None = None) -> CaseResult:
    name = output.name
    try:
        if not path.exists():
            raise InputError(f"input does not exist: {path}")
        command = segment_command(path, output, options, python=python, qc_png=qc_png, dicom_seg=dicom_seg)
        runner = ChildProcessRunner(command, env=engine_environment(), spawn=spawn)
        callback = None if on_event is None else (lambda event: on_event(name, event))
        done = run_to_completion(runner, callback, poll_interval_s=0.05, should_cancel=should_cancel)
    except Cancelled:
        raise
    except SSSSegError as exc:  # this case failed (bad input, engine error): record it, go on
        return CaseResult(str(path), str(output), error=str(exc))
    qc_written = str(qc_png) if qc_png is not None and str(qc_png) in done.outputs else ""
    seg_written = str(dicom_seg) if dicom_seg is not None and str(dicom_seg) in done.outputs else ""
    return CaseResult(str(path), str(output), dict(done.volumes_ml), qc_path=qc_written, dicom_seg_path=seg_written)


def write_volumes_csv(results: Sequence[CaseResult], path: Path, overwrite: bool = False) -> Path:
    """One row per case: input, output, one column ``<KEY>_ml`` per class, the QC picture, and an error column."""
    check_writable_output(path, overwrite=overwrite)
    keys = [c.key for c in HEMORRHAGE_CLASSES]
    columns = ["input", "output", *[f"{k}_ml" for k in keys], "qc", "error"]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for r in results:
            volumes = [f"{r.volumes_ml[k]:.3f}" if k in r.volumes_ml else "" for k in keys]
            writer.writerow([r.input_path, r.output_path if r.ok else "", *volumes, r.qc_path, r.error])
    return path
