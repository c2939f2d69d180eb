"""The tiler: plans, weights, reflection, and exactness against whole-image runs (hypothesis)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from nafcli.tiling import plan_axis, plan_tiles, reflect_index, reflect_pad, run_tiled


def conv_stack(radius: int, scale: int = 1, channels: int = 4, seed: int = 0) -> nn.Module:
    """``radius`` 3x3 convolutions (receptive-field radius = ``radius`` input pixels), then PixelShuffle."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    cin = 3
    for k in range(radius):
        cout = 3 * scale * scale if k == radius - 1 else channels
        layers.append(nn.Conv2d(cin, cout, 3, padding=1))
        if k < radius - 1:
            layers.append(nn.GELU())
        cin = cout
    if scale > 1:
        layers.append(nn.PixelShuffle(scale))
    return nn.Sequential(*layers).eval()


# -- plans ------------------------------------------------------------------------------------------


@given(
    length=st.integers(1, 3000),
    tile=st.integers(1, 600),
    overlap=st.integers(0, 40),
    blend=st.integers(0, 40),
    multiple=st.sampled_from([1, 4, 16]),
    border=st.integers(0, 20),
)
@settings(max_examples=300, deadline=None)
def test_axis_plan_shape(length, tile, overlap, blend, multiple, border):
    t = -(-tile // multiple) * multiple
    padded = length + 2 * border
    assume(t > 2 * overlap + blend or padded <= t)
    a = plan_axis(length, tile, overlap, blend, multiple, border)
    assert a.pad_before == a.pad_after == border
    if padded <= t:
        assert a.starts == (0,) and a.tile == padded  # one tile, exactly the (extended) axis
        return
    assert a.tile == t and t % multiple == 0  # equal tiles on the multiple
    assert a.starts[0] == 0 and a.starts[-1] + t == padded  # first and last tile on the edges
    steps = [b - a_ for a_, b in zip(a.starts, a.starts[1:], strict=False)]
    assert max(steps) - min(steps) <= 1  # evenly spaced
    assert all(t - s >= 2 * overlap + blend for s in steps)  # neighbours share the band
    # as few tiles as the band allows: one fewer would leave a gap
    n = len(a.starts)
    assert n == 1 or (n - 2) * (t - 2 * overlap - blend) + t < padded


@given(
    length=st.integers(1, 700),
    tile=st.integers(8, 200),
    overlap=st.integers(0, 12),
    blend=st.integers(0, 12),
    scale=st.sampled_from([1, 2, 4]),
)
@settings(max_examples=200, deadline=None)
def test_weights_partition_unity_flat_inside_zero_in_context(length, tile, overlap, blend, scale):
    assume(tile > 2 * overlap + blend)
    a = plan_axis(length, tile, overlap, blend)
    total = torch.zeros((a.starts[-1] + a.tile) * scale, dtype=torch.float64)
    for i, s in enumerate(a.starts):
        w = a.weights(i, scale).double()
        assert w.min() >= 0 and w.max() <= 1 + 1e-7
        total[s * scale : (s + a.tile) * scale] += w
        if i > 0:  # the first `overlap` context pixels of an inner side get nothing
            assert torch.all(w[: overlap * scale] == 0)
        if i < a.count - 1:
            assert torch.all(w[(a.tile - overlap) * scale :] == 0)
        # flat 1 away from the cross-fades
        lo = (a.cuts[i - 1] - s + blend / 2) * scale if i > 0 else 0
        hi = (a.cuts[i] - s - blend / 2) * scale if i < a.count - 1 else a.tile * scale
        inside = w[math.ceil(lo) : math.floor(hi)]
        assert torch.all(inside == 1)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-6)


def test_cross_fade_is_a_raised_cosine():
    a = plan_axis(100, 60, overlap=4, blend=8)
    assert a.count == 2
    w = a.weights(0)
    c = a.cuts[0] - a.starts[0]
    x = torch.arange(a.tile) + 0.5
    t = ((x - (c - 4)) / 8).clamp(0, 1)
    assert torch.allclose(w, (0.5 + 0.5 * torch.cos(math.pi * t)).float(), atol=1e-6)
    band = w[int(c - 4) : int(c + 4)]
    assert torch.all(band[1:] < band[:-1])  # strictly decreasing across the band


def test_tile_must_hold_the_band():
    with pytest.raises(ValueError, match="larger than"):
        plan_axis(1000, 32, overlap=16, blend=16)


def test_plan_reports_grid_and_tile_size():
    p = plan_tiles(1000, 3000, 512, 16, size_multiple=16)
    assert p.tile_size == (512, 512)
    assert p.grid == (3, 7) and p.tiles == 21
    assert "3x7 tiles of 512x512" in p.describe()
    strips = plan_tiles(1000, 3000, (200, 0), (8, 0))  # full-width strips, as a stereo model needs
    assert strips.grid[1] == 1 and strips.tile_size == (200, 3000)


# -- reflection ---------------------------------------------------------------------------------------


@given(length=st.integers(2, 40), before=st.integers(0, 39), after=st.integers(0, 39))
@settings(max_examples=100, deadline=None)
def test_reflect_index_matches_torch_reflect_where_torch_can(length, before, after):
    assume(before < length and after < length)
    x = torch.arange(length, dtype=torch.float32)[None, None]
    want = torch.nn.functional.pad(x, (before, after), mode="reflect")[0, 0].long()
    assert torch.equal(reflect_index(length, before, after), want)


