"""Evaluate a directory of predictions against a directory of ground truth; CSV and text table.

Files are paired by case name: the file name without its label extension (``.nii.gz``, ``.nii``,
``.seg.nrrd``, ``.nrrd``) and without one trailing ``_pred`` or ``_seg``. So ``case01_pred.seg.nrrd``
pairs with ``case01.nii.gz`` or ``case01_seg.nii.gz``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError
from ..fsutil import atomic_path, check_writable_output
from ..volumes.io import full_suffix
from ..volumes.segfile import LABEL_SUFFIXES
from .label_files import LabelMap, on_grid_of
from .results import CaseResult, EvaluationSummary, evaluate_case, summarize

CASE_SUFFIXES = ("_pred", "_seg")
CSV_COLUMNS = (
    "case", "label", "class", "dice", "hd95_mm", "pred_ml", "true_ml", "abs_volume_error_ml",
    "pred_present", "true_present",
)


def case_name(path: Path) -> str:
    """Case name of a label file: the name without label extension and one ``_pred``/``_seg`` suffix."""
    name = Path(path).name
    suffix = full_suffix(Path(path), LABEL_SUFFIXES) or ""
    stem = name[: len(name) - len(suffix)]
    for tail in CASE_SUFFIXES:
        if stem.lower().endswith(tail) and len(stem) > len(tail):
            return stem[: -len(tail)]
    return stem


def label_files_by_case(directory: Path, what: str = "label") -> dict[str, Path]:
    """Map case name -> label file for the label files directly in ``directory`` (``what``: the folder's
    role in messages, e.g. "truth")."""
    directory = Path(directory)
    if not directory.exists():
        raise InputError(f"the {what} folder does not exist: {directory}")
    if not directory.is_dir():
        raise InputError(f"the {what} folder is a file, not a folder: {directory}")
    by_case: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        if not path.is_file() or full_suffix(path, LABEL_SUFFIXES) is None or path.name.startswith("."):
            continue
        name = case_name(path)
        if name in by_case:
            raise InputError(f"two files for case {name!r} in {directory}: {by_case[name].name}, {path.name}")
        by_case[name] = path
    return by_case


def pair_cases(pred_dir: Path, gt_dir: Path) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """(case, prediction, truth) triples for every truth case, plus predictions without truth.

    InputError when the truth directory holds no label files or a truth case has no prediction.
    """
    truths, preds = label_files_by_case(gt_dir, "truth"), label_files_by_case(pred_dir, "prediction")
    if not truths:
        raise InputError(f"no label files ({', '.join(LABEL_SUFFIXES)}) in {gt_dir}")
    missing = [name for name in truths if name not in preds]
    if missing:
        shown = ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else "")
        raise InputError(
            f"{len(missing)} of {len(truths)} truth cases have no prediction in {pred_dir}: {shown}"
        )
    pairs = [(name, preds[name], truths[name]) for name in truths]
    return pairs, sorted(set(preds) - set(truths))


def evaluate_dirs(
    pred_dir: Path, gt_dir: Path, csv_path: Path, min_volume_ml: float = 0.0, overwrite: bool = False
) -> EvaluationSummary:
    """Evaluate every truth case in ``gt_dir`` against its prediction in ``pred_dir``.

    Writes ``csv_path`` (one row per case and class, atomically; an existing file is kept unless
    ``overwrite``) and returns the summary. ``min_volume_ml`` is the smallest volume that counts
    as a detection. InputError when files are missing, unreadable or on different grids.
    """
    csv_path = Path(csv_path)
    pairs, unmatched = pair_cases(Path(pred_dir), Path(gt_dir))  # the input folders first: a missing one is named
    check_writable_output(csv_path, overwrite=overwrite)
    cases = [_evaluate_pair(name, pred, truth, min_volume_ml) for name, pred, truth in pairs]
    write_cases_csv(cases, csv_path)
    return summarize(cases, min_volume_ml=min_volume_ml, unmatched_predictions=unmatched)


def _evaluate_pair(name: str, pred_path: Path, truth_path: Path, min_volume_ml: float) -> CaseResult:
    truth = LabelMap.from_file(truth_path)
    pred_zyx = on_grid_of(LabelMap.from_file(pred_path), truth)
    return evaluate_case(pred_zyx, truth.labels_zyx, truth.geometry.spacing_mm, name, min_volume_ml)


def write_cases_csv(cases: Iterable[CaseResult], csv_path: Path) -> Path:
    """Write one row per case and class (columns CSV_COLUMNS; NaN as "nan", inf as "inf")."""
    csv_path = Path(csv_path)
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for case in cases:
            for r in case.classes:
                writer.writerow([
                    case.case_id, r.label, r.key, _num(r.dice), _num(r.hd95_mm), _num(r.pred_ml),
                    _num(r.true_ml), _num(r.abs_volume_error_ml), int(r.pred_present), int(r.true_present),
                ])
    return csv_path


def format_summary_table(summary: EvaluationSummary) -> str:
    """A plain-text table: per class Dice mean±sd, HD95, volume error, detection; an overall row.

    "n/a" marks undefined values; ``n`` counts the cases where Dice is defined (class in the truth
    or the prediction) and ``inf`` the cases whose HD95 is infinite (class missed or hallucinated),
    which the HD95 mean leaves out; "Dice|true" is the mean over the cases whose truth has the class.
    """
    header = (
        f"{'class':<6} {'Dice mean±sd':>15} {'n':>4} {'Dice|true':>9} {'HD95 mm':>9} {'inf':>4} {'|ΔV| mL':>9} "
        f"{'sens':>6} {'spec':>6}"
    )
    lines = [f"Evaluation of {len(summary.cases)} case(s)", header, "-" * len(header)]
    for s in summary.per_class:
        dice = "n/a" if math.isnan(s.dice_mean) else f"{s.dice_mean:.3f}±{_fixed(s.dice_sd)}"
        lines.append(
            f"{s.key:<6} {dice:>15} {s.n_dice:>4} {_fixed(s.dice_mean_true):>9} {_fixed(s.hd95_mean_mm, 2):>9} "
            f"{s.n_hd95_inf:>4} "
            f"{_fixed(s.abs_volume_error_mean_ml, 2):>9} {_fixed(s.sensitivity, 2):>6} "
            f"{_fixed(s.specificity, 2):>6}"
        )
    lines.append("-" * len(header))
    lines.append(
        f"{'all':<6} {_fixed(summary.mean_dice):>15} {'':>4} {_fixed(summary.mean_dice_true):>9} "
        f"{_fixed(summary.mean_hd95_mm, 2):>9} {'':>4} "
        f"{_fixed(summary.mean_abs_volume_error_ml, 2):>9} {_fixed(summary.bleed_sensitivity, 2):>6} "
        f"{_fixed(summary.bleed_specificity, 2):>6}"
    )
    lines.append(
        "all = mean over classes; sens/spec = case-level any-hemorrhage detection"
        + (f" (>= {summary.min_volume_ml:g} mL)" if summary.min_volume_ml > 0 else "")
    )
    if summary.unmatched_predictions:
        lines.append(f"{len(summary.unmatched_predictions)} prediction(s) without truth ignored")
    return "\n".join(lines)


def _num(value: float) -> str:
    return "nan" if math.isnan(value) else ("inf" if math.isinf(value) else f"{value:.6g}")


def _fixed(value: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(value) else ("inf" if math.isinf(value) else f"{value:.{digits}f}")
