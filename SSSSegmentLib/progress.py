"""Progress reporting: one callback type, three sinks (silent, tqdm, JSON lines).

JSON-lines protocol (``--progress json``), one object per line on stdout, for the Slicer module:

    {"event": "progress", "stage": "encode", "fraction": 0.42, "message": "slice 12/28"}
    {"event": "log", "message": "gantry tilt 18.5 deg: resampled onto an orthogonal grid"}
    {"event": "done", "outputs": ["out.seg.nrrd"], "volumes_ml": {"EDH": 0.0, ...}}
    {"event": "error", "message": "input is not a CT volume: ...", "exit_code": 2}

``fraction`` is the overall fraction done in [0, 1]; ``stage`` names the current step.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, Protocol, TextIO


class ProgressCallback(Protocol):
    def __call__(self, stage: str, fraction: float, message: str = "") -> None: ...


def silent(stage: str, fraction: float, message: str = "") -> None:
    """A ProgressCallback that reports nothing."""


def emit_json(event: str, stream: TextIO | None = None, **fields: Any) -> None:
    """Write one JSON-lines event and flush (so a parent process sees it at once)."""
    out = stream or sys.stdout
    out.write(json.dumps({"event": event, **fields}) + "\n")
    out.flush()


def json_progress(stream: TextIO | None = None) -> ProgressCallback:
    """A ProgressCallback writing ``progress`` events as JSON lines."""

    def report(stage: str, fraction: float, message: str = "") -> None:
        emit_json("progress", stream, stage=stage, fraction=round(float(fraction), 4), message=message)

    return report


def tqdm_progress() -> tuple[ProgressCallback, Callable[[], None]]:
    """A ProgressCallback drawing one tqdm bar on stderr, and a function that closes it."""
    from tqdm import tqdm

    bar = tqdm(total=1000, unit="‰", file=sys.stderr, bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}")

    def report(stage: str, fraction: float, message: str = "") -> None:
        bar.set_description_str(f"{stage} {message}".strip())
        bar.n = int(1000 * min(max(fraction, 0.0), 1.0))
        bar.refresh()

    return report, bar.close
