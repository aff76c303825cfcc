"""torch's thread count: `--threads`, else `$SSSSEG_THREADS`, else the default by use (interactive: the
usable cores less one; commands: the cores the load average does not show busy, at least 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from SSSSegmentLib import api, threads
from SSSSegmentLib.cli import main
from SSSSegmentLib.errors import InputError


@pytest.fixture(autouse=True)
def _no_environment_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without $SSSSEG_THREADS (conftest puts torch's thread count back after it)."""
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)


def _machine(monkeypatch: pytest.MonkeyPatch, cores: int, load: float) -> None:
    monkeypatch.setattr(threads, "usable_cores", lambda: cores)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (load, load, load))


@pytest.mark.parametrize(("cores", "load", "command", "interactive"), [
    (2, 0.1, 2, 1),   # idle 2-core machine: every core; leave one to Slicer's UI when interactive
    (2, 1.2, 1, 1),   # another job on one core
    (2, 9.0, 1, 1),   # a crowded machine: never below 1
    (16, 3.4, 13, 15),
    (1, 0.0, 1, 1),
])
def test_defaults(monkeypatch, cores: int, load: float, command: int, interactive: int) -> None:  # noqa: ANN001
    _machine(monkeypatch, cores, load)
    assert threads.default_threads() == command
    assert threads.default_threads(interactive=True) == interactive


def test_flag_then_environment_then_default(monkeypatch) -> None:  # noqa: ANN001
    _machine(monkeypatch, 4, 0.0)
    assert threads.resolve_threads() == 4
    monkeypatch.setenv(threads.THREADS_ENV, "3")
    assert threads.resolve_threads() == 3 and threads.resolve_threads(interactive=True) == 3
    assert threads.resolve_threads(2) == 2
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(threads.THREADS_ENV, bad)
        with pytest.raises(InputError, match="SSSSEG_THREADS"):
            threads.resolve_threads()
    with pytest.raises(InputError, match="--threads"):
        threads.resolve_threads(0)


def _threads_when_reading(argv: list[str], monkeypatch, capsys) -> tuple[int, str]:  # noqa: ANN001
    """Run ``sssseg segment`` until it reads the CT; (torch threads then, stderr)."""
    seen: list[int] = []

    def read_ct(*args: object, **kwargs: object) -> None:
        seen.append(torch.get_num_threads())
        raise InputError("stop here")

    monkeypatch.setattr(api, "read_ct", read_ct)
    assert main(["segment", "ct.nrrd", "out.seg.nrrd", "--progress", "none", "--device", "cpu", *argv]) == 2
    return seen[0], capsys.readouterr().err


def test_segment_sets_the_threads(tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    _machine(monkeypatch, 2, 0.0)
    assert _threads_when_reading(["--threads", "1"], monkeypatch, capsys)[0] == 1
    assert _threads_when_reading([], monkeypatch, capsys)[0] == 2
    monkeypatch.setenv(threads.THREADS_ENV, "1")
    assert _threads_when_reading([], monkeypatch, capsys)[0] == 1
    assert main(["segment", "ct.nrrd", "out.seg.nrrd", "--progress", "none", "--threads", "0"]) == 2
    assert capsys.readouterr().err.strip() == "sssseg: error: --threads must be at least 1, got 0"


def test_slicer_refinement_leaves_a_core(monkeypatch) -> None:  # noqa: ANN001
    from SSSSegmentLib.slicer_bridge.refine_session import load_refine_model

    _machine(monkeypatch, 4, 0.0)
    torch.set_num_threads(1)
    load_refine_model(device="cpu")
    assert torch.get_num_threads() == 3
