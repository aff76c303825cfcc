"""Evaluation against ground truth: Dice, HD95 (mm), volumes (mL), detection; CSV and text table."""

from __future__ import annotations

from pathlib import Path

from .label_files import LabelMap, on_grid_of
from .metrics import dice, hd95_mm, is_present, sensitivity_specificity, volume_ml
from .report import case_name, evaluate_dirs, format_summary_table, pair_cases, write_cases_csv
from .results import CaseResult, ClassResult, ClassSummary, EvaluationSummary, evaluate_case, summarize

__all__ = [
    "CaseResult", "ClassResult", "ClassSummary", "EvaluationSummary", "LabelMap", "case_name", "dice",
    "evaluate_case", "evaluate_dirs", "format_summary_table", "hd95_mm", "is_present", "on_grid_of",
    "pair_cases", "run_evaluation", "sensitivity_specificity", "summarize", "volume_ml",
    "write_cases_csv",
]


def run_evaluation(
    pred_dir: Path, gt_dir: Path, csv_path: Path, min_volume_ml: float = 0.0, overwrite: bool = False
) -> str:
    """Evaluate ``pred_dir`` against ``gt_dir``, write ``csv_path``, return the summary table text."""
    summary = evaluate_dirs(Path(pred_dir), Path(gt_dir), Path(csv_path), min_volume_ml, overwrite)
    return format_summary_table(summary) + f"\nper-case CSV: {csv_path}"
