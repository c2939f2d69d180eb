"""The networks and what nafcli knows of them, one package per architecture (after spandrel).

Each package (``nafnet/``, ``nafssr/``) holds the reference network (``net``), its fast rewrite (``fast``),
its typed spec with the tiling geometry (``spec``) and the detection from state-dict keys (``detect``).
Adding an architecture is one such folder plus one entry in :data:`ARCHITECTURES`.

Importing this package does not import torch: the specs build their networks on demand.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import UnknownArchitectureError
from . import nafnet, nafssr
from .descriptor import (
    Architecture,
    ArchSpec,
    LoadedModel,
    MonoModel,
    StereoModel,
    Strips,
    Tiles,
    TilingMode,
)
from .keys import intro_channels
from .nafnet import NAFNetSpec
from .nafssr import NAFSSRSpec

#: every architecture nafcli knows, in detection order
ARCHITECTURES: tuple[Architecture, ...] = (nafnet.ARCHITECTURE, nafssr.ARCHITECTURE)


def get(name: str) -> Architecture:
    """The architecture called ``name``; ``ValueError`` naming the known ones otherwise."""
    for arch in ARCHITECTURES:
        if arch.name == name:
            return arch
    known = " or ".join(repr(a.name) for a in ARCHITECTURES)
    raise ValueError(f"unknown architecture {name!r} (expected {known})")


def architecture_of(spec: ArchSpec) -> Architecture:
    return get(spec.arch)


def spec_from_config(arch: str, config: Mapping[str, Any]) -> ArchSpec:
    """Build a spec from ``arch`` and a config dict (manifest / weights.toml). ``ValueError`` (naming the
    offending hyperparameter) for unknown or missing ones; callers wrap it in their own error type."""
    return get(arch).spec_from_config(config)


def detect(state_dict: Mapping[str, Any], *, source: str = "state dict") -> ArchSpec:
    """The architecture and hyperparameters that the key names and shapes describe.

    Only the hyperparameters are read; :func:`nafcli.archs.state_dict.check_state_dict` then checks every
    tensor against them.
    """
    for arch in ARCHITECTURES:
        spec = arch.detect(state_dict, source)
        if spec is not None:
            return spec
    intro_channels(state_dict, source)  # names the missing 'intro' when that is the reason
    raise UnknownArchitectureError(f"{source}: unknown architecture (neither NAFNet nor NAFSSR keys)")


__all__ = [
    "ARCHITECTURES",
    "ArchSpec",
    "Architecture",
    "LoadedModel",
    "MonoModel",
    "NAFNetSpec",
    "NAFSSRSpec",
    "StereoModel",
    "Strips",
    "Tiles",
    "TilingMode",
    "architecture_of",
    "detect",
    "get",
    "spec_from_config",
]
