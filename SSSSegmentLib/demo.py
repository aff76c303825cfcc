"""The main job for a new user: phantom previews and the one-command demo (`sssseg demo`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import OutputError
from .qc.render import BRAIN_WINDOW

# Demo phantoms use seeds >= 90,000,000, never used for training (training cases take their seeds
# from SeedSequence spawns of small master seeds; see configs/), so the demo segments an unseen case.
# The default shows three bleed types at once (IVH, SAH, SDH); `--seed` picks any other.
DEMO_SEED = 90_000_004
_DEMO_MARKER = ".sssseg-demo"


def _best_slice(labels_zyx: np.ndarray) -> int:
    """The slice with the most hemorrhage voxels (the middle slice when there are none)."""
    counts = (labels_zyx > 0).sum(axis=(1, 2))
    return int(counts.argmax()) if counts.any() else labels_zyx.shape[0] // 2


def phantom_preview(dataset_json: Path, max_cases: int = 4, max_scanned: int = 12) -> Path:
    """A PNG next to ``dataset.json``: the most bleeding slice of up to ``max_cases`` labelled cases.

    Among the first ``max_scanned`` labelled cases, those with the most hemorrhage are shown.
    """
    from .phantoms import read_dataset_index
    from .qc.montage import save_side_by_side
    from .qc.render import render_slice
    from .volumes import read_labelmap, read_volume

    index = read_dataset_index(Path(dataset_json).parent)
    if not index.labeled:
        raise OutputError(f"no labelled case in {index.root} to preview")
    scanned = [(case, read_labelmap(case.label)[0]) for case in index.labeled[:max_scanned]]
    scanned.sort(key=lambda item: -int(np.count_nonzero(item[1])))
    panels = []
    for case, labels in scanned[:max_cases]:
        volume = read_volume(case.image)
        k = _best_slice(labels)
        tile = render_slice(volume.hu_zyx[k], BRAIN_WINDOW, labels[k], volume.geometry.spacing_mm)
        panels.append((f"{case.case_id} slice {k}", tile))
    return save_side_by_side(panels, index.root / "preview.png")


def _prepare_out_dir(out_dir: Path) -> None:
    """Create the demo folder; refuse a non-empty folder the demo did not make (user data)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()) and not (out_dir / _DEMO_MARKER).exists():
        raise OutputError(f"{out_dir} is not empty and was not made by `sssseg demo`: choose another --out")
    (out_dir / _DEMO_MARKER).write_text("files here are rewritten by each `sssseg demo` run\n")


def run_demo(
    out_dir: Path,
    seed: int | None = None,
    preset: str | None = None,
    device: str = "auto",
    log: Callable[[str], None] = print,
) -> str:
    """Generate an unseen phantom, segment it with the bundled model, write files, return a report.

    ``preset`` None: the best bundled model installed (``api.load_model``'s default); random
    weights of ``tiny`` when none is installed (the report says so).

    Writes into ``out_dir``: ``phantom_ct.nrrd`` (open it in Slicer), ``prediction.seg.nrrd``,
    ``truth.seg.nrrd``, ``prediction.png`` and ``truth.png``: QC pictures (``qc.case_picture``) of
    the same slices, every slice with a finding in either, so the two can be compared side by side.
    """
    import time

    from . import api
    from .evaluation import evaluate_case
    from .phantoms import generate_phantom
    from .qc.case_picture import qc_slices, save_case_qc
    from .volumes import write_labelmap, write_volume

    seed = DEMO_SEED if seed is None else seed
    out_dir = Path(out_dir)
    _prepare_out_dir(out_dir)
    phantom = generate_phantom(seed)
    volume = phantom.to_ct_volume()
    loaded = api.load_model(preset, device=device, allow_untrained=True)
    log(f"model: {loaded.source} on {loaded.device}")
    for line in loaded.notices():
        log(line)
    start = time.perf_counter()
    result = api.segment_volume(volume, loaded, log=log)
    seconds = time.perf_counter() - start
    spacing = volume.geometry.spacing_mm
    write_volume(out_dir / "phantom_ct.nrrd", volume, overwrite=True)
    write_labelmap(out_dir / "prediction.seg.nrrd", result.labels_zyx, volume.geometry, overwrite=True)
    write_labelmap(out_dir / "truth.seg.nrrd", phantom.labels_zyx, volume.geometry, overwrite=True)
    slices = qc_slices(volume, result.labels_zyx, phantom.labels_zyx)
    for name, labels in (("prediction", result.labels_zyx), ("ground truth", phantom.labels_zyx)):
        save_case_qc(volume, labels, out_dir / f"{name.split()[-1]}.png", f"{name}, phantom seed {seed}", slices)
    case = evaluate_case(result.labels_zyx, phantom.labels_zyx, spacing, case_id=f"phantom-{seed}")
    report = _demo_report(case, result.volumes_ml, loaded, seed, volume.shape_zyx, seconds, out_dir)
    return report + (f"\nprediction.png and truth.png show the same {len(slices)} slice(s): "
                     f"{', '.join(str(k) for k in slices)}")


def _demo_report(case, volumes_ml, loaded, seed, shape, seconds, out_dir) -> str:  # noqa: ANN001
    from .classes import HEMORRHAGE_CLASSES

    lines = [f"phantom seed {seed}, {shape[0]} slices of {shape[1]}x{shape[2]}, segmented in {seconds:.1f} s"]
    if not loaded.trained:
        lines.append("NOTE: no trained model is bundled yet: these weights are UNTRAINED (random), "
                     "so the prediction is not meaningful; the demo shows the pipeline only.")
    lines.append(f"{'class':<6} {'Dice':>6} {'pred mL':>9} {'true mL':>9}")
    by_label = {r.label: r for r in case.classes}
    for hclass in HEMORRHAGE_CLASSES:
        r = by_label[hclass.label]
        dice = "n/a" if np.isnan(r.dice) else f"{r.dice:.3f}"
        lines.append(f"{hclass.key:<6} {dice:>6} {volumes_ml[hclass.key]:>9.2f} {r.true_ml:>9.2f}")
    in_truth = case.dice_in_truth()
    if in_truth:
        lines.append(f"mean Dice over the {len(in_truth)} class(es) in the truth: {np.mean(in_truth):.3f}")
    false_classes = [r.key for r in case.classes if r.true_ml == 0 and r.pred_ml > 0]
    if false_classes:
        lines.append(f"classes predicted but absent from the truth (false positives): {', '.join(false_classes)}")
    lines.append(f"files in {out_dir}: phantom_ct.nrrd, prediction.seg.nrrd, truth.seg.nrrd, prediction.png, truth.png")
    return "\n".join(lines)
