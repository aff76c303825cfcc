"""ChildProcessRunner driven by small fake engine children (Python scripts written per test)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from SSSSegmentLib.errors import Cancelled, InputError, SSSSegError
from SSSSegmentLib.runner import (
    ChildProcessRunner,
    DoneEvent,
    ErrorEvent,
    LogEvent,
    ProgressEvent,
    parse_line,
    run_to_completion,
)


def _fake_child(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "fake_engine.py"
    script.write_text("import json, sys, time\n" + textwrap.dedent(body))
    return [sys.executable, str(script)]


def _collect(runner: ChildProcessRunner, timeout_s: float = 10.0) -> list:
    events: list = []
    deadline = time.monotonic() + timeout_s
    while not runner.finished:
        assert time.monotonic() < deadline, "runner did not finish"
        events += runner.poll()
        time.sleep(0.02)
    return events


def test_parse_line_kinds() -> None:
    line = '{"event": "progress", "stage": "encode", "fraction": 1.7, "message": "m"}'
    assert parse_line(line) == ProgressEvent("encode", 1.0, "m")  # fraction clipped to [0, 1]
    assert parse_line("plain text\n") == LogEvent("plain text")
    assert parse_line("   \n") is None
    bad = '{"event": "progress", "fraction": "x"}'
    assert parse_line(bad) == LogEvent(bad)
    done = parse_line('{"event": "done", "outputs": ["a.seg.nrrd"], "volumes_ml": {"IPH": 2.5}}')
    assert done == DoneEvent(("a.seg.nrrd",), {"IPH": 2.5})


def test_progress_lines_from_a_fake_child(tmp_path: Path) -> None:
    command = _fake_child(
        tmp_path,
        """
        for i in range(3):
            event = {"event": "progress", "stage": "encode", "fraction": i / 4, "message": f"slice {i}"}
            print(json.dumps(event))
            sys.stdout.flush()
            time.sleep(0.05)
        print("a stray print")
        print(json.dumps({"event": "log", "message": "tilt corrected"}))
        volumes = {"EDH": 0.0, "SDH": 12.25}
        print(json.dumps({"event": "done", "outputs": ["out.seg.nrrd"], "volumes_ml": volumes}))
        """,
    )
    runner = ChildProcessRunner(command).start()
    events = _collect(runner)
    progress = [e for e in events if isinstance(e, ProgressEvent)]
    assert [p.fraction for p in progress] == [0.0, 0.25, 0.5]
    assert progress[1].message == "slice 1" and progress[1].stage == "encode"
    assert LogEvent("a stray print") in events and LogEvent("tilt corrected") in events
    assert events[-1] == DoneEvent(("out.seg.nrrd",), {"EDH": 0.0, "SDH": 12.25})
    assert runner.returncode == 0 and not runner.is_running


def test_error_event_message_is_reported(tmp_path: Path) -> None:
    command = _fake_child(
        tmp_path,
        """
        print(json.dumps({"event": "error", "message": "input is not a CT volume: MR", "exit_code": 2}))
        sys.exit(2)
        """,
    )
    events = _collect(ChildProcessRunner(command).start())
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert errors == [ErrorEvent("input is not a CT volume: MR", 2)]  # no second, synthesized error
    with pytest.raises(InputError, match="not a CT volume"):
        run_to_completion(ChildProcessRunner(command), poll_interval_s=0.02)


def test_crash_with_traceback_reports_last_stderr_line(tmp_path: Path) -> None:
    command = _fake_child(
        tmp_path,
        """
        print(json.dumps({"event": "progress", "stage": "load", "fraction": 0.1}))
        sys.stdout.flush()
        def deep():
            raise MemoryError("could not allocate 12 GiB for the encoder")
        deep()
        """,
    )
    runner = ChildProcessRunner(command).start()
    events = _collect(runner)
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert len(errors) == 1 and errors[0].exit_code == 1
    assert errors[0].message.endswith("MemoryError: could not allocate 12 GiB for the encoder")
    assert "Traceback" in errors[0].details
    assert any(isinstance(e, LogEvent) and e.stream == "stderr" for e in events)


def test_exit_zero_without_done_is_an_error(tmp_path: Path) -> None:
    command = _fake_child(tmp_path, "print('nothing useful')\n")
    with pytest.raises(SSSSegError, match="without reporting a result"):
        run_to_completion(ChildProcessRunner(command), poll_interval_s=0.02)


def test_cancel_kills_a_sleeping_child_within_a_second(tmp_path: Path) -> None:
    command = _fake_child(
        tmp_path,
        """
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a stubborn child: only SIGKILL stops it
        print(json.dumps({"event": "progress", "stage": "encode", "fraction": 0.1}))
        sys.stdout.flush()
        time.sleep(60)
        """,
    )
    runner = ChildProcessRunner(command, cancel_grace_s=0.3).start()
    deadline = time.monotonic() + 10
    while not any(isinstance(e, ProgressEvent) for e in runner.poll()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    runner.cancel()
    elapsed = time.monotonic() - started
    assert not runner.is_running and runner.returncode is not None
    assert elapsed < 1.0, f"cancel took {elapsed:.2f} s"
    assert not [e for e in _collect(runner) if isinstance(e, ErrorEvent)]  # a cancel is not an error


def test_should_cancel_raises_cancelled(tmp_path: Path) -> None:
    command = _fake_child(tmp_path, "time.sleep(60)\n")
    runner = ChildProcessRunner(command)
    calls = iter(range(1000))
    with pytest.raises(Cancelled):
        run_to_completion(runner, poll_interval_s=0.02, should_cancel=lambda: next(calls) >= 3)
    assert not runner.is_running


def test_spawn_is_injectable(tmp_path: Path) -> None:
    fake = _fake_child(tmp_path, 'print(json.dumps({"event": "done", "outputs": [], "volumes_ml": {}}))\n')
    seen: list[list[str]] = []

    def spawn(args: list[str], **kwargs: object) -> subprocess.Popen:
        seen.append(list(args))
        return subprocess.Popen(fake, **kwargs)  # type: ignore[call-overload]

    runner = ChildProcessRunner(["sssseg", "segment", "in.nrrd"], spawn=spawn)
    done = run_to_completion(runner, poll_interval_s=0.02)
    assert done == DoneEvent((), {})
    assert seen == [["sssseg", "segment", "in.nrrd"]]
