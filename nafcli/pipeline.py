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

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

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
    #: the working tile size (0: whole image); the planned tiles may be smaller for a small image
    tile_size: int = 0
    #: (height, width) of the tiles actually run (auto tiles may grow; a small image is one tile)
    tile_shape: tuple[int, int] = (0, 0)
    overlap: int = 0
    batch_size: int = 1
    seconds: float = 0.0
    #: "fast" or "reference" (see nafcli.fast), "+compiled" when torch.compile is on
    path: str = "fast"
    #: seconds the first call spent compiling (compiled mode; 0 otherwise), reported, never hidden
    compile_seconds: float = 0.0


class Restorer:
    """A model on a device with its run settings. Thread-unsafe; one per worker.

    ``tile``: ``auto`` (from free memory, see :mod:`nafcli.autotile`), N pixels, or 0 for the whole image
    at once (the authors' demo); ``overlap``: context pixels per tile side (None: the default);
    ``batch_size``: ``auto`` or N equal tiles per forward pass.
    """

    def __init__(
        self,
        model: LoadedModel,
        *,
        device: str | torch.device = "auto",
        precision: str = "fp32",
        tile: int | str = "auto",
        overlap: int | None = None,
        batch_size: int | str = "auto",
        fast: bool = True,
        compile: bool = False,
    ) -> None:
        from .speed import check_precision, compile_module

        self.model = model
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.precision = check_precision(precision, self.device)
        self.tile = tile
        self.overlap = overlap
        self.batch_size = batch_size
        self.fast = fast
        #: the authors' computation (what the golden tests check)
        self.reference_module = model.module.to(self.device).eval()
        #: what ``_forward`` runs: the fast equivalent (nafcli.fast) unless ``fast=False``
        self.module = self.reference_module
        if fast:
            from .fast import optimize, supported

            # A network the fast path does not know (a user's wrapper, a test double) runs as it is.
            self.fast = fast = supported(self.reference_module)
            if fast:
                self.module = optimize(self.reference_module, dtype=_DTYPES[self.precision])
        self.compiled = compile
        self._compiled_shapes: set[tuple[int, ...]] = set()
        if compile:
            self.module = compile_module(self.module, self.device)
        path = ("fast" if fast else "reference") + ("+compiled" if compile else "")
        self.last_run = RunInfo(device=str(self.device), precision=self.precision, path=path)
        self._tiler = _make_tiler(self, tile, overlap, batch_size)
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
        clamped to [0, 1]. Stereo models go in full-width strips (:meth:`run_stereo_tensor`): square
        tiles would cut the rows their cross-view attention spans."""
        if self.model.stereo:
            return self.run_stereo_tensor(x, progress)
        start = time.perf_counter()
        with torch.inference_mode():
            out, plan, batch = self._tiler.run(x.to(torch.float32), progress)
            out.clamp_(0.0, 1.0)
        info = self.last_run
        info.tile_size, info.overlap, info.batch_size = self._tiler.tile or 0, self._tiler.overlap, batch
        info.grid, info.tiles = (plan.grid, plan.tiles) if plan is not None else ((1, 1), 1)
        info.tile_shape = plan.tile_size if plan is not None else tuple(x.shape[-2:])
        info.seconds = time.perf_counter() - start
        return out

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
        strip_h = strip_plan.rows[0].stop - strip_plan.rows[0].start
        strip_w = strip_plan.cols[0].stop - strip_plan.cols[0].start
        self.last_run.tile_size = 0 if strip_plan.count == 1 else strip_h
        self.last_run.tile_shape = (strip_h, strip_w)
        self.last_run.overlap = strip_plan.overlap
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
        if self.compiled and tuple(x.shape) not in self._compiled_shapes:
            # The first call with a new shape compiles: time it so that it can be reported.
            import time

            t0 = time.perf_counter()
            out = self._forward_module(x)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.last_run.compile_seconds += time.perf_counter() - t0
            self._compiled_shapes.add(tuple(x.shape))
            return out
        return self._forward_module(x)

    def _forward_module(self, x: torch.Tensor) -> torch.Tensor:
        if self.compiled and self.device.type == "cuda":
            # CUDA-graph replay reuses its output buffers: mark the step, and keep our own copy.
            torch.compiler.cudagraph_mark_step_begin()
            return self.module(x).clone()
        if self.precision == "fp32" or self.fast:
            # The fast module casts itself (statistics in float32); no autocast needed.
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


def _make_tiler(restorer: Restorer, tile: int | str, overlap: int | None, batch_size: int | str):
    """The tiled runner for ``restorer``'s settings (``tile``/``batch_size``: N or ``auto``)."""
    from .archs.tlc import NAFSSR_WINDOW, nafnet_windows
    from .autotile import TiledRunner, parse_size

    model = restorer.model
    window = 0
    if model.tlc:
        spec = model.spec
        window = max(NAFSSR_WINDOW) if spec.stereo else nafnet_windows(len(spec.enc_blk_nums))[0][0]
    batch = parse_size(batch_size, "--batch-size")
    size = parse_size(tile, "--tile")
    if model.stereo and size is None:
        size = 0  # NAFSSR attends along whole rows: square tiles would cut them (strips are its own mode)
    return TiledRunner(
        restorer._forward,
        restorer.device,
        scale=model.scale,
        size_multiple=model.size_multiple,
        tile=size,
        overlap=parse_size(overlap, "--overlap"),
        batch=None if batch is None else max(batch, 1),
        width=model.spec.width,
        tlc_window=window,
    )


def _to_tensor(image: Image) -> torch.Tensor:
    """H x W x C integer pixels -> 1 x 3 x H x W float32 in [0, 1] (gray repeated to RGB)."""
    px = image.pixels
    arr = px.astype(np.float32)
    arr /= float(image.max_value)  # in place: one float copy of a 24 MP photo is already 288 MB
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
    arr = y.numpy()
    np.multiply(arr, maxv, out=arr)  # in place (the caller's buffer is done with): no float copies
    np.round(arr, out=arr)
    arr = arr.transpose(1, 2, 0)
    pixels = np.ascontiguousarray(arr.astype(like.pixels.dtype))
    alpha = like.alpha
    if alpha is not None and scale != 1:
        import cv2

        alpha = cv2.resize(alpha, (like.width * scale, like.height * scale), interpolation=cv2.INTER_CUBIC)
    return Image(pixels=pixels, alpha=alpha, source=like.source, info=dict(like.info))
