"""`sssseg` command line: a thin argparse layer over the API.

Every failure the user can act on ends with one line ``sssseg: error: ...`` on stderr (and an
``error`` JSON event with ``--progress json``) and a non-zero exit code; never a traceback
(``--debug`` shows one).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import OutputError, SSSSegError
from .fsutil import writing_outputs
from .progress import ProgressCallback, emit_json, json_progress, silent, tqdm_progress

LOG = logging.getLogger("sssseg")
PRESET_CHOICES = ("fast", "lite", "paper", "paper-sam2", "tiny")


class Reporter:
    """Where a command's progress, log lines and results go (terminal or JSON lines)."""

    def __init__(self, mode: str) -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "none"
        self.mode = mode
        self._close: Callable[[], None] = lambda: None
        self.progress: ProgressCallback = silent
        if mode == "json":
            self.progress = json_progress()
        elif mode == "bar":
            self.progress, self._close = tqdm_progress()

    def log(self, message: str) -> None:
        if self.mode == "json":
            emit_json("log", message=message)
        else:
            print(f"[sssseg] {message}", file=sys.stderr)

    def close(self) -> None:
        self._close()


def _default_model_help() -> str:
    """How the model is chosen when no --preset / --checkpoint is given (names what is installed)."""
    from .bundled_models import default_preset

    best = default_preset()
    return f"the bundled model, preset '{best}'" if best else "none: no bundled model is installed"


def _add_model_args(parser: argparse.ArgumentParser, default_preset: str | None = None) -> None:
    parser.add_argument("--preset", choices=PRESET_CHOICES, default=default_preset,
                        help=f"model preset (default: the checkpoint's, else {_default_model_help()})")
    parser.add_argument("--checkpoint", type=Path, help="SSS checkpoint (.safetensors)")
    parser.add_argument("--sam2-checkpoint", type=Path, help="official SAM-2/2.1 checkpoint (.pt) for the encoder")
    parser.add_argument("--untrained", action="store_true", help="allow random weights when no model is found")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    parser.add_argument("--batch-size", type=int, help="slices per encoder batch (default: sized to the device)")
    _add_threads_arg(parser)


