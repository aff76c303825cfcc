"""Which cases a batch has: volume files and DICOM series found under the inputs, or listed in a CSV.

A case is one CT to segment: a NIfTI/NRRD/MetaImage file, or one series of a DICOM folder (a
folder holding several series gives one case per series). Every case gets a ``case_id`` that names
its output files, unique in the batch and safe as a file name (letters, digits, ``_`` and ``-``).
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..volumes.io import ITK_VOLUME_SUFFIXES, full_suffix

LIST_SUFFIX = ".csv"
# Files that are never a DICOM slice: not opened while looking for series (saves a header read each).
NOT_DICOM_SUFFIXES = (*ITK_VOLUME_SUFFIXES, ".csv", ".json", ".txt", ".md", ".png", ".jpg", ".jpeg", ".pdf",
                      ".zip", ".gz", ".xml", ".html", ".log", ".raw", ".zraw", ".py", ".yaml", ".yml")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Case:
    """One CT of the batch: ``path`` (a volume file or a DICOM folder) and, for a folder holding
    several series, the ``series_uid`` to read from it."""

    case_id: str
    path: Path
    series_uid: str | None = None


def safe_id(text: str) -> str:
    """``text`` as a file-name-safe case id: runs of other characters become one ``_``."""
    return _UNSAFE.sub("_", text).strip("_") or "case"


def discover_cases(inputs: Iterable[Path | str], exclude: Path | None = None) -> list[Case]:
    """The cases of every input, sorted by case id.

    Each input is a volume file (one case), a folder (searched recursively: every volume file and
    every DICOM series is a case; its id is its path relative to the folder, ``/`` written ``__``,
    without the volume suffix) or a ``.csv`` list (see :func:`read_case_list`). A DICOM series
    directly in an input folder takes the folder's name; a folder with several series adds ``__s``
    and 8 hex digits of each series UID. Hidden folders and the folder ``exclude`` (the batch's
    output folder, when it lies inside an input) are not searched. InputError for a missing input,
    an input with no case, or two cases with the same id.
    """
    cases: list[Case] = []
    for item in inputs:
        path = Path(item).absolute()
        if not path.exists():
            raise InputError(f"input does not exist: {path}")
        found = read_case_list(path, exclude) if path.is_file() and path.suffix.lower() == LIST_SUFFIX else list(
            _cases_under(path, exclude))
        if not found:
            raise InputError(f"no CT found in {path}: it holds no NIfTI/NRRD/MetaImage file and no DICOM series")
        cases.extend(found)
    return _checked_unique(cases)


def read_case_list(csv_path: Path, exclude: Path | None = None) -> list[Case]:
    """The cases of a CSV list: a column ``input`` (a path, relative to the CSV's folder unless
    absolute) and optional columns ``case_id`` and ``series_uid``. A row without ``case_id`` or
    ``series_uid`` is searched like a command-line input (a study folder may give several cases)."""
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "input" not in reader.fieldnames:
            raise InputError(f"{csv_path}: a case list needs a header row with an 'input' column")
        rows = list(reader)
    cases: list[Case] = []
    for line, row in enumerate(rows, start=2):
        cases.extend(_cases_of_row(csv_path, line, row, exclude))
    return cases


def _cases_of_row(csv_path: Path, line: int, row: dict[str, str], exclude: Path | None) -> list[Case]:
    text = (row.get("input") or "").strip()
    if not text:
        raise InputError(f"{csv_path}, line {line}: the 'input' column is empty")
    path = Path(text) if os.path.isabs(text) else csv_path.parent / text
    if not path.exists():
        raise InputError(f"{csv_path}, line {line}: input does not exist: {path}")
    case_id, uid = (row.get("case_id") or "").strip(), (row.get("series_uid") or "").strip() or None
    if uid is not None:
        return [Case(safe_id(case_id or _name_of(path)), path, uid)]
    found = list(_cases_under(path, exclude))
    if case_id and len(found) != 1:
        raise InputError(f"{csv_path}, line {line}: case_id '{case_id}' given but {path} holds {len(found)} "
                         "CT series; give one row per series with its series_uid")
    return [Case(safe_id(case_id), c.path, c.series_uid) for c in found] if case_id else found


def _cases_under(root: Path, exclude: Path | None = None) -> Iterator[Case]:
    """The cases in ``root``: itself when it is a file; else every volume file and DICOM series below it."""
    if root.is_file():
        yield Case(safe_id(_name_of(root)), root)
        return
    skip = exclude.resolve() if exclude is not None else None
    for folder, subfolders, files in os.walk(root):
        here = Path(folder)
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and (here / d).resolve() != skip)
        parts = here.relative_to(root).parts
        dicom_candidates = []
        for name in sorted(files):
            if full_suffix(here / name, ITK_VOLUME_SUFFIXES):
                yield Case(safe_id("__".join((*parts, _name_of(here / name)))), here / name)
            elif not name.startswith(".") and not full_suffix(here / name, NOT_DICOM_SUFFIXES):
                dicom_candidates.append(name)
        if dicom_candidates:
            yield from _series_cases(here, "__".join(parts) or root.name)


def _series_cases(folder: Path, case_prefix: str) -> list[Case]:
    """One case per DICOM image series directly inside ``folder`` (none when it holds no DICOM image)."""
    from ..volumes.dicom import find_series

    series = find_series(folder)
    if len(series) == 1:
        return [Case(safe_id(case_prefix), folder)]
    return [Case(safe_id(f"{case_prefix}__s{hashlib.sha1(s.uid.encode()).hexdigest()[:8]}"), folder, s.uid)
            for s in sorted(series, key=lambda s: s.uid)]


def _name_of(path: Path) -> str:
    """A file's name without its volume suffix; a folder's name."""
    suffix = full_suffix(path, ITK_VOLUME_SUFFIXES) if path.is_file() else None
    return path.name[: -len(suffix)] if suffix else path.name


def _checked_unique(cases: list[Case]) -> list[Case]:
    seen: dict[str, Case] = {}
    for case in cases:
        other = seen.setdefault(case.case_id, case)
        if other is not case:
            raise InputError(f"two inputs give the same case id '{case.case_id}': {other.path} and {case.path}; "
                             "rename one, or list the cases in a CSV with a case_id column")
    return sorted(seen.values(), key=lambda c: c.case_id)
