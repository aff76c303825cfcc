"""Command-line entry of training: ``main_train(argv)`` (wired into ``sssseg train``)."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import SSSSegError
from ..progress import emit_json, json_progress, silent


def build_parser(prog: str = "sssseg train") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Train an SSS model (see docs/training.md).")
    parser.add_argument("--config", required=True, help="training config (yaml)")
    parser.add_argument("--resume", action="store_true", help="continue the run in output_dir after a stop")
    parser.add_argument("--steps", type=int, help="override the config's number of steps")
    parser.add_argument("--output-dir", help="override the config's output_dir")
    parser.add_argument("--dataset-dir", help="override the config's dataset_dir")
    parser.add_argument("--progress", choices=("none", "text", "json"), default="text",
                        help="progress on stdout: none, text lines, or JSON lines (rank 0 only)")
    return parser


def _text_progress(stage: str, fraction: float, message: str = "") -> None:
    print(f"[{stage} {100 * fraction:5.1f}%] {message}", flush=True)


def main_train(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and train; returns the exit code (errors print one line to stderr)."""
    from . import load_train_config, run_training

    args = build_parser().parse_args(argv)
    main_rank = os.environ.get("RANK", "0") == "0"
    progress = {"none": silent, "text": _text_progress, "json": json_progress()}[args.progress]
    try:
        config = load_train_config(args.config)
        changes = {k: v for k, v in (("steps", args.steps), ("output_dir", args.output_dir),
                                                  ("dataset_dir", args.dataset_dir)) if v is not None}
        config = config.replace(**changes) if changes else config
        result = run_training(config, resume=args.resume, progress=progress if main_rank else silent)
    except SSSSegError as exc:
        if args.progress == "json":
            emit_json("error", message=str(exc), exit_code=exc.exit_code)
        print(f"sssseg train: error: {exc}", file=sys.stderr)
        return exc.exit_code
    if main_rank:
        outputs = [str(result.final_checkpoint), str(result.log_path), str(result.curves_png)]
        if args.progress == "json":
            emit_json("done", outputs=outputs, best_val_dice=result.best_val_dice)
        else:
            print(f"done: {result.steps_done} steps; model {result.final_checkpoint}; best {result.best_checkpoint}")
    return 0
