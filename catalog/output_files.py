"""Files the tool writes: refuse unsafe output paths before any work, then write atomically.

:func:`check_output_path` is the one check every writer runs first (``infersave calibrate -o``,
the measurement curation; meant for ``batch -o`` as well). It lives in the catalog layer, the
lowest one, so that every layer may call it. :func:`write_text_atomic` and
:func:`write_json_atomic` write a temp file beside the target, then :func:`os.replace` it, so a
reader never sees half a file and a failed write leaves the old file as it was.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class UnsafeOutputError(OSError):
    """An output path that must not be written: ``strerror`` says why, ``filename`` is the path.

    An :class:`OSError`, so the CLI's bad-input handler prints it as one line
    (``<why>: <path>``) and exits 2, like any other unwritable path.
    """

    def __init__(self, code: int, why: str, path: str | Path) -> None:
        super().__init__(code, why, str(path))


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_output_path(path: str | Path, inputs: Iterable[str | Path] = ()) -> Path:
    """Check that ``path`` may be (re)written as a regular file, before any work is done.

    Refused (:class:`UnsafeOutputError`, one line naming the path and the reason):

    * ``path`` is a symbolic link (even a dangling one): replacing it would silently turn the
      link into a file, and following it would write somewhere the user did not name;
    * ``path`` exists and is not a regular file (directory, FIFO, character or block device such
      as ``/dev/null``, socket): an atomic replace would swap it for a regular file;
    * ``path`` is one of ``inputs`` (same file: same device and inode, so hard links and other
      spellings of the same path count too; inputs that do not exist are ignored);
    * its directory does not exist, is not a directory, or is not writable and searchable by
      this process (:func:`os.access`; as root only a read-only file system fails this).

    A regular file that exists is fine (it is replaced atomically), as is a new name in a
    writable directory.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    p = Path(path)
    try:
        st = p.lstat()
    except FileNotFoundError:
        st = None
    except OSError as exc:
        why = f"cannot inspect the output ({exc.strerror})"
        raise UnsafeOutputError(exc.errno or errno.EIO, why, p) from exc
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise UnsafeOutputError(
                errno.EINVAL, "refusing to write over a symbolic link; name its target", p
            )
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeOutputError(
                errno.EINVAL, f"refusing to write: the output is {_kind(st.st_mode)}", p
            )
        for inp in inputs:
            try:
                same = os.path.samefile(p, inp)
            except OSError:
                continue
            if same:
                raise UnsafeOutputError(errno.EEXIST, "refusing to overwrite an input file", p)
    parent = p.parent
    if not parent.exists():
        raise UnsafeOutputError(errno.ENOENT, "output directory does not exist", parent)
    if not parent.is_dir():
        raise UnsafeOutputError(errno.ENOTDIR, "output directory is not a directory", parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UnsafeOutputError(errno.EACCES, "output directory is not writable", parent)
    return p


def _mode_for(path: Path) -> int:
    """The permission bits a plain ``open(path, "w")`` would leave (mkstemp makes 0600)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


def write_text_atomic(text: str, path: str | Path) -> None:
    """Write ``text`` (UTF-8, no newline translation) to ``path`` atomically (temp file in the
    same directory, then :func:`os.replace`)."""
    write_bytes_atomic(text.encode("utf-8"), path)


def write_bytes_atomic(data: bytes, path: str | Path) -> None:
    """Write ``data`` to ``path`` atomically: a temp file in the same directory, then
    :func:`os.replace`; on any failure the temp file is removed and ``path`` is unchanged."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(data: Any, path: str | Path) -> None:
    """Write ``data`` as indented JSON (2 spaces, trailing newline) to ``path`` atomically.

    Non-finite floats are refused (:class:`ValueError`): JSON has no ``Infinity``/``NaN``.
    """
    write_text_atomic(json.dumps(data, indent=2, allow_nan=False) + "\n", path)
