"""Inputs -> jobs -> outputs: output naming, the never-overwrite-the-input rule, one file at a time."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UsageError
from .imageio import read_image, write_image
from .pipeline import Progress, Restorer

#: default output suffix per task
SUFFIXES = {"denoise": "_denoised", "deblur": "_deblurred", "sr": "_sr"}


def default_output(path: Path, task: str, ext: str = ".png") -> Path:
    """``photo.jpg`` -> ``photo_denoised.png`` beside the input."""
    return path.with_name(f"{path.stem}{SUFFIXES[task]}{ext}")


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def restore_file(
    restorer: Restorer, src: Path, dst: Path | None, *, task: str, progress: Progress | None = None
) -> Path:
    """Read ``src``, restore it, write ``dst`` (default beside the input). Returns the path written."""
    out = dst if dst is not None else default_output(src, task)
    if same_file(src, out):
        raise UsageError(f"{out}: refusing to overwrite the input; choose another --output")
    image = read_image(src)
    result = restorer.restore_image(image, progress)
    write_image(out, result)
    return out
