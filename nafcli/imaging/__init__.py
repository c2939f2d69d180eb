"""Files <-> arrays: read and write images (atomically), their metadata, and the adapters for numpy and
PIL objects handed over by Python callers. Knows nothing of models or torch."""

from .image import Image
from .read import read_image
from .write import write_image

__all__ = ["Image", "read_image", "write_image"]
