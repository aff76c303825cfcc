"""``sssseg batch INPUTS... OUT_DIR``: the argparse part and the command (cli.py only registers it)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..progress import emit_json

FAILED_CASES_EXIT = 5  # the batch ran to its end, but at least one case is `failed` in results.csv

DESCRIPTION = (
    "Segment every CT found under INPUTS (folders searched recursively: NIfTI/NRRD/MetaImage files and DICOM "
    "series, one case per series; or CSV lists with an 'input' column) into OUT_DIR: per case "
    "<case_id>.seg.nrrd and <case_id>.qc.png, and one row in OUT_DIR/results.csv. Run the same command again "
    "to resume: cases already done with the same model are skipped.")
EPILOG = (
    "Exit codes: 0 every case ok (or skipped), 5 the batch ended but some cases failed (their rows say why), "
    "1 Ray missing for --workers > 1 or no worker started, 2 bad INPUTS, 3 no usable model, 4 OUT_DIR "
    "unusable or done with another model, 130 interrupted.")


def add_batch_parser(sub: argparse._SubParsersAction, add_model_args) -> None:  # noqa: ANN001
    """Register ``batch`` on the CLI's sub-parsers; ``add_model_args`` adds the model options of ``segment``."""
    batch = sub.add_parser("batch", help="segment many studies into one folder, resumable, on one machine or "
                           "a Ray cluster", description=DESCRIPTION, epilog=EPILOG)
    batch.add_argument("inputs", nargs="+", type=Path, metavar="INPUTS", help="folders, volume files or CSV lists")
    batch.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="output folder (created if its parent exists)")
    add_model_args(batch)
    batch.add_argument("--refine", choices=("model", "on", "off"), default="model",
                       help="SAM-2 decoder refinement, as for segment")
    batch.add_argument("--format", choices=("seg.nrrd", "nii.gz"), default="seg.nrrd", help="label map format")
    batch.add_argument("--no-qc", action="store_true", help="do not write the QC pictures")
    batch.add_argument("--dicom-seg", action="store_true",
                       help="also a DICOM Segmentation <case_id>.dcm for each case read from DICOM (for PACS)")
    batch.add_argument("--redo-failed", action="store_true", help="retry the cases that failed before")
    batch.add_argument("--overwrite", action="store_true",
                       help="redo cases done with another model, replace existing output files")
    batch.add_argument("--workers", type=int, default=None,
                       help="workers (default 1 on this machine, in this process; with --ray-address: as many as "
                            "the cluster fits); more than 1 needs Ray (pip install 'sssseg[cluster]')")
    batch.add_argument("--ray-address", metavar="ADDR", help="join this Ray cluster (e.g. HEAD_IP:6379, or auto)")
    batch.add_argument("--cpus-per-worker", type=float, default=None,
                       help="Ray CPUs (and torch threads) per worker (default: this machine's cores / workers; "
                            "1 on a cluster)")
    batch.add_argument("--gpus-per-worker", type=float, default=0.0, help="Ray GPUs per worker (default 0)")
    batch.add_argument("--start-timeout", type=float, default=300.0, metavar="S",
                       help="give up when no worker has loaded its model after S seconds (default 300)")
    batch.add_argument("--progress", choices=("auto", "bar", "json", "none"), default="auto")


def cmd_batch(args: argparse.Namespace, out) -> int:  # noqa: ANN001  (cli.Reporter)
    """Run the batch; print (or emit as JSON) one event per case and the summary."""
    from ..errors import InputError
    from .engine import BatchOptions, format_summary, run_batch
    from .runners import RayOptions, default_cpus_per_worker, require_ray

    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers must be at least 1, got {args.workers}")
    if args.ray_address or (args.workers or 1) > 1:
        require_ray()  # before any work: say what to install
    workers = args.workers if args.workers is not None or args.ray_address else 1
    cpus = args.cpus_per_worker or default_cpus_per_worker(workers, args.ray_address)
    options = BatchOptions(
        inputs=tuple(args.inputs), out_dir=args.out_dir, spec=_model_spec(args, cpus),
        ray=RayOptions(workers, args.ray_address, cpus, args.gpus_per_worker, args.start_timeout),
        redo_failed=args.redo_failed, overwrite=args.overwrite)
    summary = run_batch(options, out.progress, out.log, on_case=lambda row: _report_case(row, out))
    out.close()
    if out.mode == "json":
        emit_json("done", outputs=[str(summary.results_csv)], volumes_ml=summary.volumes_ml, cases=summary.cases,
                  ok=summary.ok, failed=summary.failed, skipped=summary.skipped, done_now=summary.done_now,
                  wall_s=round(summary.wall_s, 2), model=summary.model.name, model_sha256=summary.model.sha256)
    else:
        print(format_summary(summary))
    return FAILED_CASES_EXIT if summary.failed else 0


def _model_spec(args: argparse.Namespace, cpus_per_worker: float):  # noqa: ANN202  (ModelSpec)
    from .worker import ModelSpec

    in_process = not args.ray_address and (args.workers or 1) == 1
    return ModelSpec(preset=args.preset, checkpoint=args.checkpoint, sam2_checkpoint=args.sam2_checkpoint,
                     device=args.device, allow_untrained=args.untrained, batch_size=args.batch_size,
                     refine=args.refine, threads=None if in_process else max(1, int(cpus_per_worker)),
                     label_suffix="." + args.format, qc=not args.no_qc, dicom_seg=args.dicom_seg)


def _report_case(row, out) -> None:  # noqa: ANN001  (ResultRow, cli.Reporter)
    if out.mode == "json":
        emit_json("case", case_id=row.case_id, status=row.status, error=row.error, volumes_ml=dict(row.volumes_ml),
                  seconds=round(row.seconds, 2), input=row.input)
    elif row.status == "failed":
        out.log(f"{row.case_id}: failed: {row.error}")
