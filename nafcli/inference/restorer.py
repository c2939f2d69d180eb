"""Restorer: a loaded model on a device with its run settings. Used by the job runner and by Python.

Each call returns what it did (:class:`RunInfo`: tiles, time, warnings) with its result, so one Restorer
serves any number of images, threads of a caller never read another call's figures, and nothing is set
from outside. Pixels <-> tensors live in :mod:`nafcli.inference.tensors`, the cutting in
:mod:`nafcli.inference.sizing`.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..archs import LoadedModel, native
from ..errors import PairMismatchError, UsageError
from ..imaging.adapters import from_user, to_user
from ..imaging.image import Image
from . import compiled as compiled_mode
from .cut_options import check_cut, parse_size
from .forward import Forward
from .settings import DTYPES, choose_precision, resolve_device
from .sizing import Cut, TiledRunner
from .tensors import floats_to_tensor, image_to_tensor, split_views, tensor_to_image, views_to_tensor
from .tiling import Progress

if TYPE_CHECKING:
    import numpy as np

    from ..imaging.video import VideoResult


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
    #: one line each, for ``--verbose``: how the run was set up (the ``--compile`` auto decision)
    notes: list[str] = field(default_factory=list)

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
    ``batch_size``: ``auto`` or N equal tiles per forward pass. ``compile``: ``False``/``off``,
    ``True``/``on`` (torch.compile, one compilation per network input shape, kept in the cache:
    :mod:`nafcli.inference.compiled`) or ``auto`` (compile a shape when the forwards planned for it
    repay the warm-up; tell it the batch with :meth:`plan_inputs`). ``precision_choice`` says what the
    precision resolved to and carries a warning to show once (bf16 on a CPU that emulates it).
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
        self.precision_choice = choose_precision(precision, self.device)
        self.precision = self.precision_choice.precision
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
        #: said once, in the first run's notes: whether the native CPU kernels run, and why not
        self._native_note: str | None = None
        self.forward = Forward(self.module, self.device, self.precision, fast=self.fast,
                               mode=compiled_mode.parse_mode(compile),
                               model_key=compiled_mode.model_key(model.spec.describe(), bool(model.tlc)))
        tile_px, overlap_px = parse_size(tile, "--tile"), parse_size(overlap, "--overlap")
        check_cut(model.tiling, tile_px, overlap_px)  # here, not on the first image: every image would fail
        self.runner = TiledRunner(
            self.forward, self.device, model.tiling, scale=model.scale, tile=tile_px, overlap=overlap_px,
            batch=parse_size(batch_size, "--batch-size", minimum=1), large_cpu_tiles=self._native_blocks(),
        )

    def _native_blocks(self) -> bool:
        """Whether the fast path's blocks run in the native CPU kernels (fp32 on the CPU, not traced by
        torch.compile, the kernels built here): then TLC models take the larger CPU tiles too. Leaves a
        note for the first run's ``--verbose`` lines either way."""
        if not (self.fast and self.device.type == "cpu" and self.precision == "fp32"
                and self.forward.mode != "on"):
            return False
        lib = native.load()
        if isinstance(lib, native.Library):
            self._native_note = (f"native NAFBlock kernels: {lib.describe()}; blocks of up to "
                                 f"{native.whole_block_limit()} channels whole")
            return True
        self._native_note = f"native NAFBlock kernels off: {lib}"
        return False

    # -- compiled mode (the network call: :class:`~.forward.Forward`) --------------------------------

    @property
    def compile_mode(self) -> str:
        """``off``, ``on`` or ``auto`` (``off`` also when no C++ compiler could compile on the CPU)."""
        return self.forward.mode

    @property
    def compiled(self) -> bool:
        """Whether compiled mode may run (``on``, or ``auto`` before or after deciding to compile)."""
        return self.forward.compiled

    @property
    def path(self) -> str:
        return ("fast" if self.fast else "reference") + ("+compiled" if self.compile_mode == "on" else "")

    def plan_inputs(self, sizes: Iterable[tuple[int, int]]) -> None:
        """The inputs to come, (height, width) each (one view): ``compile`` auto weighs the warm-up against
        all of them rather than the current image alone. Cheap (plans on the meta device); optional."""
        if self.compile_mode != "auto":
            return
        channels = self.model.in_channels * self.model.views
        for h, w in sizes:
            x = torch.empty((1, channels, h, w), device="meta")
            self.forward.plan(self._forward_shapes(x, self.runner.plan(x)))

    @staticmethod
    def _forward_shapes(x: torch.Tensor, cut: Cut) -> Counter[tuple[int, ...]]:
        """How many forwards of which network input shape running ``x`` as ``cut`` says takes."""
        n, c = int(x.shape[0]), int(x.shape[1])
        if cut.plan is None:
            return Counter({tuple(int(d) for d in x.shape): 1})
        th, tw = cut.plan.tile_size
        full, rest = divmod(cut.plan.tiles, max(cut.batch, 1))
        shapes: Counter[tuple[int, ...]] = Counter({(cut.batch * n, c, th, tw): full})
        if rest:
            shapes[(rest * n, c, th, tw)] += 1
        return shapes

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
        # forwards of this image not announced by plan_inputs: at least this image's count (auto)
        self.forward.begin(self._forward_shapes(x, self.runner.plan(x)) if self.compile_mode == "auto" else Counter())
        with torch.inference_mode():
            out, cut = self.runner.run(x.to(torch.float32), progress)
            out.clamp_(0.0, 1.0)
        return out, self._info(x, cut, time.perf_counter() - start)

    def _info(self, x: torch.Tensor, cut: Cut, seconds: float) -> RunInfo:
        path = ("fast" if self.fast else "reference") + ("+compiled" if self.forward.ran_compiled else "")
        info = RunInfo(device=str(self.device), precision=self.precision, path=path, seconds=seconds,
                       compile_seconds=self.forward.compile_seconds, batch_size=cut.batch, warnings=list(cut.notes),
                       tile_size=cut.tile_size, overlap=cut.overlap, tile_shape=(int(x.shape[-2]), int(x.shape[-1])),
                       notes=self.forward.take_notes())
        if self._native_note:
            info.notes.append(self._native_note)
            self._native_note = None
        if cut.plan is not None:
            info.tiles, info.grid, info.tile_shape = cut.plan.tiles, cut.plan.grid, cut.plan.tile_size
        return info

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
