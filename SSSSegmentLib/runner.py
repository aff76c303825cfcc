"""Run an engine command in a child process and read its JSON-lines progress without blocking.

Plain Python (no Qt): the Slicer widget calls :meth:`ChildProcessRunner.poll` from a QTimer, a
console or batch caller uses :func:`run_to_completion`. The protocol is the one documented in
:mod:`SSSSegmentLib.progress` (events ``progress``, ``log``, ``done``, ``error``).

The function that spawns the process is injectable (``spawn=``), so tests drive the runner with a
small fake child script instead of the real engine.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from .errors import Cancelled, CheckpointError, DeviceError, InputError, OutputError, SSSSegError

STDERR_TAIL_LINES = 40


@dataclass(frozen=True)
class ProgressEvent:
    """Overall ``fraction`` done in [0, 1], the current ``stage`` and a short ``message``."""

    stage: str
    fraction: float
    message: str = ""


@dataclass(frozen=True)
class LogEvent:
    """A log line; ``stream`` is ``"stdout"`` (a JSON log event or a plain line) or ``"stderr"``."""

    message: str
    stream: str = "stdout"


@dataclass(frozen=True)
class DoneEvent:
    """The job succeeded: files it wrote, per-class volumes in mL (class key -> mL), and whether
    the model was trained (False: random weights, the result is not meaningful)."""

    outputs: tuple[str, ...] = ()
    volumes_ml: Mapping[str, float] = field(default_factory=dict)
    trained: bool = True


@dataclass(frozen=True)
class ErrorEvent:
    """The job failed; ``message`` says why, ``exit_code`` follows errors.py when known."""

    message: str
    exit_code: int | None = None
    details: str = ""


Event = ProgressEvent | LogEvent | DoneEvent | ErrorEvent
Spawn = Callable[..., subprocess.Popen]


def parse_line(line: str) -> Event | None:
    """Turn one stdout line into an event. Blank lines give None; non-JSON lines become logs."""
    text = line.rstrip("\r\n")
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return LogEvent(text)
    if not isinstance(obj, dict) or "event" not in obj:
        return LogEvent(text)
    return _event_from_dict(obj, text)


def _event_from_dict(obj: dict[str, Any], text: str) -> Event:
    kind = obj.get("event")
    try:
        if kind == "progress":
            fraction = min(max(float(obj.get("fraction", 0.0)), 0.0), 1.0)
            return ProgressEvent(str(obj.get("stage", "")), fraction, str(obj.get("message", "")))
        if kind == "log":
            return LogEvent(str(obj.get("message", "")))
        if kind == "done":
            volumes = {str(k): float(v) for k, v in dict(obj.get("volumes_ml") or {}).items()}
            outputs = tuple(str(p) for p in obj.get("outputs") or ())
            return DoneEvent(outputs, volumes, trained=bool(obj.get("trained", True)))
        if kind == "error":
            code = obj.get("exit_code")
            message = str(obj.get("message", "unknown error"))
            return ErrorEvent(message, int(code) if code is not None else None)
    except (TypeError, ValueError):
        return LogEvent(text)  # malformed fields: keep the line visible rather than fail
    return LogEvent(text)


def error_from_event(event: ErrorEvent) -> SSSSegError:
    """The errors.py exception matching an error event's exit code (SSSSegError when unknown)."""
    for cls in (InputError, CheckpointError, OutputError, DeviceError, Cancelled):
        if event.exit_code == cls.exit_code:
            return cls(event.message)
    return SSSSegError(event.message)


def _popen_kwargs() -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
        "stdin": subprocess.DEVNULL,
        "text": True,
        "bufsize": 1,
        "encoding": "utf-8",
        "errors": "replace",
    }
    if os.name == "posix":
        kwargs["start_new_session"] = True  # own process group: cancel kills grandchildren too
    else:
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
    return kwargs


