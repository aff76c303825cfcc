"""Writing a BHSD-like dataset of lesions inserted into real bleed-free head CT (``write_inserted_dataset``)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..datasets import INDEX_NAME
from ..errors import InputError
from ..fsutil import atomic_path
from ..progress import ProgressCallback, silent
from ..volumes.geometry import CTVolume
from .dataset import (
    IMAGES_DIR,
    LABELS_DIR,
    bhsd_index,
    case_seeds,
    hu_int16,
    prepare_dataset_dir,
    write_case_nifti,
)
from .insertion_background import prepare_background
from .insertion_config import Background, InsertionConfig
from .insertion_core import insert_into


def background_name(path: Path) -> str:
    """A case-name-safe name of a background (file name without extension, or the DICOM folder's name)."""
    path = Path(path)
    name = path.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "background"


def _unique_names(paths: Sequence[Path]) -> list[str]:
    names: list[str] = []
    for n, path in enumerate(paths):
        name = background_name(path)
        names.append(f"{name}_{n}" if name in names else name)
    return names


def _read_background(path: Path, config: InsertionConfig) -> tuple[CTVolume, Background]:
    from ..volumes import read_volume, validate_ct

    volume = read_volume(Path(path))
    validate_ct(volume)
    if not volume.geometry.is_orthonormal():
        raise InputError(f"background {path} has a sheared (gantry-tilt) grid that NIfTI cannot store")
    return volume, prepare_background(volume.hu_zyx, volume.geometry, config, str(path))


def write_inserted_dataset(
    backgrounds: Sequence[Path | str],
    out_dir: Path | str,
    n_cases: int,
    seed: int,
    config: InsertionConfig = InsertionConfig(),  # noqa: B008 (frozen)
    keys: Sequence[str] | None = None,
    held_out: Sequence[Path | str] = (),
    overwrite: bool = False,
    progress: ProgressCallback = silent,
) -> Path:
    """Write ``n_cases`` labelled cases (background ``n % len(backgrounds)`` + lesions) in the BHSD-like
    layout of ``phantoms.write_dataset``; return the dataset.json path.

    Case ``n`` is named ``<background>_ins<n:04d>`` and uses seed ``case_seeds(seed, n_cases)[n]``;
    dataset.json's ``generator`` lists each case's background path, seed and lesions. Cases of the
    backgrounds in ``held_out`` (some of ``backgrounds``) are listed under ``test`` (never trained on,
    for Dice on real anatomy), the others under ``training``. Backgrounds are read with the engine's
    reader (DICOM folders with gantry tilt are resampled). ``keys``: classes per case (None: random).
    Raises InputError / OutputError like ``write_dataset``.
    """
    paths = [Path(p) for p in backgrounds]
    held = {Path(p).resolve() for p in held_out}
    if n_cases < 1 or not paths or not held <= {p.resolve() for p in paths}:
        raise InputError(f"need >= 1 case, >= 1 background and held_out among them; got {n_cases} cases, "
                         f"{len(paths)} backgrounds, held_out {[str(p) for p in held_out]}")
    out_dir = Path(out_dir)
    prepare_dataset_dir(out_dir, overwrite)
    seeds, names = case_seeds(seed, n_cases), _unique_names(paths)
    entries: dict[int, tuple[bool, dict]] = {}
    meta: dict[str, dict] = {}
    for b, path in enumerate(paths):
        cases = range(b, n_cases, len(paths))
        if not cases:
            continue
        volume, bg = _read_background(path, config)
        for n in cases:
            case_id = f"{names[b]}_ins{n:04d}"
            result = insert_into(bg, np.random.default_rng(seeds[n]), keys, config)
            write_case_nifti(hu_int16(result.hu_zyx), volume.geometry, out_dir / IMAGES_DIR / f"{case_id}.nii.gz")
            write_case_nifti(result.labels_zyx, volume.geometry, out_dir / LABELS_DIR / f"{case_id}.nii.gz")
            entry = {"image": f"./{IMAGES_DIR}/{case_id}.nii.gz", "label": f"./{LABELS_DIR}/{case_id}.nii.gz"}
            entries[n] = (path.resolve() in held, entry)
            meta[case_id] = {"background": str(path), "held_out": path.resolve() in held, "seed": seeds[n],
                             "lesions": [asdict(r) for r in result.lesions]}
            progress("insertion", len(entries) / n_cases, f"case {len(entries)}/{n_cases}")
    ordered = [entries[n] for n in sorted(entries)]
    index = _index_json([e for h, e in ordered if not h], [e for h, e in ordered if h], seed, meta, config)
    index_path = out_dir / INDEX_NAME
    with atomic_path(index_path) as tmp:
        tmp.write_text(json.dumps(index, indent=2))
    return index_path


def _index_json(training: list[dict], test: list[dict], seed: int, meta: dict, config: InsertionConfig) -> dict:
    return {
        **bhsd_index("SSSSegment synthetic hemorrhages in real head CT",
                     "Bleed-free head CT with inserted synthetic hemorrhages (BHSD label convention)", training, []),
        "numTest": len(test),
        "test": test,
        "generator": {
            "package": "SSSSegmentLib.phantoms.insertion",
            "seed": int(seed),
            "cases": meta,
            "config": asdict(config),
        },
    }
