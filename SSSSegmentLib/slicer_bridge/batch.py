"""Batch segmentation of files from Slicer's console, on the engine's batch command (``sssseg batch``).

One engine child (``python -m SSSSegmentLib.cli batch INPUTS... OUT_DIR --progress json``) segments
every input with the model loaded once: per case ``<case_id>.seg.nrrd`` and, unless turned off,
its QC picture ``<case_id>.qc.png`` in the output folder, and one row in ``results.csv``
(:mod:`..batch.results`). A failing case is a ``failed`` row and the batch goes on; running the
same call again resumes (cases done with the same model are kept); a cancel stops it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..batch.cases import discover_cases
from ..batch.results import RESULTS_CSV, read_results
from ..errors import OutputError
from ..runner import ChildProcessRunner, Event, Spawn, python_module_command, run_to_completion
from .engine import ENGINE_MODULE, SegmentOptions, engine_environment, engine_options_args


@dataclass(frozen=True)
class CaseResult:
    """One case of a batch: its input, where its segmentation and QC picture went, its volumes (mL)
    or why it failed (or was skipped), and its ``case_id`` (the base name of its files)."""

    input_path: str
    output_path: str
    volumes_ml: Mapping[str, float] = field(default_factory=dict)
    error: str = ""
    qc_path: str = ""
    case_id: str = ""
    dicom_seg_path: str = ""  # the case's DICOM SEG (option ``dicom_seg``), "" when none

    @property
    def ok(self) -> bool:
        return not self.error


def batch_command(paths: Sequence[Path | str], output_dir: Path, options: SegmentOptions,
                  python: str | None = None, qc: bool = True, dicom_seg: bool = False) -> list[str]:
    """``python -m SSSSegmentLib.cli batch INPUTS... OUT_DIR --progress json ...`` as an argument list."""
    args = ["batch", *[str(p) for p in paths], str(output_dir), *engine_options_args(options)]
    if not qc:
        args.append("--no-qc")
    if dicom_seg:
        args.append("--dicom-seg")
    return python_module_command(ENGINE_MODULE, *args, python=python)


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
    """Segment every input (CT files or DICOM folders; a folder is searched for its series) into
    ``output_dir``; return one CaseResult per case, in case-id order.

    ``qc`` (default True): also ``output_dir/<case_id>.qc.png``. ``dicom_seg`` (default False): also
    ``output_dir/<case_id>.dcm``, a DICOM SEG, for each case read from DICOM (:mod:`..export`).
    ``options.overwrite`` False (the default here) never replaces an output file the batch did not
    write (that case is skipped) nor redoes cases done with another model. ``on_event("batch", event)``
    sees every engine event. Raises InputError for a missing input, OutputError when the output folder is unusable,
    Cancelled when ``should_cancel()`` turns true.
    """
    options = options or SegmentOptions(overwrite=False)
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise OutputError(f"output folder does not exist: {output_dir}")
    cases = discover_cases(paths, exclude=output_dir)
    command = batch_command(paths, output_dir, options, python, qc, dicom_seg)
    runner = ChildProcessRunner(command, env=engine_environment(), spawn=spawn)
    callback = None if on_event is None else (lambda event: on_event("batch", event))
    run_to_completion(runner, callback, poll_interval_s=0.05, should_cancel=should_cancel)
    rows = read_results(output_dir / RESULTS_CSV)
    return [_case_result(rows[c.case_id], output_dir) for c in cases if c.case_id in rows]


def _case_result(row, output_dir: Path) -> CaseResult:  # noqa: ANN001  (batch.results.ResultRow)
    label = str(output_dir / row.label_file) if row.label_file else ""
    qc = str(output_dir / row.qc_file) if row.qc_file else ""
    seg = str(output_dir / row.dicom_seg_file) if row.dicom_seg_file else ""
    error = "" if row.status == "ok" else (row.error or row.status)
    return CaseResult(row.input, label, dict(row.volumes_ml), error, qc, row.case_id, seg)
