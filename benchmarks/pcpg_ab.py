"""Two prompt-generator (PCPG) settings side by side on the same model output, on the real-geometry variants.

For each variant named (``real_geometry_variants.VARIANTS``) of a real scan: the clean variant and the
inserted cases of ``real_scan_check.py --cases`` (the same lesions), the model's candidates computed
once, then PCPG with the model's recommended settings ("after") and with those settings changed by
``--before`` (a JSON mapping of prompt-config sections, e.g. ``{"continuity": {"join_mm": null}}``).
Refine off (the bundled model's recommendation): the label map is PCPG's kept components, so the
figures are those ``real_scan_check.py`` gives for the two settings.

    .venv/bin/python benchmarks/pcpg_ab.py ../shared/data/ct_head_ge_tilted --cases /tmp/rg_cases \
        --variants "1.5 mm, 256" --before '{"continuity": {"join_mm": null}}'
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from SSSSegmentLib import api  # noqa: E402
from SSSSegmentLib.classes import HEMORRHAGE_CLASSES  # noqa: E402
from SSSSegmentLib.evaluation.metrics import class_volumes_ml, dice  # noqa: E402
from SSSSegmentLib.inference.coarse import coarse_candidates  # noqa: E402
from SSSSegmentLib.inference.config import inference_config_for  # noqa: E402
from SSSSegmentLib.prompts import PromptConfig  # noqa: E402
from SSSSegmentLib.prompts.generator import prompts_from_candidates  # noqa: E402
from SSSSegmentLib.volumes.geometry import CTVolume  # noqa: E402

KEYS = tuple(c.key for c in HEMORRHAGE_CLASSES)


def merged(config: PromptConfig, changes: dict) -> PromptConfig:
    """``config`` with the fields named in ``changes`` (section -> {field: value}) replaced; the values are
    read (and checked) as a prompt-config mapping is."""
    read = PromptConfig.from_dict(changes)
    sections = {name: dataclasses.replace(getattr(config, name), **{f: getattr(getattr(read, name), f) for f in values})
                for name, values in changes.items()}
    return dataclasses.replace(config, **sections)


def labels_of(volume: CTVolume, model: api.LoadedModel, configs: tuple[PromptConfig, ...]) -> list[np.ndarray]:
    """The kept label map uint8 (K, J, I) of each PCPG config, from one pass of the model."""
    threshold = configs[0].prob_threshold
    candidates, _, _ = coarse_candidates(model.model, volume, model.device, threshold)
    return [np.asarray(prompts_from_candidates(candidates.copy(), volume.hu_zyx, volume.geometry, c).kept_zyx)
            for c in configs]


def main(argv: list[str] | None = None) -> int:
    from real_geometry_variants import transform
    from real_scan_check import inserted_cases

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scan", type=Path)
    p.add_argument("--cases", type=Path, required=True, help="real_scan_check.py's folder of inserted cases")
    p.add_argument("--inserted", type=int, default=2)
    p.add_argument("--variants", nargs="+", default=["1.5 mm, 256"])
    p.add_argument("--before", required=True, help="JSON: prompt-config sections changed for the 'before' column")
    args = p.parse_args(argv)
    model = api.load_model(device="cpu")
    after = inference_config_for(model.model).prompts
    before = merged(after, json.loads(args.before))
    volume = api.read_ct(args.scan)
    cases = inserted_cases(volume, args.inserted, 0, args.cases)
    for name in args.variants:
        t0 = time.perf_counter()
        hu, _, geometry = transform(name, volume.hu_zyx, None, volume.geometry)
        clean = volume if name == "as is" else CTVolume(hu, geometry, source=name)
        ml = [sum(class_volumes_ml(lab, geometry.spacing_mm).values())
              for lab in labels_of(clean, model, (before, after))]
        scores = {k: ([], []) for k in KEYS}
        for key, hu_case, labels_case in cases:
            label = KEYS.index(key) + 1
            hu_v, labels_v, geometry_v = transform(name, hu_case, labels_case, volume.geometry)
            if not (labels_v == label).any():
                continue
            found = labels_of(CTVolume(hu_v, geometry_v, source=name), model, (before, after))
            for column, lab in zip(scores[key], found, strict=True):
                column.append(dice(lab == label, labels_v == label))
        print(f"{name} ({time.perf_counter() - t0:.0f} s): mL on the clean variant before {ml[0]:.2f}, "
              f"after {ml[1]:.2f}")
        for side in (0, 1):
            cells = {k: round(statistics.fmean(v[side]), 2) for k, v in scores.items() if v[side]}
            per_case = [[round(x, 2) for x in v[side]] for v in scores.values()]
            print(f"  {'before' if side == 0 else 'after'}: Dice per class {cells}, "
                  f"mean {statistics.fmean(cells.values()):.2f}; per case {per_case}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
