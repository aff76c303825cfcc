"""Errors the engine raises on purpose. The CLI turns each into a one-line message and an exit code."""


class SSSSegError(Exception):
    """Base class: a problem the user can act on (its message says what to do)."""

    exit_code = 1


class InputError(SSSSegError):
    """The input volume or path is unusable (unreadable, not 3D, not CT, NaNs, ...)."""

    exit_code = 2


class PromptError(SSSSegError):
    """An interactive prompt cannot be used: outside the volume, on a slice the session does not
    have, of an unknown class, or an empty box."""

    exit_code = 2


class CheckpointError(SSSSegError):
    """A checkpoint is missing, corrupt, or does not match the requested preset/model."""

    exit_code = 3


class OutputError(SSSSegError):
    """The output cannot be written (directory missing or not writable, file exists, ...)."""

    exit_code = 4


class DeviceError(SSSSegError):
    """The device asked for (``--device cuda`` / ``mps``) is not available, or is unknown."""

    exit_code = 5


class Cancelled(SSSSegError):
    """The user cancelled a long-running job."""

    exit_code = 130
