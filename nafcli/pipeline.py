"""Restorer: a loaded model on a device, and the conversions around it. Used by the CLI and by Python.

The conventions are the authors' demo's: RGB float32 in [0, 1] into the network, the output clamped to
[0, 1], times the maximum value, rounded (half to even, as numpy does), cast back to the input's type.
Gray images go through the RGB network as three equal channels and come back as their mean; an alpha
channel passes through unchanged (resized for super-resolution).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import DeviceError, PairMismatchError, UsageError
from .imageio import Image
from .model import LoadedModel

#: progress callback: (tiles done, tiles total)
Progress = Callable[[int, int], None]


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; checked, not guessed."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r}: CUDA is not available here (use --device cpu)")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here"
            )
        return dev
    raise UsageError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)")


@dataclass
class RunInfo:
    """What one call did, for ``--verbose`` / ``--json``."""

    device: str = ""
    precision: str = "fp32"
    tiles: int = 1
    grid: tuple[int, int] = (1, 1)
    tile_size: int = 0
    seconds: float = 0.0


class Restorer:
    """A model on a device with its run settings. Thread-unsafe; one per worker."""

    def __init__(
        self,
        model: LoadedModel,
        *,
        device: str | torch.device = "auto",
        precision: str = "fp32",
        tile: int | str = 0,
        overlap: int | None = None,
        batch_size: int | str = 1,
    ) -> None:
        self.model = model
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        if precision not in ("fp32", "bf16", "fp16"):
            raise UsageError(f"unknown precision {precision!r} (use fp32, bf16 or fp16)")
        self.precision = precision
        self.tile = tile
        self.overlap = overlap
        self.batch_size = batch_size
        self.module = model.module.to(self.device).eval()
        self.last_run = RunInfo(device=str(self.device), precision=precision)
        #: one-line warnings (stereo strip fallbacks); the CLI prints them on stderr
        self.on_warning: Callable[[str], None] | None = None

    # -- construction -------------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, tlc: bool | None = None, **kwargs: Any) -> Restorer:
        """Load a weights file (architecture detected from its contents)."""
        from .checkpoint import load_model

        return cls(load_model(path, tlc=tlc), **kwargs)

    @classmethod
    def from_pretrained(
        cls,
        id_or_path: str | os.PathLike[str],
        *,
        task: str | None = None,
        device: str | torch.device = "auto",
        precision: str = "fp32",
        tlc: bool | None = None,
        offline: bool = False,
        **kwargs: Any,
    ) -> Restorer:
        """A registry model by id (downloaded and verified on first use, then cached) or a weights file.
        ``tlc=None`` takes the registry's setting (the authors' test setting)."""
        from .weights import resolve_id_or_path

        model = resolve_id_or_path(id_or_path, task=task, tlc=tlc, offline=offline)
        return cls(model, device=device, precision=precision, **kwargs)

    # -- tensors ------------------------------------------------------------------------------------

    def run_tensor(self, x: torch.Tensor, progress: Progress | None = None) -> torch.Tensor:
        """Run N x C x H x W float32 in [0, 1] (CPU) through the model; returns float32 on the CPU,
        clamped to [0, 1]."""
        with torch.inference_mode():
            out = self._forward(x.to(self.device, torch.float32))
            if progress is not None:
                progress(1, 1)
            return out.float().clamp_(0.0, 1.0).cpu()

    def run_stereo_tensor(self, x: torch.Tensor, progress: Progress | None = None) -> torch.Tensor:
        """Run N x 6 x H x W (left | right, float32 in [0, 1], CPU) through a stereo model in full-width
        strips (see :mod:`nafcli.stereo`): ``tile`` is the strip height in input rows (0: whole pair,
        "auto": from free memory), ``overlap`` the rows shared by neighbouring strips."""
        from .stereo import StereoGeometry, plan, run_strips

        spec = self.model.spec
        geometry = StereoGeometry(channels=spec.width, num_blks=spec.num_blks, scale=spec.scale)  # type: ignore[union-attr]
        strip_plan = plan(
            geometry, x.shape[-2], x.shape[-1], tile=self.tile, overlap=self.overlap, device=self.device,
            batch=x.shape[0], warn=self.on_warning,
        )
        if strip_plan.count > 1 and not self.model.tlc and self.on_warning is not None:
            self.on_warning("without TLC the channel attention averages over each whole strip; "
                            "use --tile 0 for the exact result")
        self.last_run.tiles = strip_plan.count
        self.last_run.grid = (len(strip_plan.rows), len(strip_plan.cols))
        self.last_run.tile_size = strip_plan.rows[0].stop - strip_plan.rows[0].start
        start = time.perf_counter()
        with torch.inference_mode():
            out = run_strips(
                lambda t: self._forward(t.to(self.device, torch.float32)), x, strip_plan,
                scale=self.model.scale, device=self.device, progress=progress,
            )
            out.clamp_(0.0, 1.0)
        self.last_run.seconds = time.perf_counter() - start
        return out

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.precision == "fp32":
            return self.module(x)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        with torch.autocast(device_type=self.device.type, dtype=dtype):
            return self.module(x)

    # -- numpy / PIL (the Python API) ---------------------------------------------------------------

    def restore(self, image: Any, progress: Progress | None = None) -> Any:
        """Restore a numpy array (H x W x 3 RGB or gray, uint8/uint16/float in [0, 1], alpha allowed)
        or a PIL image; returns the same type, shape and dtype."""
        from .arrays import unwrap, wrap

        w = wrap(image)
        if w.floats is not None:
            y = self.run_tensor(_float_tensor(w.floats), progress)[0]
            if w.floats.shape[2] == 1:
                y = y.mean(dim=0, keepdim=True)
            return unwrap(w, w.image, y.numpy().transpose(1, 2, 0))
        return unwrap(w, self.restore_image(w.image, progress))

    def restore_pair(self, left: Any, right: Any, progress: Progress | None = None) -> tuple[Any, Any]:
        """Stereo: restore two views (numpy arrays or PIL images) together; returns both, same types."""
        from .arrays import unwrap, wrap

        wl, wr = wrap(left), wrap(right)
        if wl.floats is not None or wr.floats is not None:
            raise UsageError("restore_pair takes uint8/uint16 arrays or PIL images")
        a, b = self.restore_image_pair(wl.image, wr.image, progress)
        return unwrap(wl, a), unwrap(wr, b)

    # -- images -------------------------------------------------------------------------------------

    def restore_image(self, image: Image, progress: Progress | None = None) -> Image:
        """Restore one decoded image (mono models)."""
        if self.model.stereo:
            raise UsageError("a stereo model needs two views: use restore_pair")
        x = _to_tensor(image)
        y = self.run_tensor(x, progress)
        return _from_tensor(y, image, self.model.scale)

    def restore_image_pair(
        self, left: Image, right: Image, progress: Progress | None = None
    ) -> tuple[Image, Image]:
        """Restore a stereo pair (stereo models): both views go through the network together."""
        if not self.model.stereo:
            raise UsageError("restore_pair needs a stereo model (NAFSSR)")
        if left.pixels.shape[:2] != right.pixels.shape[:2]:
            raise PairMismatchError(
                f"{left.source or 'left'} is {left.width}x{left.height} but "
                f"{right.source or 'right'} is {right.width}x{right.height}: a stereo pair must match"
            )
        x = torch.cat([_to_tensor(left), _to_tensor(right)], dim=1)
        y = self.run_stereo_tensor(x, progress)
        return _from_tensor(y[:, :3], left, self.model.scale), _from_tensor(y[:, 3:], right, self.model.scale)


def _to_tensor(image: Image) -> torch.Tensor:
    """H x W x C integer pixels -> 1 x 3 x H x W float32 in [0, 1] (gray repeated to RGB)."""
    px = image.pixels
    arr = px.astype(np.float32) / float(image.max_value)
    t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1).contiguous()
    return t


def _float_tensor(arr: np.ndarray) -> torch.Tensor:
    """H x W x C float32 in [0, 1] -> 1 x 3 x H x W (gray repeated), for float input from Python."""
    t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]
    return t.expand(-1, 3, -1, -1).contiguous() if t.shape[1] == 1 else t


def _from_tensor(y: torch.Tensor, like: Image, scale: int) -> Image:
    """1 x 3 x H x W float in [0, 1] -> an :class:`Image` of ``like``'s type, gray and alpha kept."""
    y = y[0]
    if like.is_gray:
        y = y.mean(dim=0, keepdim=True)
    maxv = float(like.max_value)
    arr = (y.numpy() * maxv).round().transpose(1, 2, 0)
    pixels = np.ascontiguousarray(arr.astype(like.pixels.dtype))
    alpha = like.alpha
    if alpha is not None and scale != 1:
        import cv2

        alpha = cv2.resize(alpha, (like.width * scale, like.height * scale), interpolation=cv2.INTER_CUBIC)
    return Image(pixels=pixels, alpha=alpha, source=like.source, info=dict(like.info))
