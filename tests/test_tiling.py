"""The tiler: plans, weights, reflection, and exactness against whole-image runs (hypothesis)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from torch import nn

from nafcli.inference.tiling import plan_axis, plan_tiles, reflect_index, reflect_pad, run_tiled


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
    assume(padded > t > 2 * overlap + blend)  # several tiles (one tile: the next test)
    a = plan_axis(length, tile, overlap, blend, multiple, border)
    assert a.pad_before == a.pad_after == border
    assert a.count >= 2
    assert a.tile == t and t % multiple == 0  # equal tiles on the multiple
    assert a.starts[0] == 0 and a.starts[-1] + t == padded  # first and last tile on the edges
    steps = [b - a_ for a_, b in zip(a.starts, a.starts[1:], strict=False)]
    assert max(steps) - min(steps) <= 1  # evenly spaced
    assert all(t - s >= 2 * overlap + blend for s in steps)  # neighbours share the band
    # as few tiles as the band allows: one fewer would leave a gap
    n = len(a.starts)
    assert (n - 2) * (t - 2 * overlap - blend) + t < padded


@given(
    data=st.data(),
    tile=st.integers(1, 600),
    overlap=st.integers(0, 40),
    blend=st.integers(0, 40),
    multiple=st.sampled_from([1, 4, 16]),
)
@settings(max_examples=200, deadline=None)
def test_axis_that_fits_is_one_tile_of_exactly_its_length(data, tile, overlap, blend, multiple):
    """Whatever the overlap and blend, an (extended) axis no longer than the tile is one tile spanning it."""
    t = -(-tile // multiple) * multiple
    border = data.draw(st.integers(0, (t - 1) // 2))
    length = data.draw(st.integers(1, t - 2 * border))
    a = plan_axis(length, tile, overlap, blend, multiple, border)
    assert a.starts == (0,) and a.cuts == ()
    assert a.tile == length + 2 * border  # exactly the (extended) axis, not rounded to the multiple
    assert a.pad_before == a.pad_after == border
    assert torch.all(a.weights(0) == 1)


def test_tile_zero_is_one_tile():
    a = plan_axis(1000, 0, 16, 16, multiple=16)
    assert a.starts == (0,) and a.tile == 1000


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
        # the `overlap` context pixels of an inner side get nothing; at the image's edges a tile is the
        # only one there, so its weight is 1
        head, tail = w[: overlap * scale], w[len(w) - overlap * scale :]
        assert torch.all(head == (0.0 if i > 0 else 1.0)), f"tile {i}: left side"
        assert torch.all(tail == (0.0 if i < a.count - 1 else 1.0)), f"tile {i}: right side"
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


@given(length=st.integers(2, 10), before=st.integers(0, 100), after=st.integers(0, 100))
@settings(max_examples=100, deadline=None)
def test_reflect_index_any_pad(length, before, after):
    idx = reflect_index(length, before, after)
    assert len(idx) == length + before + after
    assert idx.min() >= 0 and idx.max() < length
    assert torch.equal(idx[before : before + length], torch.arange(length))
    assert torch.all((idx[1:] - idx[:-1]).abs() == 1)  # a mirror: neighbours stay neighbours


@given(before=st.integers(0, 100), after=st.integers(0, 100))
@settings(max_examples=30, deadline=None)
def test_reflect_index_of_one_pixel_replicates_it(before, after):
    idx = reflect_index(1, before, after)
    assert len(idx) == 1 + before + after
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
        plan = plan_tiles(h, w, tile, overlap, blend=blend, size_multiple=multiple)
        got = run_tiled(x, model, plan, scale=scale, batch_size=batch)
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
        got = run_tiled(x, model, plan, scale=scale)
        full = model(reflect_pad(x, plan))
    want = full[..., border * scale : (border + h) * scale, border * scale : (border + w) * scale]
    assert (got - want).abs().max().item() <= 1e-5


def test_overlap_below_the_receptive_field_is_not_exact():
    """The exactness test can fail: with too little context the tiles differ from the whole image."""
    model = conv_stack(4)
    x = torch.rand(1, 3, 92, 92, generator=torch.Generator().manual_seed(0))  # tiles share just 2 px
    with torch.no_grad():
        got = run_tiled(x, model, plan_tiles(92, 92, 32, 1, blend=0))
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
        out = run_tiled(x, fn, plan, batch_size=4, progress=lambda d, n: seen.append((d, n)), out_device="cpu")
    assert out.dtype == torch.float32 and out.device.type == "cpu"
    assert sum(calls) == plan.tiles and max(calls) == 4
    assert all(c == 4 for c in calls[:-1])
    assert seen[-1] == (plan.tiles, plan.tiles) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def _tiles_needed(length: int, tile: int, shared: int) -> float:
    """How many tiles of ``tile`` px sharing ``shared`` px with each neighbour cover ``length`` px."""
    if length <= tile:
        return 1
    if tile <= shared:
        return math.inf
    return 1 + math.ceil((length - tile) / (tile - shared))


@given(
    length=st.integers(1, 3000),
    tile=st.integers(64, 600),
    grow=st.floats(1.0, 2.0),
    overlap=st.integers(0, 20),
    multiple=st.sampled_from([1, 8, 16]),
)
@example(length=1000, tile=512, grow=1.0, overlap=16, multiple=16)  # no room to grow: 3 tiles of 512
@example(length=1000, tile=512, grow=1.25, overlap=16, multiple=16)  # grown: 2 tiles instead of 3
@example(length=600, tile=512, grow=1.25, overlap=16, multiple=16)  # grown to one tile of the axis
@example(length=1100, tile=512, grow=1.1, overlap=16, multiple=16)  # 563 px saves nothing: not grown
@settings(max_examples=200, deadline=None)
def test_max_tile_grows_tiles_only_to_save_tiles(length, tile, grow, overlap, multiple):
    loose = plan_axis(length, tile, overlap, overlap, multiple)
    max_tile = int(tile * grow)
    a = plan_axis(length, tile, overlap, overlap, multiple, max_tile=max_tile)
    # the fewest tiles any size up to max_tile (or the plain tile) allows, computed independently
    biggest = max(max_tile // multiple * multiple, loose.tile)
    assert a.count == min(loose.count, _tiles_needed(length, biggest, 3 * overlap))
    # tiles grow exactly when that saves tiles, and never beyond max_tile
    assert (a.tile > loose.tile) == (a.count < loose.count)
    assert a.tile <= max(loose.tile, max_tile)
    # one tile spans the axis exactly; several are equal, on the multiple, the last on the edge
    assert (a.count == 1) == (a.tile == length)
    assert a.starts[-1] + a.tile == length
    assert a.count == 1 or a.tile % multiple == 0


def test_grown_tiles_keep_exactness():
    model = conv_stack(3, 2)
    x = torch.rand(1, 3, 203, 311)
    plan = plan_tiles(203, 311, 64, 3, size_multiple=8, max_tile=90)
    assert plan.tile_size[0] > 64 and plan.tile_size[1] > 64
    with torch.no_grad():
        assert (run_tiled(x, model, plan, scale=2) - model(x)).abs().max().item() <= 1e-5
