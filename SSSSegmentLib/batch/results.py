"""``OUT_DIR/results.csv``: one row per case, appended as each case ends, never half-written.

Each row is appended with one ``write`` of a whole line and flushed to disk (``fsync``) before the
case's outputs are moved into place, so a killed batch loses at most the cases in flight. A line
without its newline (a crash in the middle of a write) is dropped when the table is read; at the
start and the end of a run the table is rewritten atomically (temporary file + rename) with one
row per case. Columns: :data:`COLUMNS` (volumes in mL, one column per class; seconds of wall time
the case took in its worker).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..classes import HEMORRHAGE_CLASSES
from ..errors import OutputError
from ..fsutil import atomic_path

RESULTS_CSV = "results.csv"
LOCK_FILE = ".sssseg-batch.lock"
STATUSES = ("ok", "failed", "skipped")
VOLUME_COLUMNS = tuple(f"{c.key}_ml" for c in HEMORRHAGE_CLASSES)
COLUMNS = ("case_id", "status", "error", "input", "series_uid", *VOLUME_COLUMNS, "model", "model_sha256",
           "seconds", "worker", "label_file", "qc_file", "finished_utc", "dicom_seg_file")


@dataclass(frozen=True)
class ResultRow:
    """One case's line: ``status`` is ``ok``, ``failed`` (``error`` says why) or ``skipped``.

    ``volumes_ml``: class key -> mL (empty unless ok). ``label_file``/``qc_file``/``dicom_seg_file``:
    names in OUT_DIR ("" when not written; the DICOM SEG only with ``--dicom-seg``, for DICOM cases).
    ``worker``: the worker that did it (``host:pid``, ``@node`` under Ray).
    """

    case_id: str
    status: str
    input: str
    error: str = ""
    series_uid: str = ""
    volumes_ml: Mapping[str, float] = field(default_factory=dict)
    model: str = ""
    model_sha256: str = ""
    seconds: float = 0.0
    worker: str = ""
    label_file: str = ""
    qc_file: str = ""
    finished_utc: str = ""
    dicom_seg_file: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    def to_record(self) -> list[str]:
        """The row's cells in :data:`COLUMNS` order."""
        volumes = [f"{self.volumes_ml[c.key]:.3f}" if c.key in self.volumes_ml else "" for c in HEMORRHAGE_CLASSES]
        error = " ".join(self.error.split())  # one line
        return [self.case_id, self.status, error, self.input, self.series_uid, *volumes, self.model,
                self.model_sha256, f"{self.seconds:.2f}", self.worker, self.label_file, self.qc_file, self.finished_utc,
                self.dicom_seg_file]

    @classmethod
    def from_record(cls, record: Mapping[str, str]) -> ResultRow:
        """A row read back with ``csv.DictReader`` (ValueError when a cell is malformed)."""
        volumes = {c.key: float(record[f"{c.key}_ml"]) for c in HEMORRHAGE_CLASSES if record[f"{c.key}_ml"]}
        return cls(record["case_id"], record["status"], record["input"], record["error"], record["series_uid"],
                   volumes, record["model"], record["model_sha256"], float(record["seconds"] or 0.0),
                   record["worker"], record["label_file"], record["qc_file"], record["finished_utc"],
                   record.get("dicom_seg_file") or "")


def format_line(cells: Iterable[str]) -> str:
    """One CSV line (``\\n``-terminated), quoted as the csv module does."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(list(cells))
    return buffer.getvalue()


def read_results(path: Path) -> dict[str, ResultRow]:
    """The rows of an existing results table by case id (the last row of a case wins); {} when
    there is no file. An unterminated last line is ignored. OutputError when the file is not a
    table this tool wrote (other header, malformed cells)."""
    if not path.exists():
        return {}
    text = path.read_text(encoding="utf-8")
    complete = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(complete))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise OutputError(f"{path} exists but is not a results table of 'sssseg batch' (its header differs); "
                          "choose another output folder or move the file away")
    rows: dict[str, ResultRow] = {}
    for line, record in enumerate(reader, start=2):
        try:
            rows[record["case_id"]] = ResultRow.from_record(record)
        except (ValueError, TypeError, KeyError) as error:
            raise OutputError(f"{path}, line {line}: malformed row ({error}); fix or move the file") from error
    return rows


def write_results(path: Path, rows: Iterable[ResultRow]) -> None:
    """Replace the table with ``rows`` (header first), atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(format_line(COLUMNS))
        for row in rows:
            fh.write(format_line(row.to_record()))
        fh.flush()
        os.fsync(fh.fileno())


def append_result(path: Path, row: ResultRow) -> None:
    """Append ``row`` with a single ``write`` of its whole line, then ``fsync``."""
    data = format_line(row.to_record()).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        written = os.write(fd, data)
        if written != len(data):
            raise OutputError(f"could not append a row to {path}: {written} of {len(data)} bytes written")
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def batch_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``OUT_DIR/.sssseg-batch.lock`` (an advisory ``flock``, released when the process ends,
    even killed): OutputError when another batch is writing to the same folder."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    fd = os.open(out_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise OutputError(f"another 'sssseg batch' is writing to {out_dir}; wait for it or choose another "
                              "output folder") from error
        yield
    finally:
        os.close(fd)
