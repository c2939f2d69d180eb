"""Typed descriptions of the architectures and of a loaded model.

An *architecture spec* (:class:`NAFNetSpec`, :class:`NAFSSRSpec`) is the complete set of
hyperparameters; it is what the checkpoint detector returns and what a registry entry declares, so the
two can be compared. A *loaded model* (:class:`MonoModel`, :class:`StereoModel`) is a network with
weights plus the metadata that the pipeline and the tiler need, one documented field each (after
spandrel's ModelDescriptor). A stereo model is its own type, not a flag on a mono one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from .errors import InconsistentShapesError

if TYPE_CHECKING:  # torch stays unimported until a network is built (registry/CLI listing start fast)
    from torch import nn

    from .archs import NAFSSR, NAFNet


@dataclass(frozen=True)
class NAFNetSpec:
    """NAFNet / NAFNetLocal hyperparameters, named as in the authors' configs."""

    width: int
    enc_blk_nums: tuple[int, ...]
    middle_blk_num: int
    dec_blk_nums: tuple[int, ...]
    img_channel: int = 3

    arch: ClassVar[Literal["nafnet"]] = "nafnet"
    stereo: ClassVar[bool] = False

    @property
    def scale(self) -> int:
        return 1

    @property
    def size_multiple(self) -> int:
        return 2 ** len(self.enc_blk_nums)

    def config(self) -> dict[str, Any]:
        """The hyperparameters as the authors' configs (and our manifests) spell them."""
        return {
            "width": self.width,
            "enc_blk_nums": list(self.enc_blk_nums),
            "middle_blk_num": self.middle_blk_num,
            "dec_blk_nums": list(self.dec_blk_nums),
        }

    def build(self, *, tlc: bool) -> NAFNet:
        from .archs import NAFNet

        return NAFNet(
            width=self.width,
            enc_blk_nums=self.enc_blk_nums,
            middle_blk_num=self.middle_blk_num,
            dec_blk_nums=self.dec_blk_nums,
            img_channel=self.img_channel,
            tlc=tlc,
        )

    def describe(self) -> str:
        enc = ",".join(map(str, self.enc_blk_nums))
        dec = ",".join(map(str, self.dec_blk_nums))
        return f"NAFNet width {self.width}, blocks [{enc}]/{self.middle_blk_num}/[{dec}]"


@dataclass(frozen=True)
class NAFSSRSpec:
    """NAFSSR hyperparameters, named as in the authors' configs."""

    up_scale: int
    width: int
    num_blks: int
    img_channel: int = 3

    arch: ClassVar[Literal["nafssr"]] = "nafssr"
    stereo: ClassVar[bool] = True

    @property
    def scale(self) -> int:
        return self.up_scale

    @property
    def size_multiple(self) -> int:
        return 1

    def config(self) -> dict[str, Any]:
        return {"up_scale": self.up_scale, "width": self.width, "num_blks": self.num_blks}

    def build(self, *, tlc: bool) -> NAFSSR:
        from .archs import NAFSSR

        return NAFSSR(
            up_scale=self.up_scale,
            width=self.width,
            num_blks=self.num_blks,
            img_channel=self.img_channel,
            tlc=tlc,
        )

    def describe(self) -> str:
        return f"NAFSSR width {self.width}, {self.num_blks} blocks, x{self.up_scale}"


ArchSpec = NAFNetSpec | NAFSSRSpec


