"""Write an SSS checkpoint's recommended inference settings (``info["inference"]``) into a copy.

    .venv/bin/python scripts/set_model_inference.py IN.safetensors OUT.safetensors refine=false

Each ``key=value`` is an ``InferenceConfig`` field (values parsed as YAML scalars); the settings are
checked by building the InferenceConfig before anything is written. OUT must not exist already.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from SSSSegmentLib.errors import SSSSegError
from SSSSegmentLib.fsutil import check_writable_output
from SSSSegmentLib.inference import InferenceConfig
from SSSSegmentLib.model import load_sss_checkpoint, save_sss_checkpoint


def main(argv: list[str]) -> int:
    if len(argv) < 3 or not all("=" in a for a in argv[2:]):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    src, dst = Path(argv[0]), Path(argv[1])
    settings = {key: yaml.safe_load(value) for key, value in (a.split("=", 1) for a in argv[2:])}
    try:
        InferenceConfig.from_dict(settings)
        check_writable_output(dst, overwrite=False)
        model = load_sss_checkpoint(src)
        info = dict(model.checkpoint_info.get("info") or {})
        info["inference"] = {**info.get("inference", {}), **settings}
        sha = save_sss_checkpoint(dst, model, info)
    except SSSSegError as exc:
        print(f"set_model_inference: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {dst} (sha256 {sha}) with inference settings {info['inference']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
