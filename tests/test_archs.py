"""Architectures: every official configuration has exactly the authors' keys and shapes; TLC windows
follow from the configuration."""

from __future__ import annotations

import json

import pytest
import torch
from helpers.models import SHARED

from nafcli.archs import spec_from_config
from nafcli.archs.nafnet.net import NAFNet
from nafcli.archs.nafnet.spec import nafnet_windows
from nafcli.archs.nafssr.spec import NAFSSR_WINDOW
from nafcli.archs.state_dict import expected_shapes
from nafcli.archs.tlc import local_mean

MANIFESTS = sorted((SHARED / "reference" / "manifests").glob("*.json"))


def test_there_are_thirteen_manifests(shared):
    assert len(MANIFESTS) == 13


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.stem)
def test_official_config_has_the_authors_keys_and_shapes(manifest):
    m = json.loads(manifest.read_text())
    arch = "nafssr" if m["official_class"] == "NAFSSR" else "nafnet"
    spec = spec_from_config(arch, m["config"])
    shapes = expected_shapes(spec)
    want = [(k, tuple(s)) for k, s in m["state_dict"]]
    assert list(shapes.items()) == want
    assert sum(int(torch.Size(s).numel()) for s in shapes.values()) == m["params"]


def test_tlc_windows_follow_the_configuration():
    assert nafnet_windows(4) == [(384, 384), (192, 192), (96, 96), (48, 48), (24, 24)]
    assert NAFSSR_WINDOW == (45, 135)
    net = NAFNet(width=8, enc_blk_nums=[1, 1, 1, 2], middle_blk_num=1, dec_blk_nums=[1, 1, 1, 1], tlc=True)
    # encoders at levels 0..3, middle at 4, decoders 3..0
    assert net.encoders[3][1].sca[0].window == (48, 48)
    assert net.middle_blks[0].sca[0].window == (24, 24)
    assert net.decoders[0][0].sca[0].window == (48, 48)
    assert net.decoders[3][0].sca[0].window == (384, 384)
    net.set_tlc(False)
    assert all(blk.sca[0].window is None for seq in net.encoders for blk in seq)


def _local_mean_by_pooling(x: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """The TLC rule written independently: explicit avg_pool2d + replicate padding, in float64."""
    h, w = x.shape[-2:]
    k1, k2 = window
    if k1 >= h and k2 >= w:
        return x.double().mean(dim=(-2, -1), keepdim=True)
    k1, k2 = min(h, k1), min(w, k2)
    pooled = torch.nn.functional.avg_pool2d(x.double(), (k1, k2), stride=1)
    _h, _w = pooled.shape[-2:]
    rows = [pooled[..., :1, :]] * ((h - _h) // 2) + [pooled] + [pooled[..., -1:, :]] * ((h - _h + 1) // 2)
    pooled = torch.cat(rows, dim=-2)
    cols = [pooled[..., :1]] * ((w - _w) // 2) + [pooled] + [pooled[..., -1:]] * ((w - _w + 1) // 2)
    return torch.cat(cols, dim=-1)


@pytest.mark.parametrize(
    "shape,window",
    [((13, 17), (5, 7)), ((13, 17), (20, 4)), ((9, 30), (4, 40)), ((6, 6), (6, 6)), ((6, 6), (8, 8)),
     ((1, 12), (3, 3)), ((12, 1), (3, 5))],
)
def test_local_mean_follows_the_rule(shape, window):
    torch.manual_seed(1)
    x = torch.rand(2, 3, *shape)
    got = local_mean(x, window)
    want = _local_mean_by_pooling(x, window)
    assert got.shape == want.shape
    assert (got.double() - want).abs().max().item() < 1e-6


def test_local_mean_stays_accurate_on_a_large_map():
    """4000x3000 float32 in [0, 1]: within 1e-5 of float64 (a float32 integral image drifts)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 3000, 4000, generator=g)
    window = (384, 384)
    got = local_mean(x, window).double()
    xd = x.double()
    s = torch.nn.functional.pad(xd.cumsum(-1).cumsum(-2), (1, 0, 1, 0))
    k1, k2 = window
    box = (s[..., k1:, k2:] + s[..., :-k1, :-k2] - s[..., :-k1, k2:] - s[..., k1:, :-k2]) / (k1 * k2)
    _h, _w = box.shape[-2:]
    pad = ((4000 - _w) // 2, (4000 - _w + 1) // 2, (3000 - _h) // 2, (3000 - _h + 1) // 2)
    want = torch.nn.functional.pad(box, pad, mode="replicate")
    assert (got - want).abs().max().item() <= 1e-5
