"""Restorer: a loaded model on a device with its run settings. Used by the job runner and by Python.

Each call returns what it did (:class:`RunInfo`: tiles, time, warnings) with its result, so one Restorer
serves any number of images, threads of a caller never read another call's figures, and nothing is set
from outside. Pixels <-> tensors live in :mod:`nafcli.inference.tensors`, the cutting in
:mod:`nafcli.inference.sizing`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..archs import LoadedModel
from ..errors import PairMismatchError, UsageError
from ..imaging.adapters import from_user, to_user
from ..imaging.image import Image
from .settings import DTYPES, check_precision, compile_module, resolve_device
from .sizing import Cut, TiledRunner, check_cut, parse_size
from .tensors import floats_to_tensor, image_to_tensor, split_views, tensor_to_image, views_to_tensor

if TYPE_CHECKING:
    import numpy as np

    from ..imaging.video import VideoResult

#: progress callback: (tiles done, tiles total)
Progress = Callable[[int, int], None]


@dataclass
class RunInfo:
    """What one call did, for ``--verbose`` / ``--json``."""

    device: str = ""
    precision: str = "fp32"
    #: "fast" or "reference", "+compiled" when torch.compile is on
    path: str = "fast"
    tiles: int = 1
    grid: tuple[int, int] = (1, 1)
    #: the working tile size or strip height (0: whole image); the planned tiles may be smaller for a
    #: small image
    tile_size: int = 0
    #: (height, width) of the tiles actually run (auto tiles may grow; a small image is one tile)
    tile_shape: tuple[int, int] = (0, 0)
    overlap: int = 0
    batch_size: int = 1
    seconds: float = 0.0
    #: seconds this call spent compiling (compiled mode, first call per shape), reported, never hidden
    compile_seconds: float = 0.0
    #: one line each: what the user should know about how the input was run
    warnings: list[str] = field(default_factory=list)

    def details(self) -> dict[str, Any]:
        """The fields a batch reports per file (``--json``)."""
        return {"device": self.device, "precision": self.precision, "tiles": self.tiles,
                "tile_grid": list(self.grid), "tile_size": self.tile_size}


@dataclass
class Restoration:
    """The restored views of one input (one image, or both views of a pair) and how they were made."""

    images: list[Image]
    info: RunInfo

    @property
    def image(self) -> Image:
        return self.images[0]


class Restorer:
    """A model on a device with its run settings. One per worker (not thread-safe).

    ``tile``: ``auto`` (from free memory), N pixels (strip rows for a stereo model), or 0 for the whole
    image at once (the authors' demo); ``overlap``: context pixels (rows) per cut (None: the default);
    ``batch_size``: ``auto`` or N equal tiles per forward pass.
    """

    def __init__(
        self,
        model: LoadedModel,
        *,
        device: str | torch.device = "auto",
        precision: str = "fp32",
        tile: int | str | None = "auto",
        overlap: int | str | None = None,
        batch_size: int | str | None = "auto",
        fast: bool = True,
        compile: bool = False,
    ) -> None:
        self.model = model
        self.device = resolve_device(device)
        self.precision = check_precision(precision, self.device)
        #: the authors' computation (what the golden tests check)
        self.reference_module = model.module.to(self.device).eval()
        #: what ``_forward`` runs: the architecture's fast equivalent unless ``fast=False``
        self.module = self.reference_module
        self.fast = False
        if fast:
            try:
                self.module = model.spec.fast(self.reference_module, dtype=DTYPES[self.precision])
                self.fast = True
            except TypeError:
                pass  # a network the fast path does not know (a user's wrapper, a test double) runs as it is
        self.compiled = compile
        self._compiled_shapes: set[tuple[int, ...]] = set()
        self._compile_seconds = 0.0
        if compile:
            self.module = compile_module(self.module, self.device)
        self.path = ("fast" if self.fast else "reference") + ("+compiled" if compile else "")
        tile_px, overlap_px = parse_size(tile, "--tile"), parse_size(overlap, "--overlap")
        check_cut(model.tiling, tile_px, overlap_px)  # here, not on the first image: every image would fail
        self.runner = TiledRunner(
            self._forward, self.device, model.tiling, scale=model.scale, tile=tile_px, overlap=overlap_px,
            batch=parse_size(batch_size, "--batch-size", minimum=1),
        )

    # -- construction -------------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, tlc: bool | None = None, task: str | None = None,
                  **kwargs: Any) -> Restorer:
        """Load a weights file (architecture detected from its contents)."""
        from ..weights import load

        return cls(load(weights=path, tlc=tlc, task=task), **kwargs)

    @classmethod
    def from_pretrained(cls, id_or_path: str | os.PathLike[str], *, task: str | None = None,
                        tlc: bool | None = None, offline: bool = False, **kwargs: Any) -> Restorer:
        """A registry model by id (downloaded and verified on first use, then cached) or a weights file.
        ``tlc=None`` takes the registry's setting (the authors' test setting)."""
        from ..weights import load
        from ..weights.loader import looks_like_path

        if looks_like_path(id_or_path):
            return cls(load(weights=id_or_path, tlc=tlc, task=task), **kwargs)
        return cls(load(model=str(id_or_path), task=task, tlc=tlc, offline=offline), **kwargs)

    # -- tensors ------------------------------------------------------------------------------------

    def run(self, x: torch.Tensor, progress: Progress | None = None) -> tuple[torch.Tensor, RunInfo]:
        """Run N x C x H x W float32 in [0, 1] (CPU; C = 3 per view) through the model, cut as its tiling
        mode says; returns the float32 output on the CPU, clamped to [0, 1], and what was done."""
        start = time.perf_counter()
        self._compile_seconds = 0.0
        with torch.inference_mode():
            out, cut = self.runner.run(x.to(torch.float32), progress)
            out.clamp_(0.0, 1.0)
        return out, self._info(x, cut, time.perf_counter() - start)

    def _info(self, x: torch.Tensor, cut: Cut, seconds: float) -> RunInfo:
        info = RunInfo(device=str(self.device), precision=self.precision, path=self.path, seconds=seconds,
                       compile_seconds=self._compile_seconds, batch_size=cut.batch, warnings=list(cut.notes),
                       tile_size=cut.tile_size, overlap=cut.overlap, tile_shape=(int(x.shape[-2]), int(x.shape[-1])))
        if cut.plan is not None:
            info.tiles, info.grid, info.tile_shape = cut.plan.tiles, cut.plan.grid, cut.plan.tile_size
        return info

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.compiled and tuple(x.shape) not in self._compiled_shapes:
            # The first call with a new shape compiles: time it so that it can be reported.
            t0 = time.perf_counter()
            out = self._forward_module(x)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self._compile_seconds += time.perf_counter() - t0
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
        with torch.autocast(device_type=self.device.type, dtype=DTYPES[self.precision]):
            return self.module(x)

    # -- decoded images -----------------------------------------------------------------------------

    def restore_views(self, views: Sequence[Image], progress: Progress | None = None) -> Restoration:
        """Restore one input: as many views as the model takes (one image, or a stereo pair that goes
        through the network together)."""
        if len(views) != self.model.views:
            raise UsageError(
                "a stereo model needs two views: use restore_pair" if self.model.views == 2
                else "restore_pair needs a stereo model (NAFSSR)"
            )
        first = views[0]
        for other in views[1:]:
            if other.pixels.shape[:2] != first.pixels.shape[:2]:
                raise PairMismatchError(
                    f"{first.source or 'left'} is {first.width}x{first.height} but "
                    f"{other.source or 'right'} is {other.width}x{other.height}: a stereo pair must match"
                )
        y, info = self.run(views_to_tensor(views), progress)
        outs = [tensor_to_image(part, like, self.model.scale)
                for part, like in zip(split_views(y, len(views)), views, strict=True)]
        return Restoration(outs, info)

    def restore_image(self, image: Image, progress: Progress | None = None) -> Restoration:
        """Restore one decoded image (a model that takes one view)."""
        return self.restore_views([image], progress)

    def restore_pair_images(self, left: Image, right: Image, progress: Progress | None = None) -> Restoration:
        """Restore a decoded stereo pair (a model that takes two views)."""
        return self.restore_views([left, right], progress)

    def restore_frames(self, frames: Sequence[Image], progress: Progress | None = None) -> Restoration:
        """Restore equally sized images (the frames of a video) in one run of the engine, as N x 3 x H x W.

        Each frame is converted and rounded back exactly as a photo is (:mod:`.tensors`), and the network
        treats the frames of a batch independently, so a frame comes out as :meth:`restore_image` would
        give it (to float rounding). :meth:`frames_per_pass` says how many to give at once.
        """
        if self.model.views != 1:
            raise UsageError("a stereo model (NAFSSR) restores left/right pairs, not video frames")
        if not frames:
            return Restoration([], RunInfo(device=str(self.device), precision=self.precision, path=self.path))
        first = frames[0]
        for other in frames[1:]:
            if other.pixels.shape != first.pixels.shape:
                raise UsageError(f"frames of one batch must be the same size ({first.width}x{first.height} "
                                 f"and {other.width}x{other.height})")
        parts = [image_to_tensor(f) for f in frames]
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
        del parts
        y, info = self.run(x, progress)
        del x
        outs = [tensor_to_image(y[i : i + 1], like, self.model.scale) for i, like in enumerate(frames)]
        return Restoration(outs, info)

    def frames_per_pass(self, height: int, width: int) -> int:
        """How many ``width`` x ``height`` frames :meth:`restore_frames` should get at once: ``batch_size``
        whole frames per forward pass (``auto``: what fits on CUDA, 1 on the CPU); 1 when a frame is cut
        into tiles (its tiles are batched instead)."""
        return self.runner.frames_per_pass(height, width)

    def restore_video(
        self,
        src: str | os.PathLike[str],
        dst: str | os.PathLike[str],
        *,
        codec: str | None = None,
        crf: int | None = None,
        start: float | str | None = None,
        duration: float | str | None = None,
        batch_size: int | None = None,
        queue_size: int = 8,
        progress: Callable[[int, int | None], None] | None = None,
        warn: Callable[[str], None] | None = None,
        on_batch: Callable[[RunInfo], None] | None = None,
    ) -> VideoResult:
        """Restore every frame of the video ``src`` into ``dst``, sound and everything else copied.

        The frames take the photo path (:meth:`restore_frames`: same tiles, precision, device, TLC), while
        decoding and encoding run on threads of their own (:func:`nafcli.imaging.video.transcode`, whose
        options these are: ``codec``/``crf`` override the "visually lossless" defaults, ``start`` and
        ``duration`` trim (seconds, or ``"1:02.5"``), ``dst``'s extension picks the container).
        ``batch_size``: frames per call (None: :meth:`frames_per_pass`). ``progress(frames_done, total)``,
        ``warn(message)`` and ``on_batch(run_info)`` are called on this thread. ``dst`` is written to a
        temporary file and renamed at the end (an existing ``dst`` is replaced, the input never); on an
        error or Ctrl-C nothing is left. Returns the run record (frames, duration, fps, codecs, seconds,
        warnings).
        """
        from ..imaging.video import parse_time, probe, transcode

        if self.model.views != 1:
            raise UsageError("a stereo model (NAFSSR) restores left/right pairs, not videos")
        first = parse_time(start) if isinstance(start, str) else start
        span = parse_time(duration) if isinstance(duration, str) else duration
        if batch_size is None:
            info = probe(src)
            batch_size = self.frames_per_pass(info.height, info.width)

        def restore(batch: list[np.ndarray]) -> list[np.ndarray]:
            done = self.restore_frames([Image(pixels=f) for f in batch])
            if on_batch is not None:
                on_batch(done.info)
            return [im.pixels for im in done.images]

        return transcode(src, dst, restore, codec=codec, crf=crf, start=first, duration=span, batch_size=batch_size,
                         queue_size=queue_size, progress=progress, warn=warn)

    # -- numpy / PIL (the Python API) ---------------------------------------------------------------

    def restore(self, image: Any, progress: Progress | None = None) -> Any:
        """Restore a numpy array (H x W x 3 RGB or gray, uint8/uint16/float in [0, 1], alpha allowed)
        or a PIL image; returns the same type, shape and dtype."""
        u = from_user(image)
        if u.floats is not None:
            if self.model.views != 1:
                raise UsageError("a stereo model needs two views: use restore_pair")
            y = self.run(floats_to_tensor(u.floats), progress)[0][0]
            if u.floats.shape[2] == 1:
                y = y.mean(dim=0, keepdim=True)
            return to_user(u, u.image, y.numpy().transpose(1, 2, 0))
        return to_user(u, self.restore_image(u.image, progress).image)

    def restore_pair(self, left: Any, right: Any, progress: Progress | None = None) -> tuple[Any, Any]:
        """Stereo: restore two views (numpy arrays or PIL images) together; returns both, same types."""
        ul, ur = from_user(left), from_user(right)
        if ul.floats is not None or ur.floats is not None:
            raise UsageError("restore_pair takes uint8/uint16 arrays or PIL images")
        a, b = self.restore_pair_images(ul.image, ur.image, progress).images
        return to_user(ul, a), to_user(ur, b)
