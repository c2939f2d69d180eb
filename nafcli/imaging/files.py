"""Atomic writes: a temporary file beside the target, renamed over it, so no reader ever sees half a file.

The temporary file of ``NAME`` is ``.NAME.nafcli.part``, the same name every time, held under an
exclusive ``flock`` while it is written. A writer killed half-way (``kill -9``, the kernel's OOM killer,
a Ray worker taken down with its node's job) leaves that file behind, unlocked; the next write of the
same output (a re-run, or Ray's retry of the job on another worker) opens the same name, takes the lock
and overwrites it, so a stale temporary file never outlives the output's next write, and finding it
needs no listing of the folder (which costs a directory scan per file in a folder of a million
outputs). The lock tells a stale file from one another process is writing right now (two runs on one
output folder): a write that finds the name locked, or cannot lock at all (a filesystem without
``flock``; Windows), falls back to a fresh random name (``.NAME.XXXXXXXX.part``), as before.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from ..errors import ImageWriteError

try:
    import fcntl
except ImportError:  # not POSIX: random temporary names only
    fcntl = None  # type: ignore[assignment]

#: what ends every temporary file's name (``.NAME.*.part``)
TEMP_SUFFIX = ".part"


def umask() -> int:
    """The process umask: from /proc on Linux (no change to process state, safe beside other threads
    creating files), else by setting it and putting it back (POSIX has no getter)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_path(path: Path) -> Path:
    """The fixed temporary name of ``path``'s writes (see the module docstring)."""
    return path.with_name(f".{path.name}.nafcli{TEMP_SUFFIX}")


def _claim_fixed(path: Path) -> tuple[int, str] | None:
    """Open ``path``'s fixed temporary file locked and emptied, or None when another process holds it (or
    it cannot be locked here): the caller then takes a random name.

    The file may be a stale one a killed writer left: it is overwritten. Opened without following a
    link, and checked to be a regular file, so a link planted under that name redirects nothing. After
    the lock is taken, the name must still be this file: another writer may have renamed it into place
    (it was then an output, which must not be emptied) between our ``open`` and our lock.
    """
    if fcntl is None:
        return None
    tmp = temp_path(path)
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        mine = os.fstat(fd)
        if not stat.S_ISREG(mine.st_mode) or os.stat(tmp, follow_symlinks=False).st_ino != mine.st_ino:
            raise OSError("renamed meanwhile")
        os.ftruncate(fd, 0)
    except OSError:  # locked by a live writer, no flock on this filesystem, or no longer ours
        os.close(fd)
        return None
    return fd, str(tmp)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place.

    The temporary file is ``path``'s fixed one when no other process is writing it (a stale one is
    reused and so removed), else a fresh one; either way it is removed if the write fails.
    """
    name = str(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        claimed = _claim_fixed(path)
        if claimed is None:
            claimed = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        fd, tmp = claimed
    except OSError as e:
        raise ImageWriteError(f"{name}: cannot write ({e.strerror or e})") from None
    try:
        # mkstemp creates the file 0600; give it the mode a plain open() would (0666 less the umask),
        # or every output would be unreadable to the user's group and other tools' service accounts.
        os.fchmod(fd, 0o666 & ~umask())
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        # renamed (or, on failure, removed) while still locked, the lock ending with the file's closing:
        # no other writer can take the fixed name's file in between
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise ImageWriteError(f"{name}: cannot write ({e.strerror or e})") from None
        raise
    finally:
        os.close(fd)
