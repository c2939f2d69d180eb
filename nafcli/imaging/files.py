"""Atomic writes: a temporary file beside the target, renamed over it, so no reader ever sees half a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import ImageWriteError


def _umask() -> int:
    """The process umask: from /proc on Linux (no change to process state, safe beside other threads),
    else by setting it and putting it back (POSIX has no getter)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    name = str(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as e:
        raise ImageWriteError(f"{name}: cannot write ({e.strerror or e})") from None
    try:
        # mkstemp creates the file 0600; give it the mode a plain open() would (0666 less the umask),
        # or every output would be unreadable to the user's group and other tools' service accounts.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise ImageWriteError(f"{name}: cannot write ({e.strerror or e})") from None
        raise
