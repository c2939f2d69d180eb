"""State dicts against specs: the exact keys and shapes a spec has, random weights in the authors' layout,
and a built network wrapped in its descriptor."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import InconsistentShapesError
from .descriptor import ArchSpec, LoadedModel


def expected_shapes(spec: ArchSpec) -> dict[str, tuple[int, ...]]:
    """State-dict keys and shapes of ``spec`` without allocating weights (meta device)."""
    with torch.device("meta"):
        module = spec.build(tlc=False)
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def check_state_dict(spec: ArchSpec, state_dict: Mapping[str, Any], *, source: str) -> None:
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


def describe(
    module: nn.Module, spec: ArchSpec, *, tlc: bool, source: str = "", model_id: str | None = None,
    task: str | None = None,
) -> LoadedModel:
    """Wrap a built network in the descriptor type of its spec, in eval mode, without gradients."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return spec.descriptor(module=module, spec=spec, tlc=tlc, source=source, model_id=model_id, task=task)


def random_weights(spec: ArchSpec, *, tlc: bool, seed: int = 0) -> nn.Module:
    """A network of ``spec`` with random weights that exercise every path.

    The default initialisation leaves beta/gamma at zero (every block an identity); here they, and the
    LayerNorm affines, get random values of the size trained models have, so timings and precision
    figures are those of a real network.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the default initialisation draws from the global generator
        module = spec.build(tlc=tlc)
    with torch.no_grad():
        for name, p in module.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("beta", "gamma"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
            elif ".norm" in name and leaf == "weight":
                p.copy_(1 + torch.randn(p.shape, generator=gen) * 0.2)
            elif ".norm" in name and leaf == "bias":
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return module
