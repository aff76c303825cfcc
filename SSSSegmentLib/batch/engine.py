"""The batch driver: find the cases, decide what is left to do, run it, keep ``results.csv`` true.

One driver process owns ``OUT_DIR/results.csv`` (a lock keeps a second batch out of the same
folder). Workers (:mod:`.runners`) segment into a staging folder; for each case that ends the
driver appends its row (flushed to disk), then moves its files into OUT_DIR. Killed at any point,
a rerun of the same command finds every case either done (row and files) or still to do.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..classes import HEMORRHAGE_CLASSES
from ..errors import OutputError
from ..fsutil import check_writable_output
from ..progress import ProgressCallback, silent
from .cases import Case, discover_cases
from .identity import ModelIdentity, pin_model
from .plan import finish_case, outcome_row, plan_batch, recover_staging
from .results import RESULTS_CSV, ResultRow, append_result, batch_lock, read_results, write_results
from .runners import RayOptions, make_runner
from .worker import STAGING_DIR, CaseOutcome, ModelSpec


@dataclass(frozen=True)
class BatchOptions:
    """A batch: ``inputs`` (folders, volume files, CSV lists), ``out_dir``, the model ``spec``, where
    it runs (``ray``: one local worker runs in this process), and what a rerun redoes."""

    inputs: tuple[Path, ...]
    out_dir: Path
    spec: ModelSpec = field(default_factory=ModelSpec)
    ray: RayOptions = field(default_factory=lambda: RayOptions(workers=1))
    redo_failed: bool = False
    overwrite: bool = False


@dataclass(frozen=True)
class BatchSummary:
    """The batch's state at the end: counts over every case found (``done_now``/``failed_now``: this
    run only), total mL per class over the ok cases, wall time of this run in seconds."""

    cases: int
    ok: int
    failed: int
    skipped: int
    done_now: int
    failed_now: int
    volumes_ml: dict[str, float]
    wall_s: float
    results_csv: Path
    model: ModelIdentity


class ProgressLine:
    """Cases done and failed, rate and ETA of this run, as one progress message."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.failed = total, 0, 0
        self._start = time.perf_counter()

    def count(self, outcome: CaseOutcome) -> None:
        self.done += 1
        self.failed += 0 if outcome.ok else 1

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    def message(self) -> str:
        elapsed = time.perf_counter() - self._start
        rate = 60.0 * self.done / elapsed if self.done and elapsed > 0 else 0.0
        eta = f"ETA {_clock(60.0 * (self.total - self.done) / rate)}" if rate else "ETA -"
        return f"{self.done}/{self.total} cases, {self.failed} failed, {rate:.1f} cases/min, {eta}"


def run_batch(options: BatchOptions, progress: ProgressCallback = silent, log: Callable[[str], None] = print,
              on_case: Callable[[ResultRow], None] | None = None) -> BatchSummary:
    """Run (or resume) a batch; ``on_case`` sees each row as it is written. Raises InputError (no
    case, missing input), CheckpointError (no usable model), OutputError (OUT_DIR unusable, held by
    another batch, done with another model without ``overwrite``), SSSSegError (Ray missing or no
    worker started); a bad case never raises: it is a ``failed`` row."""
    start = time.perf_counter()
    out_dir = _usable_out_dir(options.out_dir)
    cases = discover_cases(options.inputs, exclude=out_dir)  # bad inputs or no model: nothing is created
    spec, model = pin_model(options.spec)
    out_dir.mkdir(exist_ok=True)
    check_writable_output(out_dir / RESULTS_CSV, overwrite=True)
    table = out_dir / RESULTS_CSV
    with batch_lock(out_dir):
        rows = read_results(table)
        for case_id in recover_staging(out_dir, rows):
            log(f"{case_id}: finished moving its outputs (the previous run stopped in between)")
        plan = plan_batch(cases, rows, model, spec, out_dir, options.redo_failed, options.overwrite)
        write_results(table, plan.rows)
        log(f"{len(cases)} case(s): {plan.kept_ok} done before, {len(plan.todo)} to do"
            + (f", {plan.kept_failed} failed before (--redo-failed retries them)" if plan.kept_failed else "")
            + (f", {plan.skipped} skipped (outputs exist)" if plan.skipped else "") + f"; model: {model.name}")
        new_rows = _run(plan.todo, out_dir, spec, model, options.ray, progress, log, on_case)
        final = {row.case_id: row for row in (*plan.rows, *new_rows)}
        write_results(table, sorted(final.values(), key=lambda r: r.case_id))
        with contextlib.suppress(OSError):
            (out_dir / STAGING_DIR).rmdir()  # only when empty
    found = {c.case_id for c in cases}
    return _summary([final[c] for c in sorted(found)], new_rows, time.perf_counter() - start, table, model)


def _run(todo: Sequence[Case], out_dir: Path, spec: ModelSpec, model: ModelIdentity, ray: RayOptions,
         progress: ProgressCallback, log: Callable[[str], None],
         on_case: Callable[[ResultRow], None] | None) -> list[ResultRow]:
    """Segment ``todo``; append each row, then move its files in; return the new rows."""
    if not todo:
        return []
    runner = make_runner(spec, ray)
    line = ProgressLine(len(todo))
    new_rows: list[ResultRow] = []

    def record(outcome: CaseOutcome) -> None:
        row = outcome_row(outcome, model, spec)
        append_result(out_dir / RESULTS_CSV, row)
        finish_case(outcome, out_dir, spec)
        new_rows.append(row)
        line.count(outcome)
        if on_case is not None:
            on_case(row)
        progress("batch", line.fraction, line.message())

    try:
        progress("batch", 0.0, "starting workers")
        log(runner.start())
        progress("batch", 0.0, line.message())
        runner.run(todo, out_dir, record)
    finally:
        runner.close()
    return new_rows


def _usable_out_dir(out_dir: Path) -> Path:
    """``out_dir`` as an absolute path: OutputError when it is a file or its parent folder is missing."""
    out_dir = Path(out_dir).absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"output folder is a file: {out_dir}")
    if not out_dir.parent.is_dir():
        raise OutputError(f"the folder that should hold {out_dir.name} does not exist: {out_dir.parent}")
    return out_dir


def _summary(rows: list[ResultRow], new_rows: list[ResultRow], wall_s: float, table: Path,
             model: ModelIdentity) -> BatchSummary:
    status = [r.status for r in rows]
    totals = {c.key: sum(r.volumes_ml.get(c.key, 0.0) for r in rows if r.status == "ok") for c in HEMORRHAGE_CLASSES}
    return BatchSummary(len(rows), status.count("ok"), status.count("failed"), status.count("skipped"),
                        len(new_rows), sum(r.status == "failed" for r in new_rows), totals, wall_s, table, model)


def format_summary(summary: BatchSummary) -> str:
    """The end-of-batch report: counts, total mL per class, wall time and rate."""
    rate = 60.0 * summary.done_now / summary.wall_s if summary.wall_s > 0 else 0.0
    lines = [f"cases: {summary.cases} ({summary.ok} ok, {summary.failed} failed, {summary.skipped} skipped); "
             f"this run: {summary.done_now} done ({summary.failed_now} failed) in {_clock(summary.wall_s)}, "
             f"{rate:.1f} cases/min",
             "total volume over the ok cases (mL): "
             + ", ".join(f"{key} {ml:.2f}" for key, ml in summary.volumes_ml.items()),
             f"model: {summary.model.name} (sha256 {summary.model.sha256 or '-'})",
             f"results: {summary.results_csv}"]
    return "\n".join(lines)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