def _add_threads_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads for torch (default: $SSSSEG_THREADS, else one per usable core less "
                             "the cores the 1-minute load average says are busy, at least 1)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sssseg", description="Intracranial hemorrhage segmentation on head CT.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    seg = sub.add_parser("segment", help="segment one CT (DICOM folder, NIfTI or NRRD)")
    seg.add_argument("input", type=Path)
    seg.add_argument("output", type=Path,
                     help="output: label map .seg.nrrd (Slicer) or .nii.gz, or .dcm (DICOM SEG; DICOM input only)")
    _add_model_args(seg)
    seg.add_argument("--series-uid", help="SeriesInstanceUID to read when a DICOM folder holds several series")
    seg.add_argument("--nifti", action="store_true", help="with a .seg.nrrd output, also write a .nii.gz beside it")
    seg.add_argument("--refine", choices=("model", "on", "off"), default="model",
                     help="SAM-2 decoder refinement of the prompts (default: as the model's checkpoint recommends)")
    seg.add_argument("--progress", choices=("auto", "bar", "json", "none"), default="auto")
    seg.add_argument("--qc", type=Path, metavar="OUT.png",
                     help="also write a QC picture: every slice with a finding (or a few evenly spaced slices "
                          "when none), brain and subdural windows, outlines, volumes in mL")
    seg.add_argument("--dicom-seg", type=Path, metavar="OUT.dcm",
                     help="also write a DICOM Segmentation object on the source images (DICOM input only)")
    seg.add_argument("--overwrite", action="store_true", help="replace existing output files")

    ph = sub.add_parser("phantoms", help="write a synthetic head-CT dataset (BHSD-like layout)")
    ph.add_argument("outdir", type=Path)
    ph.add_argument("--n", type=int, default=8, help="number of cases")
    ph.add_argument("--seed", type=int, default=0)
    ph.add_argument("--labeled-fraction", type=float, default=1.0)
    ph.add_argument("--overwrite", action="store_true")
    ph.add_argument("--artefact-strength", type=float, nargs=2, default=(0.0, 1.0), metavar=("LO", "HI"),
                    help="range of the per-case scanner-artefact strength, 0 clean .. 1 strong (default 0 1)")
    ph.add_argument("--matrix", type=int, default=512, help="in-plane matrix (default 512)")
    ph.add_argument("--geometry-variants", nargs="+", default=(), metavar="VARIANT",
                    help="real-geometry variants, one drawn per case (none fov_front fov_back fov_side fov_vertex "
                         "head_holder craniectomy burr_holes matrix_256 matrix_384 rectangular thin_slices "
                         "thick_slices small_head; default: every case plain; see docs/real_geometry.md)")
    ph.add_argument("--realism-cases", type=int, default=24,
                    help="cases measured for OUTDIR/realism.md, spread over the set (default 24)")

    ev = sub.add_parser(
        "evaluate", help="compare predicted label maps with ground truth",
        description="Score every truth label map in GT_DIR against its prediction in PRED_DIR (Dice, HD95, "
                    "volume error, detection) and write one CSV row per case and class.",
        epilog="Files are matched by case name: the file name without its label extension (.seg.nrrd, .nrrd, "
               ".nii.gz, .nii) and without one trailing _pred or _seg. So PRED_DIR/case01_pred.seg.nrrd is "
               "scored against GT_DIR/case01.nii.gz or GT_DIR/case01_seg.nii.gz. Every truth case needs a "
               "prediction; predictions without truth are counted and ignored.")
    ev.add_argument("pred_dir", type=Path, help="folder of predicted label maps")
    ev.add_argument("gt_dir", type=Path, help="folder of ground-truth label maps")
    ev.add_argument("--csv", type=Path, help="per-case CSV (default: PRED_DIR/evaluation.csv)")
    ev.add_argument("--overwrite", action="store_true", help="replace an existing CSV")

    # `train` has its own parser (SSSSegmentLib.training.entry); listed here for the help text.
    sub.add_parser("train", help="train or fine-tune a model (sssseg train --config CONFIG.yaml [--resume])",
                   add_help=False)

    demo = sub.add_parser("demo", help="segment a fresh phantom with the bundled model and show the result")
    demo.add_argument("--out", type=Path, default=Path("out/demo"))
    demo.add_argument("--seed", type=int, default=None, help="phantom seed (default: a demo seed never trained on)")
    demo.add_argument("--preset", choices=PRESET_CHOICES, default=None,
                      help=f"model preset (default: {_default_model_help()})")
    demo.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    _add_threads_arg(demo)
    from .registry.commands import add_parsers

    add_parsers(sub)  # models list|activate|rollback|import, finetune
    from .batch.command import add_batch_parser

    add_batch_parser(sub, _add_model_args)
    return parser


def _cmd_segment(args: argparse.Namespace, out: Reporter) -> int:
    import time

    start = time.perf_counter()
    from . import api
    from .inference import config_for_run
    from .inference.timing import StageClock

    clock = StageClock()
    clock.add("imports", time.perf_counter() - start)
    seg_target, label_output = _dicom_seg_target(args)
    outputs = api.check_outputs(label_output, args.overwrite, args.nifti, args.qc, args.input)
    written = [seg_target.path, *outputs] if seg_target is not None else outputs
    from .model import resolve_device

    resolve_device(args.device)  # an unavailable --device fails here (exit 5), before the CT is read
    from .threads import use_threads

    threads = use_threads(args.threads)
    out.progress("read", 0.02, args.input.name)
    with clock.stage("read"):
        volume = api.read_ct(args.input, out.log, args.series_uid)
    api.check_output_space(written, volume.shape_zyx)
    with clock.stage("model_load"):
        loaded = api.load_model(args.preset, args.checkpoint, args.sam2_checkpoint, args.device, args.untrained)
    cpu_threads = f", {threads} CPU thread(s)" if getattr(loaded.device, "type", "") == "cpu" else ""
    out.log(f"model: {loaded.source} on {loaded.device}{cpu_threads}")
    for line in loaded.notices():
        out.log(line)
    config = config_for_run(loaded.model, args.batch_size, args.refine)
    out.log(f"SAM-2 decoder refinement: {'on' if config.refine else 'off'}")
    result = api.segment_volume(volume, loaded, config, out.progress, out.log)
    with clock.stage("write"), writing_outputs(written):
        api.write_outputs(result, outputs, args.overwrite, volume, qc_title=args.input.name)
        if seg_target is not None:
            from .export import model_identity, write_dicom_seg

            identity = model_identity(loaded.weights, loaded.model.preset.name)
            write_dicom_seg(seg_target, result.labels_zyx, result.geometry, identity, args.overwrite, out.log)
    out.close()
    if out.mode == "json":
        emit_json("done", outputs=[str(p) for p in written], volumes_ml=result.volumes_ml,
                  warnings=list(volume.warnings), timings_s={**clock.seconds, **result.timings_s},
                  trained=loaded.trained, **_peak_gpu_memory(loaded.device))
    else:
        print(format_volumes(result.volumes_ml))
        print("\n".join(volume.warnings + ("wrote " + ", ".join(str(p) for p in written),)))
    return 0


def _dicom_seg_target(args: argparse.Namespace):  # noqa: ANN202  (tuple[DicomSegTarget | None, Path | None])
    """(the DICOM SEG to write, checked before any work, or None; the label-map output or None): a ``.dcm``
    OUTPUT is the SEG alone, ``--dicom-seg`` a SEG beside the label map."""
    from .export import check_dicom_seg_output, is_dicom_seg_path
    from .fsutil import check_not_input
    from .volumes.io import input_folder

    as_output = is_dicom_seg_path(args.output)
    if as_output and args.dicom_seg is not None:
        raise OutputError(f"OUTPUT {args.output.name} is already a DICOM SEG: drop --dicom-seg, or give a "
                          ".seg.nrrd / .nii.gz OUTPUT")
    seg_path = args.output if as_output else args.dicom_seg
    if seg_path is None:
        return None, args.output
    target = check_dicom_seg_output(seg_path, args.input, args.series_uid, args.overwrite)
    check_not_input(seg_path, args.input, input_folder(args.input))  # a SEG in the series folder joins it
    return target, (None if as_output else args.output)


def _peak_gpu_memory(device: object) -> dict[str, float]:
    """``{"peak_gpu_mib": ...}``: the most CUDA memory torch held at once in this run; empty off CUDA."""
    if getattr(device, "type", None) != "cuda":
        return {}
    import torch

    return {"peak_gpu_mib": torch.cuda.max_memory_allocated(device) / 2**20}


def format_volumes(volumes_ml: dict[str, float]) -> str:
    """A small table of per-class volumes in mL."""
    from .classes import CLASS_BY_KEY

    lines = [f"{'class':<30} {'volume (mL)':>12}"]
    for key, ml in volumes_ml.items():
        lines.append(f"{key + ' ' + CLASS_BY_KEY[key].name:<30} {ml:>12.2f}")
    return "\n".join(lines)


def _cmd_phantoms(args: argparse.Namespace, out: Reporter) -> int:
    from .demo import phantom_preview
    from .phantoms import PhantomConfig, write_dataset
    from .phantoms.realism import phantom_profile, write_realism_report

    profiles = []
    every = max(1, -(-args.n // max(args.realism_cases, 1)))

    def measure(index: int, case_id: str, phantom) -> None:  # noqa: ANN001 (Phantom)
        if args.realism_cases > 0 and index % every == 0:
            profiles.append(phantom_profile(phantom, case_id))

    config = PhantomConfig(matrix=args.matrix, artefact_strength=tuple(args.artefact_strength),
                           geometry_variants=tuple(args.geometry_variants))
    dataset_json = write_dataset(args.outdir, n=args.n, seed=args.seed, labeled_fraction=args.labeled_fraction,
                                 config=config, overwrite=args.overwrite, on_case=measure)
    print(f"wrote {args.n} phantom cases: {dataset_json}")
    print(f"realism report: {write_realism_report(args.outdir, profiles)}")
    if args.labeled_fraction > 0:
        print(f"preview: {phantom_preview(dataset_json)}")
    return 0


def _cmd_evaluate(args: argparse.Namespace, out: Reporter) -> int:
    from .evaluation import run_evaluation

    csv_path = args.csv or args.pred_dir / "evaluation.csv"
    print(run_evaluation(args.pred_dir, args.gt_dir, csv_path, overwrite=args.overwrite))
    return 0


def _cmd_demo(args: argparse.Namespace, out: Reporter) -> int:
    from .demo import run_demo
    from .threads import use_threads

    use_threads(args.threads)
    print(run_demo(args.out, seed=args.seed, preset=args.preset, device=args.device, log=out.log))
    return 0


def _cmd_models(args: argparse.Namespace, out: Reporter) -> int:
    from .registry.commands import cmd_models

    return cmd_models(args, out)


def _cmd_finetune(args: argparse.Namespace, out: Reporter) -> int:
    from .registry.commands import cmd_finetune

    return cmd_finetune(args, out)


def _cmd_batch(args: argparse.Namespace, out: Reporter) -> int:
    from .batch.command import cmd_batch

    return cmd_batch(args, out)


COMMANDS = {"segment": _cmd_segment, "phantoms": _cmd_phantoms, "evaluate": _cmd_evaluate, "demo": _cmd_demo,
            "models": _cmd_models, "finetune": _cmd_finetune, "batch": _cmd_batch}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sssseg`` console script; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "train":
        from .training import main_train

        return main_train(argv[1:])
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[sssseg] %(message)s")
    out = Reporter(getattr(args, "progress", "auto"))
    try:
        return COMMANDS[args.command](args, out)
    except SSSSegError as error:
        return _fail(out, str(error), error.exit_code)
    except KeyboardInterrupt:
        return _fail(out, "interrupted", 130)
    except Exception as error:  # a bug, not a user error: say so in one line unless --debug
        if args.debug:
            raise
        return _fail(out, f"internal error ({type(error).__name__}: {error}); rerun with --debug for details", 1)
    finally:
        out.close()


def _fail(out: Reporter, message: str, code: int) -> int:
    out.close()
    if out.mode == "json":
        emit_json("error", message=message, exit_code=code)
    print(f"sssseg: error: {message}", file=sys.stderr)
    return code


def run() -> None:
    """The ``sssseg`` console script and ``python -m SSSSegmentLib.cli``: ``main()``, then leave
    without the interpreter's teardown. With torch loaded, Python's own shutdown (unloading every
    module) took 0.4-0.5 s on the 2-core CPU, nearly a tenth of a whole ``segment`` run. By then
    every output is written and closed (``api.write_outputs`` renames finished files into place), so
    logging and the standard streams are flushed and the process ends with ``main()``'s code."""
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