@given(length=st.integers(1, 10), before=st.integers(0, 100), after=st.integers(0, 100))
@settings(max_examples=100, deadline=None)
def test_reflect_index_any_pad(length, before, after):
    idx = reflect_index(length, before, after)
    assert len(idx) == length + before + after
    assert idx.min() >= 0 and idx.max() < length
    assert torch.equal(idx[before : before + length], torch.arange(length))
    if length > 1:  # a mirror: neighbours stay neighbours
        assert torch.all((idx[1:] - idx[:-1]).abs() == 1)
    else:
        assert torch.all(idx == 0)


# -- exactness -----------------------------------------------------------------------------------------

SIZES = st.one_of(
    st.sampled_from([(1, 1), (15, 17), (2, 300), (300, 2), (1, 257), (129, 1)]),
    st.tuples(st.integers(1, 120), st.integers(1, 120)),
)


@given(
    size=SIZES,
    radius=st.integers(1, 4),
    extra=st.integers(0, 4),
    blend=st.integers(0, 6),
    tile=st.integers(8, 64),
    scale=st.sampled_from([1, 2, 4]),
    multiple=st.sampled_from([1, 4, 8]),
    batch=st.integers(1, 5),
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_tiled_equals_whole_image(size, radius, extra, blend, tile, scale, multiple, batch):
    """A model of receptive-field radius r, overlap >= r: tiled output == whole-image output."""
    h, w = size
    overlap = radius + extra
    assume(-(-tile // multiple) * multiple > 2 * overlap + blend)
    model = conv_stack(radius, scale, seed=radius * 10 + scale)
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(h * 1000 + w))
    with torch.no_grad():
        got = run_tiled(x, model, tile=tile, overlap=overlap, blend=blend, scale=scale,
                        size_multiple=multiple, batch_size=batch)
        want = model(x)  # no border context: border tiles see the image edge as the whole image does
    assert got.shape == want.shape == (2, 3, h * scale, w * scale)
    assert (got - want).abs().max().item() <= 1e-5


@given(
    size=SIZES,
    radius=st.integers(1, 3),
    border=st.integers(1, 12),
    tile=st.integers(16, 48),
    scale=st.sampled_from([1, 2, 4]),
)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_tiled_with_reflected_border_equals_whole_padded_image(size, radius, border, tile, scale):
    h, w = size
    model = conv_stack(radius, scale)
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h + 7 * w))
    plan = plan_tiles(h, w, tile, radius, border=border, size_multiple=8)
    with torch.no_grad():
        got = run_tiled(x, model, tile=0, plan=plan, scale=scale)
        full = model(reflect_pad(x, plan))
    want = full[..., border * scale : (border + h) * scale, border * scale : (border + w) * scale]
    assert (got - want).abs().max().item() <= 1e-5


def test_overlap_below_the_receptive_field_is_not_exact():
    """The exactness test can fail: with too little context the tiles differ from the whole image."""
    model = conv_stack(4)
    x = torch.rand(1, 3, 92, 92, generator=torch.Generator().manual_seed(0))  # tiles share just 2 px
    with torch.no_grad():
        got = run_tiled(x, model, tile=32, overlap=1, blend=0)
        want = model(x)
    assert (got - want).abs().max().item() > 1e-3


def test_progress_and_batches_and_output_device():
    model = conv_stack(2)
    calls: list[int] = []
    seen: list[tuple[int, int]] = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        calls.append(t.shape[0])
        return model(t).half()  # a lower-precision output is accumulated in float32

    x = torch.rand(1, 3, 90, 130)
    plan = plan_tiles(90, 130, 40, 2)
    with torch.no_grad():
        out = run_tiled(x, fn, tile=40, overlap=2, batch_size=4, progress=lambda d, n: seen.append((d, n)),
                        out_device="cpu")
    assert out.dtype == torch.float32 and out.device.type == "cpu"
    assert sum(calls) == plan.tiles and max(calls) == 4
    assert all(c == 4 for c in calls[:-1])
    assert seen[-1] == (plan.tiles, plan.tiles) and [d for d, _ in seen] == sorted(d for d, _ in seen)


@given(
    length=st.integers(1, 3000),
    tile=st.integers(64, 600),
    grow=st.floats(1.0, 2.0),
    overlap=st.integers(0, 20),
    multiple=st.sampled_from([1, 8, 16]),
)
@settings(max_examples=200, deadline=None)
def test_max_tile_grows_tiles_only_to_save_tiles(length, tile, grow, overlap, multiple):
    loose = plan_axis(length, tile, overlap, overlap, multiple)
    max_tile = int(tile * grow)
    a = plan_axis(length, tile, overlap, overlap, multiple, max_tile=max_tile)
    assert a.count <= loose.count
    if a.count == 1:
        assert a.tile == length or a.tile == loose.tile
        return
    assert loose.tile <= a.tile <= max(loose.tile, max_tile)
    assert a.tile % multiple == 0 and a.starts[-1] + a.tile == length
    if a.tile > loose.tile:  # grown: no tile of at most max_tile covers the axis with fewer tiles
        fewer, biggest = a.count - 1, max_tile // multiple * multiple
        assert fewer * biggest - (fewer - 1) * 3 * overlap < length


def test_grown_tiles_keep_exactness():
    model = conv_stack(3, 2)
    x = torch.rand(1, 3, 203, 311)
    plan = plan_tiles(203, 311, 64, 3, size_multiple=8, max_tile=90)
    assert plan.tile_size[0] > 64 and plan.tile_size[1] > 64
    with torch.no_grad():
        assert (run_tiled(x, model, tile=0, plan=plan, scale=2) - model(x)).abs().max().item() <= 1e-5