def spec_from_config(arch: str, config: dict[str, Any]) -> ArchSpec:
    """Build a spec from ``arch`` ("nafnet" | "nafssr") and a config dict (manifest / weights.toml).

    Raises ``ValueError`` (with the offending name) for unknown or missing hyperparameters; callers
    wrap it in their own error type.
    """
    if arch == "nafnet":
        allowed = {"width", "enc_blk_nums", "middle_blk_num", "dec_blk_nums", "img_channel"}
        _check_names(config, allowed, {"width", "enc_blk_nums", "middle_blk_num", "dec_blk_nums"})
        return NAFNetSpec(
            width=int(config["width"]),
            enc_blk_nums=tuple(int(n) for n in config["enc_blk_nums"]),
            middle_blk_num=int(config["middle_blk_num"]),
            dec_blk_nums=tuple(int(n) for n in config["dec_blk_nums"]),
            img_channel=int(config.get("img_channel", 3)),
        )
    if arch == "nafssr":
        allowed = {"up_scale", "width", "num_blks", "img_channel"}
        _check_names(config, allowed, {"up_scale", "width", "num_blks"})
        return NAFSSRSpec(
            up_scale=int(config["up_scale"]),
            width=int(config["width"]),
            num_blks=int(config["num_blks"]),
            img_channel=int(config.get("img_channel", 3)),
        )
    raise ValueError(f"unknown architecture {arch!r} (expected 'nafnet' or 'nafssr')")


def _check_names(config: dict[str, Any], allowed: set[str], required: set[str]) -> None:
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ValueError(f"unknown hyperparameter {unknown[0]!r}")
    missing = sorted(required - set(config))
    if missing:
        raise ValueError(f"missing hyperparameter {missing[0]!r}")


@dataclass
class LoadedModel:
    """A network with weights, in eval mode, plus what the pipeline needs to know about it."""

    #: the ``torch.nn.Module`` (NAFNet or NAFSSR), eval mode, on the CPU until the pipeline moves it
    module: nn.Module
    #: the hyperparameters it was built from
    spec: ArchSpec
    #: whether the TLC local mean replaces the global mean in the channel attention
    tlc: bool
    #: where the weights came from (a path or a model id), for messages
    source: str = ""
    #: registry id, when loaded through the registry
    model_id: str | None = None
    #: number of channels of one view (3 for RGB)
    in_channels: int = field(init=False)
    #: output side / input side
    scale: int = field(init=False)
    #: inputs are padded to a multiple of this inside the network (16 for the official NAFNets)
    size_multiple: int = field(init=False)

    stereo: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self.in_channels = self.spec.img_channel
        self.scale = self.spec.scale
        self.size_multiple = self.spec.size_multiple

    def set_tlc(self, enabled: bool) -> None:
        self.module.set_tlc(enabled)  # type: ignore[operator]
        self.tlc = enabled

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters())


@dataclass
class MonoModel(LoadedModel):
    """One image in, one image out (NAFNet: denoise, deblur)."""

    stereo: ClassVar[bool] = False


@dataclass
class StereoModel(LoadedModel):
    """A left/right pair in, a pair out (NAFSSR: stereo super-resolution). The module takes the two
    views concatenated on the channel axis."""

    stereo: ClassVar[bool] = True


def wrap(module: nn.Module, spec: ArchSpec, *, tlc: bool, source: str = "", model_id: str | None = None):
    """Wrap a built network in the descriptor type that fits its spec."""
    cls = StereoModel if spec.stereo else MonoModel
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return cls(module=module, spec=spec, tlc=tlc, source=source, model_id=model_id)


def expected_shapes(spec: ArchSpec) -> dict[str, tuple[int, ...]]:
    """State-dict keys and shapes of ``spec`` without allocating weights (meta device)."""
    import torch

    with torch.device("meta"):
        module = spec.build(tlc=False)
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def check_state_dict(spec: ArchSpec, state_dict: dict[str, Any], *, source: str) -> None:
    """Raise :class:`InconsistentShapesError` unless ``state_dict`` has exactly ``spec``'s keys/shapes."""
    expected = expected_shapes(spec)
    missing = [k for k in expected if k not in state_dict]
    if missing:
        raise InconsistentShapesError(
            f"{source}: tensor {missing[0]!r} is missing for {spec.describe()} ({len(missing)} missing)"
        )
    extra = [k for k in state_dict if k not in expected]
    if extra:
        raise InconsistentShapesError(
            f"{source}: unexpected tensor {extra[0]!r} for {spec.describe()} ({len(extra)} unexpected)"
        )
    for key, shape in expected.items():
        got = tuple(state_dict[key].shape)
        if got != shape:
            raise InconsistentShapesError(
                f"{source}: tensor {key!r} has shape {list(got)}, {spec.describe()} needs {list(shape)}"
            )
