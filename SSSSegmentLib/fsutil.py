"""File-system helpers: atomic writes and output-path checks."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import OutputError


def check_writable_output(path: Path, overwrite: bool = False) -> None:
    """Raise OutputError unless a file can be created at ``path``; nothing is left behind.

    Checked: the directory exists and is one, ``path`` is not a directory, an existing file is only
    replaced with ``overwrite``, and a file can really be created in the folder (a probe file is
    made and removed: this catches read-only mounts, ``/proc``, full disks, and permission modes
    that ``os.access`` misreports for root).
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise OutputError(f"output directory does not exist: {parent}")
    if not parent.is_dir():
        raise OutputError(f"output directory is a file, not a directory: {parent}")
    if path.is_dir():
        raise OutputError(f"output is a directory, not a file name: {path}")
    if path.exists() and not overwrite:
        raise OutputError(f"output exists, not overwriting (use --overwrite): {path}")
    _probe_folder(parent)


def check_not_input(output: Path, input_path: Path, input_folder: Path | None = None) -> None:
    """OutputError when writing ``output`` would change the input CT, whatever ``--overwrite`` says.

    Refused: ``output`` is ``input_path`` itself, also through a symbolic link (either side) or a
    hard link (the same inode), and any output inside ``input_folder`` (the folder a DICOM series
    is read from: a file written there would join the series). A missing input is left to the
    reader, which names it.
    """
    output, source = Path(output), Path(input_path)
    if not source.exists():
        return
    if output.exists() and os.path.samefile(output, source):  # also through links, either side
        raise OutputError(f"the output {output} is the input CT {input_path}: choose another output name "
                          "(the input is never replaced, with or without --overwrite)")
    real_output = Path(os.path.realpath(output))
    if input_folder is not None and Path(os.path.realpath(input_folder)) in real_output.parents:
        raise OutputError(f"the output {output} is inside the input DICOM folder {input_folder}: write it "
                          "elsewhere (a file there would change the input series)")


def _probe_folder(folder: Path) -> None:
    """Create, write one byte to, and remove a hidden file in ``folder``; OutputError if that fails."""
    try:
        fd, name = tempfile.mkstemp(prefix=".sssseg-probe-", dir=folder)
    except OSError as error:
        raise OutputError(f"cannot create files in {folder}: {_reason(error, name_file=False)}") from error
    try:
        os.write(fd, b"\0")
        os.fsync(fd)
    except OSError as error:
        raise OutputError(f"cannot write files in {folder}: {_reason(error, name_file=False)}") from error
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(name)


def check_free_space(folder: Path, needed_bytes: int) -> None:
    """OutputError unless the file system of ``folder`` has ``needed_bytes`` free (checked before long work)."""
    free = shutil.disk_usage(folder).free
    if free < needed_bytes:
        raise OutputError(f"not enough free space in {folder}: {needed_bytes / 1e6:.1f} MB needed, "
                          f"{free / 1e6:.1f} MB free")


@contextlib.contextmanager
def writing_outputs(paths: Sequence[Path]) -> Iterator[None]:
    """Write a set of output files all or nothing.

    Inside the block, an ``OSError`` (disk full, permission, ...) becomes an :class:`OutputError`
    (exit code 4) naming the reason; on any error, the files of ``paths`` that did not exist when
    the block began are removed, so a failed run leaves no partial set behind. Files the user
    allowed to be replaced (``--overwrite``) cannot be restored.
    """
    new = [Path(p) for p in paths if not Path(p).exists()]
    try:
        yield
    except BaseException as error:
        for path in new:
            with contextlib.suppress(OSError):
                path.unlink()
        if isinstance(error, OSError):
            raise OutputError(f"could not write the output: {_reason(error)}") from error
        raise


def _reason(error: OSError, name_file: bool = True) -> str:
    """An OSError as a short reason, e.g. ``No space left on device: /data/out.seg.nrrd``."""
    text = error.strerror or str(error) or type(error).__name__
    return f"{text}: {error.filename}" if error.filename and name_file else text


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    The temp name keeps the full suffix (e.g. ``.seg.nrrd``, ``.nii.gz``) so writers that
    choose the format from the extension still work. On error the temp file is removed and
    ``path`` is untouched.
    """
    path = Path(path)
    suffix = "".join(path.suffixes) or ".tmp"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name.split('.')[0]}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_sha256(path: Path | str) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (checkpoints are verified by it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
