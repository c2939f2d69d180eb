"""One exception hierarchy for everything nafcli raises on purpose.

The library never prints: it raises one of these with a one-line message that already names the file or
model concerned and, where there is one, a way out. The CLI turns them into ``error: <message>`` and an
exit code (see ``nafcli.cli.errors``); anything that is *not* a ``NafcliError`` is a bug and gets a
traceback only with ``--debug``.
"""

from __future__ import annotations


def os_reason(e: OSError, *, missing: str = "no such file", directory: str = "is a directory",
              verb: str = "read") -> str:
    """The end of a one-line message for a file that could not be opened: ``"{path}: " + os_reason(e)``."""
    if isinstance(e, FileNotFoundError):
        return missing
    if isinstance(e, IsADirectoryError):
        return directory
    if isinstance(e, NotADirectoryError):
        return "not a folder"
    return f"cannot {verb} ({e.strerror or e})"


class NafcliError(Exception):
    """Base class: a failure the user can act on. ``str(err)`` is a complete one-line message."""

    exit_code: int = 1


# --- checkpoints -----------------------------------------------------------------------------------


class CheckpointError(NafcliError):
    """A weights file could not be turned into a model."""


class NotACheckpointError(CheckpointError):
    """The file is not a PyTorch/safetensors checkpoint at all (or holds no tensors)."""


class TruncatedCheckpointError(CheckpointError):
    """The file starts like a checkpoint but ends early (an interrupted download or copy)."""


class UnknownArchitectureError(CheckpointError):
    """The tensors do not match any architecture nafcli knows."""


class InconsistentShapesError(CheckpointError):
    """The keys name a known architecture but the tensor shapes contradict each other."""


# --- registry and hub ------------------------------------------------------------------------------


class RegistryError(NafcliError):
    """``weights.toml`` (or the file named by ``NAFCLI_WEIGHTS_TOML``) is malformed."""


class UnknownModelError(NafcliError, KeyError):
    """A model id is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsNotAvailableError(NafcliError):
    """The weights cannot be obtained: offline and not cached, no network, or not on the hub."""


class HashMismatchError(NafcliError):
    """A weights file does not have the SHA-256 the registry expects."""


class CacheError(NafcliError):
    """The weights cache cannot be written (read-only, full)."""


# --- images ----------------------------------------------------------------------------------------


class ImageReadError(NafcliError):
    """An input image is missing, unreadable, or not an image."""


class ImageWriteError(NafcliError):
    """An output image could not be written."""


class ImageTooLargeError(ImageReadError):
    """An image is above the ``--max-pixels`` limit."""


class PairMismatchError(NafcliError):
    """The two views of a stereo pair do not fit together (different sizes)."""


# --- running ---------------------------------------------------------------------------------------


class DeviceError(NafcliError):
    """The requested device (``cuda``, ``cuda:N``) is not available."""


class UsageError(NafcliError):
    """Options that cannot work together. Exit code 2, like click's usage errors."""

    exit_code = 2


# --- video -----------------------------------------------------------------------------------------


class VideoError(NafcliError):
    """A video could not be read, restored or written."""


class VideoReadError(VideoError):
    """An input video is missing, empty, corrupt or not a video at all (an image, an audio-only file)."""


class UnsupportedVideoError(VideoError):
    """The video is readable, but its codec cannot be decoded, or the requested one cannot be encoded
    or stored in the output container, by the FFmpeg build PyAV bundles."""


class VideoWriteError(VideoError):
    """An output video could not be written (folder, disk, or a container that cannot be written)."""


# --- optional extras and clusters ------------------------------------------------------------------


class MissingExtraError(NafcliError):
    """A feature needs an optional dependency that is not installed; the message names the extra."""


class ClusterError(NafcliError):
    """The Ray cluster could not be started or reached, or its workers could not run the jobs."""
