"""What a (re)run of a batch has to do, from the cases found and the rows already in ``results.csv``.

Per case, by its row (the last one written for its id):

- ``ok`` with the same model and every output file in OUT_DIR: kept, not done again;
- ``ok`` with another model: done again only with ``overwrite`` (else the run refuses to start);
- ``ok`` with an output missing: done again;
- ``failed``: kept, done again with ``redo_failed``;
- no row (or ``skipped``): done, unless an output file of that name already exists (not ours to
  replace): then ``skipped``, or done with ``overwrite``.

A staging folder left by a killed run is finished (moved into OUT_DIR) when its case's row says
``ok`` (the row is written before the move), and removed otherwise.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import OutputError
from .cases import Case
from .identity import ModelIdentity
from .results import ResultRow
from .worker import DICOM_SEG_SUFFIX, QC_SUFFIX, STAGING_DIR, CaseOutcome, ModelSpec, output_names, staging_dir


@dataclass(frozen=True)
class Plan:
    """``todo``: cases to segment now; ``rows``: the table to start from (kept rows, rows of cases
    not found this time, new ``skipped`` rows); ``kept_ok``/``kept_failed``: cases left as they were."""

    todo: tuple[Case, ...]
    rows: tuple[ResultRow, ...]
    kept_ok: int
    kept_failed: int
    skipped: int


def plan_batch(cases: Sequence[Case], rows: Mapping[str, ResultRow], model: ModelIdentity, spec: ModelSpec,
               out_dir: Path, redo_failed: bool = False, overwrite: bool = False) -> Plan:
    """Decide, per case, whether to keep its row, do it, or skip it (see the module docstring)."""
    other_model = [c for c in cases if _done_with_other_model(rows.get(c.case_id), model)]
    if other_model and not overwrite:
        row = rows[other_model[0].case_id]
        raise OutputError(f"{out_dir} holds {len(other_model)} case(s) done with another model ({row.model}, "
                          f"sha256 {row.model_sha256[:12] or '-'}); this run uses {model.name} "
                          f"(sha256 {model.sha256[:12] or '-'}). Rerun with --overwrite to redo them with this "
                          "model, or choose another output folder")
    found = {c.case_id for c in cases}
    kept = [row for case_id, row in rows.items() if case_id not in found]
    todo: list[Case] = []
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    for case in cases:
        row = _decide(case, rows.get(case.case_id), model, spec, out_dir, redo_failed, overwrite)
        if row is None:
            todo.append(case)
        else:
            kept.append(row)
            counts[row.status] += 1
    return Plan(tuple(todo), tuple(kept), counts["ok"], counts["failed"], counts["skipped"])


def _decide(case: Case, row: ResultRow | None, model: ModelIdentity, spec: ModelSpec, out_dir: Path,
            redo_failed: bool, overwrite: bool) -> ResultRow | None:
    """The row to keep for ``case``, or None when the case is to be done."""
    names = output_names(case, spec)
    if row is not None and row.status == "ok":
        same_model = (row.model, row.model_sha256) == (model.name, model.sha256)
        return row if same_model and all((out_dir / n).is_file() for n in names) else None
    if row is not None and row.status == "failed":
        return None if redo_failed else row
    existing = [n for n in names if (out_dir / n).exists()]
    if existing and not overwrite:
        return ResultRow(case.case_id, "skipped", str(case.path), f"output exists, not overwritten (use --overwrite): "
                         f"{existing[0]}", case.series_uid or "", finished_utc=utc_now())
    return None


def _done_with_other_model(row: ResultRow | None, model: ModelIdentity) -> bool:
    return row is not None and row.status == "ok" and (row.model, row.model_sha256) != (model.name, model.sha256)


def recover_staging(out_dir: Path, rows: Mapping[str, ResultRow]) -> list[str]:
    """Finish or remove what a killed run left in ``OUT_DIR/.staging``; returns the case ids finished."""
    root = out_dir / STAGING_DIR
    if not root.is_dir():
        return []
    finished = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        row = rows.get(folder.name)
        names = row_files(row) if row is not None and row.status == "ok" else []
        if names and all((folder / n).is_file() for n in names):
            move_into_place(folder, out_dir, names)
            finished.append(folder.name)
        shutil.rmtree(folder, ignore_errors=True)
    return finished


def move_into_place(staging: Path, out_dir: Path, names: Sequence[str]) -> None:
    """Rename the staged files ``names`` into ``out_dir`` (same file system: each rename is atomic)."""
    for name in names:
        try:
            os.replace(staging / name, out_dir / name)
        except OSError as error:
            raise OutputError(f"could not move {name} into {out_dir}: {error.strerror or error}") from error


def outcome_row(outcome: CaseOutcome, model: ModelIdentity, spec: ModelSpec) -> ResultRow:
    """The results row of a case that just ended (output names as they will be in OUT_DIR)."""
    case = outcome.case
    names = output_names(case, spec) if outcome.ok else ()
    label = names[0] if names else ""
    qc = next((n for n in names if n.endswith(QC_SUFFIX)), "")
    seg = next((n for n in names if n.endswith(DICOM_SEG_SUFFIX)), "")
    return ResultRow(case.case_id, "ok" if outcome.ok else "failed", str(case.path), outcome.error,
                     case.series_uid or "", dict(outcome.volumes_ml), model.name, model.sha256, outcome.seconds,
                     outcome.worker, label, qc, utc_now(), seg)


def row_files(row: ResultRow) -> list[str]:
    """The output files an ``ok`` row names in OUT_DIR (label map, QC picture, DICOM SEG)."""
    return [n for n in (row.label_file, row.qc_file, row.dicom_seg_file) if n]


def finish_case(outcome: CaseOutcome, out_dir: Path, spec: ModelSpec) -> None:
    """After the case's row is on disk: move its outputs into place, remove its staging folder."""
    staging = staging_dir(out_dir, outcome.case.case_id)
    if outcome.ok:
        move_into_place(staging, out_dir, outcome.files)
    shutil.rmtree(staging, ignore_errors=True)


def utc_now() -> str:
    """The time now, UTC, ISO 8601 to the second."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
