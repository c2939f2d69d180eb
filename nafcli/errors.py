"""One exception hierarchy for everything nafcli raises on purpose.

The library never prints: it raises one of these with a one-line message that already names the file or
model concerned and, where there is one, a way out. The CLI turns them into ``error: <message>`` and the
class's ``exit_code`` (in ``nafcli.cli.main``); anything that is *not* a ``NafcliError`` is a bug and gets a
traceback only with ``--debug``.

The exit code follows one rule for every command (README "Exit codes"): **2** when the command line or the
environment cannot work, so nothing was attempted and running it again unchanged cannot help (an option
value or combination, an unknown model id, a model of another task or scale, a device or precision this
machine lacks, weights that cannot be obtained: offline and not cached, not on the hub, no network, a cache
that cannot be written, a malformed registry); **1** when something the command was given failed while it
worked: an image or pair (read, decode, size limit, write, disk full), a weights file that cannot be read
or fails its check (SHA-256, architecture), a model that does not reproduce the authors' output. Each class
below says which it is, so that the rule holds without any command deciding it.
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

    #: 1: something given failed at run time; 2: the command line or the environment cannot work
    exit_code: int = 1


# --- checkpoints -----------------------------------------------------------------------------------


class CheckpointError(NafcliError):
    """A weights file could not be turned into a model (missing, not a checkpoint, unknown architecture,
    inconsistent tensors): a file that failed, exit code 1, like an image that cannot be read."""


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
    """``weights.toml`` (or the file named by ``NAFCLI_WEIGHTS_TOML``) is malformed: an environment that
    cannot work (exit code 2)."""

    exit_code = 2


class UnknownModelError(NafcliError, KeyError):
    """A model id is not in the registry (a command-line error: exit code 2)."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsNotAvailableError(NafcliError):
    """The weights cannot be obtained: offline and not cached, no network, or not on the hub (exit code 2:
    the environment cannot work)."""

    exit_code = 2


class NotDownloadedError(NafcliError):
    """A question about the cache answered "no" (``nafcli models path ID`` of a model not downloaded):
    exit code 1, as ``nafcli check`` and ``nafcli models verify`` report it."""


class HashMismatchError(NafcliError):
    """A weights file does not have the SHA-256 the registry expects (a file that failed its check: exit
    code 1). ``actual`` is the file's hash when it was computed."""

    def __init__(self, message: str, *, actual: str | None = None) -> None:
        super().__init__(message)
        self.actual = actual


class UnrecognisedWeightsError(NafcliError):
    """A weights file matches no registry model by hash, name or architecture, so nafcli cannot tell which
    model it is (``models import``, ``check --weights``): a file that failed, exit code 1."""


class CacheError(NafcliError):
    """The weights cache cannot be written (read-only, full): exit code 2."""

    exit_code = 2


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
    """The requested device (``cuda``, ``cuda:N``) is not available (exit code 2)."""

    exit_code = 2


class DeviceMemoryError(DeviceError):
    """Out of device memory even at the smallest tile: this input failed, others may fit (exit code 1)."""

    exit_code = 1


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
    """A feature needs an optional dependency that is not installed; the message names the extra. An
    environment that cannot work, found before anything runs: exit code 2."""

    exit_code = 2


class ClusterError(NafcliError):
    """The Ray cluster's workers could not run the jobs (they die while starting, results do not come
    back): exit code 1, as for a run-time failure."""


class ClusterUnavailableError(ClusterError):
    """No Ray cluster to run on: a local instance that cannot start, an address that cannot be reached,
    a cluster without the GPUs asked for. The environment cannot work and no job ran: exit code 2."""

    exit_code = 2
