"""What the rest of nafcli knows of an architecture and of a loaded model, typed, one field each.

Every architecture package (``nafnet/``, ``nafssr/``) describes itself with an :class:`Architecture`: its
name, its spec type (the hyperparameters), the tasks it serves and a detector that reads a state dict. A
spec knows how to build the reference network, its fast rewrite, and how images must be cut for it
(:class:`Tiles` or :class:`Strips`): that is the one place where an architecture's geometry is known, so
the tiling engine and the pipeline never ask "is this stereo?".

A *loaded model* (:class:`MonoModel`, :class:`StereoModel`, after spandrel's ModelDescriptor) is a network
with weights plus that metadata. A stereo model is its own type: it takes two views.

Nothing here imports torch, so listing models and parsing the registry stay fast.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from torch import dtype as TorchDtype
    from torch import nn


@dataclass(frozen=True)
class Tiles:
    """Cut images into 2-D tiles (a network whose every output pixel sees a bounded neighbourhood)."""

    #: the network pads its input to a multiple of this; tiles are multiples of it
    size_multiple: int
    #: automatic tiles are at least this large when memory allows (TLC: its window plus a margin; 0: none)
    min_tile: int
    #: activation bytes per input pixel on the CPU (for the automatic tile size)
    cpu_bytes_per_pixel: float


@dataclass(frozen=True)
class Strips:
    """Cut images into full-width strips only (a network that attends along whole rows)."""

    #: rows of context, each side, that make a strip's output row exact (the vertical receptive field)
    margin: int
    #: the least strip height whose statistics take the same form as the whole image's
    min_rows: int
    #: the least strip height ``auto`` plans before it falls back to 2-D tiles
    min_auto_rows: int
    #: the least tile width of that fallback
    min_cols: int
    #: rows shared by neighbouring strips when the user gives none
    default_overlap: int
    #: peak bytes of one forward pass on (height, width, batch) input
    bytes_for: Callable[[int, int, int], int]
    #: said once when an image is cut into several strips and the result cannot be exact (None: it can)
    inexact_note: str | None = None


TilingMode = Tiles | Strips


class ArchSpec(Protocol):
    """The hyperparameters of one architecture (a frozen dataclass per architecture)."""

    arch: ClassVar[str]
    #: the loaded-model type of this architecture (:class:`MonoModel` or :class:`StereoModel`)
    descriptor: ClassVar[type[LoadedModel]]
    img_channel: int

    @property
    def scale(self) -> int: ...

    @property
    def size_multiple(self) -> int: ...

    @property
    def width(self) -> int: ...

    def config(self) -> dict[str, Any]: ...

    def describe(self) -> str: ...

    def build(self, *, tlc: bool) -> nn.Module: ...

    def fast(self, module: nn.Module, *, dtype: TorchDtype, fold_sca: bool = False) -> nn.Module: ...

    def tiling(self, *, tlc: bool) -> TilingMode: ...


@dataclass(frozen=True)
class Architecture:
    """One architecture package, as registered in :data:`nafcli.archs.ARCHITECTURES`."""

    #: the name weights.toml and the manifests use ("nafnet", "nafssr")
    name: str
    #: the spec dataclass; its fields are the hyperparameters
    spec: type
    #: the tasks its weights are trained for; the first one decides defaults when no task is given
    tasks: tuple[str, ...]
    #: reads a state dict: the spec it describes, None when the keys are another architecture's
    detect: Callable[[Mapping[str, Any], str], ArchSpec | None]

    @property
    def hyperparameters(self) -> frozenset[str]:
        return frozenset(f.name for f in fields(self.spec))

    def spec_from_config(self, config: Mapping[str, Any]) -> ArchSpec:
        """Build a spec from a config dict (manifest, weights.toml); ``ValueError`` names a wrong key."""
        unknown = sorted(set(config) - self.hyperparameters)
        if unknown:
            raise ValueError(f"unknown hyperparameter {unknown[0]!r}")
        required = {f.name for f in fields(self.spec) if f.default is MISSING and f.default_factory is MISSING}
        missing = sorted(required - set(config))
        if missing:
            raise ValueError(f"missing hyperparameter {missing[0]!r}")
        values = {k: tuple(int(n) for n in v) if isinstance(v, list | tuple) else int(v) for k, v in config.items()}
        return self.spec(**values)


@dataclass
class LoadedModel:
    """A network with weights, in eval mode, plus what the pipeline needs to know about it."""

    #: images per call: 1, or 2 for a stereo pair (concatenated on the channel axis)
    views: ClassVar[int] = 1

    #: the ``torch.nn.Module`` (reference network), eval mode, on the CPU until the pipeline moves it
    module: nn.Module
    #: the hyperparameters it was built from
    spec: ArchSpec
    #: whether the TLC local mean replaces the global mean in the channel attention
    tlc: bool
    #: where the weights came from (a path or a model id), for messages
    source: str = ""
    #: registry id, when loaded through the registry
    model_id: str | None = None
    #: the task the weights were trained for, when known (registry entry or the caller's)
    task: str | None = None
    #: what the user should know about these weights, one line each (e.g. trained for another task); the
    #: library never prints: the workflows pass them to their events, the CLI shows them
    warnings: list[str] = field(default_factory=list)
    #: number of channels of one view (3 for RGB)
    in_channels: int = field(init=False)
    #: output side / input side
    scale: int = field(init=False)

    def __post_init__(self) -> None:
        self.in_channels = self.spec.img_channel
        self.scale = self.spec.scale

    @property
    def tiling(self) -> TilingMode:
        """How images are cut for this model with its current TLC setting."""
        return self.spec.tiling(tlc=self.tlc)

    @property
    def label(self) -> str:
        """The name shown to users: the registry id, else the file."""
        return self.model_id or self.source

    def set_tlc(self, enabled: bool) -> None:
        self.module.set_tlc(enabled)  # type: ignore[operator]
        self.tlc = enabled

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters())


@dataclass
class MonoModel(LoadedModel):
    """One image in, one image out (NAFNet: denoise, deblur)."""

    views: ClassVar[int] = 1


@dataclass
class StereoModel(LoadedModel):
    """A left/right pair in, a pair out (NAFSSR: stereo super-resolution). The module takes the two
    views concatenated on the channel axis."""

    views: ClassVar[int] = 2
