"""Files <-> arrays: read and write images (atomically), their metadata, the formats nafcli knows, and the
adapters for numpy and PIL objects handed over by Python callers. Knows nothing of models or torch.

The modules are imported one by one (``nafcli.imaging.read``, ``.write``, ...): the command line reads
``formats`` at start-up without paying for numpy.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .image import Image
    from .read import read_image
    from .write import write_image

__all__ = ["Image", "read_image", "write_image"]
_HOME = {"Image": ".image", "read_image": ".read", "write_image": ".write"}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(import_module(_HOME[name], __name__), name)
    raise AttributeError(f"module 'nafcli.imaging' has no attribute {name!r}")