class ChildProcessRunner:
    """One child process whose stdout speaks the JSON-lines progress protocol.

    ``start()`` spawns it; ``poll()`` returns the events read since the last call without
    blocking; ``cancel()`` kills it (and its process group on POSIX) within about a second.
    When the child exits non-zero without an ``error`` event, ``poll()`` reports an
    :class:`ErrorEvent` whose message is the last line the child wrote on stderr (the exception
    line of a traceback). A child that exits 0 without a ``done`` event is reported as an error too.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        spawn: Spawn = subprocess.Popen,
        cancel_grace_s: float = 0.5,
    ) -> None:
        self.command = [str(c) for c in command]
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._spawn = spawn
        self._grace_s = cancel_grace_s
        self._process: subprocess.Popen | None = None
        self._queue: queue.Queue[Event] = queue.Queue()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._readers: list[threading.Thread] = []
        self._terminal_seen = False
        self._finished = False
        self.cancelled = False

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> ChildProcessRunner:
        """Spawn the child and its reader threads. Returns self for chaining."""
        if self._process is not None:
            raise RuntimeError("this runner was already started; make a new one for another job")
        self._process = self._spawn(self.command, env=self._env, cwd=self._cwd, **_popen_kwargs())
        self._readers = [
            threading.Thread(target=self._read_stdout, args=(self._process.stdout,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(self._process.stderr,), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        return self

    @property
    def started(self) -> bool:
        """True once :meth:`start` has spawned the child."""
        return self._process is not None

    @property
    def is_running(self) -> bool:
        """True while the child process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The child's exit status, None while it runs (negative: killed by that signal on POSIX)."""
        return None if self._process is None else self._process.poll()

    @property
    def finished(self) -> bool:
        """True once the child has exited and :meth:`poll` has returned all of its events."""
        return self._finished

    @property
    def stderr_tail(self) -> list[str]:
        """The last lines the child wrote on stderr (at most STDERR_TAIL_LINES)."""
        return list(self._stderr_tail)

    def poll(self) -> list[Event]:
        """Events read since the last call (never blocks for long; safe to call from a GUI timer)."""
        if self._process is None or self._finished:
            return []
        exited = self._process.poll() is not None
        if exited:
            for reader in self._readers:
                reader.join(timeout=1.0)  # pipes close at exit; the tail of the output is still coming
        events = self._drain()
        if exited and not any(r.is_alive() for r in self._readers):
            events += self._drain()
            events.extend(self._closing_events())
            self._finished = True
        return events

    def cancel(self) -> None:
        """Kill the child: terminate, then kill after ``cancel_grace_s``. Returns once it is gone."""
        self.cancelled = True
        process = self._process
        if process is None or process.poll() is not None:
            return
        self._signal(process, kill=False)
        try:
            process.wait(timeout=self._grace_s)
        except subprocess.TimeoutExpired:
            self._signal(process, kill=True)
            process.wait(timeout=2.0)

    # -- internals -------------------------------------------------------------------------------
    def _drain(self) -> list[Event]:
        events: list[Event] = []
        while True:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                return events
            if isinstance(event, DoneEvent | ErrorEvent):
                self._terminal_seen = True
            events.append(event)

    def _closing_events(self) -> list[Event]:
        code = self._process.returncode if self._process is not None else None
        if self.cancelled or self._terminal_seen:
            return []
        tail = [line for line in self._stderr_tail if line.strip()]
        if code == 0:
            return [ErrorEvent("the engine exited without reporting a result", code, "\n".join(tail))]
        last = tail[-1].strip() if tail else "no error message"
        return [ErrorEvent(f"the engine failed (exit code {code}): {last}", code, "\n".join(tail))]

    def _read_stdout(self, stream: IO[str]) -> None:
        for line in stream:
            event = parse_line(line)
            if event is not None:
                self._queue.put(event)
        stream.close()

    def _read_stderr(self, stream: IO[str]) -> None:
        for line in stream:
            text = line.rstrip("\r\n")
            self._stderr_tail.append(text)
            if text.strip():
                self._queue.put(LogEvent(text, stream="stderr"))
        stream.close()

    @staticmethod
    def _signal(process: subprocess.Popen, kill: bool) -> None:
        if os.name == "posix":
            sig = signal.SIGKILL if kill else signal.SIGTERM
            try:
                os.killpg(process.pid, sig)  # start_new_session=True: the pgid is the child's pid
                return
            except (ProcessLookupError, PermissionError):
                pass  # not a group leader (custom spawn) or already gone: fall back to the process
        if kill:
            process.kill()
        else:
            process.terminate()


def run_to_completion(
    runner: ChildProcessRunner,
    on_event: Callable[[Event], None] | None = None,
    poll_interval_s: float = 0.1,
    should_cancel: Callable[[], bool] | None = None,
) -> DoneEvent:
    """Start ``runner`` if needed, feed every event to ``on_event``, block until the child ends.

    Returns the done event; raises the errors.py exception matching the child's error event, or
    :class:`Cancelled` when ``should_cancel()`` turned true.
    """
    if not runner.started:
        runner.start()
    done: DoneEvent | None = None
    while not runner.finished:
        if should_cancel is not None and should_cancel():
            runner.cancel()
            raise Cancelled("cancelled by the user")
        for event in runner.poll():
            if on_event is not None:
                on_event(event)
            if isinstance(event, ErrorEvent):
                runner.cancel()
                raise error_from_event(event)
            if isinstance(event, DoneEvent):
                done = event
        time.sleep(poll_interval_s)
    if done is None:  # pragma: no cover  (poll() always ends with done or error when not cancelled)
        raise SSSSegError("the engine exited without reporting a result")
    return done


def python_module_command(module: str, *args: str, python: str | None = None) -> list[str]:
    """``[python, "-m", module, *args]`` with the running interpreter by default (Slicer's python)."""
    return [python or sys.executable, "-m", module, *args]
