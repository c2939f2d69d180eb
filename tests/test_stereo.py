"""Stereo strip tiling (full-width tiles of the one engine, :class:`~nafcli.inference.sizing.TiledRunner`
with the model's :class:`~nafcli.archs.Strips` mode): exactness against whole-image runs with the golden
NAFSSR models, the TLC-window boundary, planning from memory, the 2-D fallback."""

from __future__ import annotations

import pytest
import torch
from helpers.models import SHARED

from nafcli.archs import NAFSSRSpec, Strips
from nafcli.archs.nafssr.spec import (
    MIN_STRIP_ROWS,
    NAFSSR_WINDOW,
    default_overlap,
    estimate_bytes,
    receptive_field,
)
from nafcli.archs.tlc import local_mean
from nafcli.errors import DeviceError, UsageError
from nafcli.inference import sizing
from nafcli.inference.cut_options import parse_size
from nafcli.inference.sizing import Cut, TiledRunner
from nafcli.inference.tiling import AxisPlan, TilePlan, plan_spans, run_tiled

GOLDEN = SHARED / "reference" / "golden"
CPU = torch.device("cpu")


def _golden(name: str):
    if not (GOLDEN / f"{name}.pth").is_file():
        pytest.skip(f"{GOLDEN} is absent (../shared not checked out)")
    from safetensors.torch import load_file

    from nafcli.weights import load

    return load(weights=GOLDEN / f"{name}.pth"), load_file(str(GOLDEN / f"{name}.io.safetensors"))


def _mode(*, channels: int, num_blks: int, scale: int, tlc: bool = True) -> Strips:
    """The strip geometry of a NAFSSR of these hyperparameters (what the model's ``tiling`` gives)."""
    return NAFSSRSpec(up_scale=scale, width=channels, num_blks=num_blks).tiling(tlc=tlc)


def _plan(mode: Strips, height: int, width: int, *, tile: int | None, overlap: int | None) -> Cut:
    """How the runner cuts an ``height`` x ``width`` pair (only the shape matters: a meta tensor)."""
    runner = TiledRunner(lambda t: t, CPU, mode, scale=1, tile=tile, overlap=overlap)
    return runner.plan(torch.empty((1, 6, height, width), device="meta"))


@pytest.fixture
def budget(monkeypatch: pytest.MonkeyPatch):
    """Make ``auto`` plan for a given number of bytes on the CPU (instead of half the free RAM)."""

    def set_budget(nbytes: int) -> None:
        monkeypatch.setattr(sizing, "ram_available", lambda: int(nbytes / sizing.CPU_MEMORY_FRACTION))
        monkeypatch.setattr(sizing, "CPU_MEMORY_CEILING", max(sizing.CPU_MEMORY_CEILING, nbytes))

    return set_budget


def _exact(cut: Cut, margin: int) -> bool:
    """Full-width strips whose shared bands hold the receptive field twice: the result is the whole image's."""
    assert cut.plan is not None
    rows = cut.plan.rows
    bands = [rows.starts[i] + rows.tile - rows.starts[i + 1] for i in range(rows.count - 1)]
    return cut.plan.cols.count == 1 and all(band >= 2 * margin for band in bands)


@pytest.fixture(scope="module", params=["nafssr-small-x2", "nafssr-small-x4"])
def golden(request):
    return _golden(request.param)


def test_golden_whole_image_matches_reference(golden) -> None:
    model, io = golden
    with torch.inference_mode():
        out = model.module(io["input"])
    assert (out - io["output"]).abs().max().item() < 1e-4


@pytest.mark.parametrize("width", [150, 100])  # wider / narrower than the 135-column window
def test_strips_equal_whole_image_when_overlap_covers_receptive_field(golden, width: int) -> None:
    model, io = golden
    torch.manual_seed(1)
    height = 320
    # Real pixels: the golden input repeated to a tall pair, plus noise so no two strips look alike.
    x = io["input"].repeat(1, 1, height // io["input"].shape[2] + 1, width // io["input"].shape[3] + 1)
    x = (x[:, :, :height, :width] + 0.05 * torch.rand(1, 6, height, width)).contiguous()
    m = receptive_field(model.spec.num_blks)
    assert model.tiling.margin == m
    runner = TiledRunner(model.module, CPU, model.tiling, scale=model.scale, tile=2 * m + 40, overlap=2 * m)
    with torch.inference_mode():
        whole = model.module(x)
        strips, cut = runner.run(x)
    assert cut.count >= 3 and _exact(cut, m)
    assert strips.shape == whole.shape
    assert (strips - whole).abs().max().item() < 1e-4


def test_strips_differ_when_overlap_is_short() -> None:
    """The same check fails when the overlap is less than the receptive field: it can fail."""
    model, io = _golden("nafssr-small-x2")
    torch.manual_seed(2)
    x = torch.rand(1, 6, 300, 150)
    m = receptive_field(model.spec.num_blks)
    cut = _plan(model.tiling, 300, 150, tile=120, overlap=40)
    assert cut.count > 1 and not _exact(cut, m)
    # the engine on a plan of strips given by hand: full-width windows along the rows, one span of columns
    plan = TilePlan(plan_spans(300, 120, 40, m), plan_spans(150, 150, 0, 0))
    assert plan == cut.plan
    with torch.inference_mode():
        diff = (run_tiled(x, model.module, plan, scale=2) - model.module(x)).abs().max().item()
    assert diff > 1e-4


@pytest.mark.parametrize("width", [100, 150])
def test_tlc_mean_of_a_top_strip_needs_45_rows(width: int) -> None:
    """A strip cut from the top of a tall map computes the same TLC mean at its rows far from the cut
    only when it holds a full window height (45 rows); with 44 the window is clipped to the strip."""
    torch.manual_seed(3)
    rows = torch.arange(200, dtype=torch.float32)[:, None] / 200  # a vertical gradient, as in photos
    whole_map = torch.rand(1, 4, 200, width, dtype=torch.float32) + rows
    whole = local_mean(whole_map, NAFSSR_WINDOW)
    for h in (45, 46, 60):
        strip = local_mean(whole_map[:, :, :h], NAFSSR_WINDOW).expand(-1, -1, h, width)
        keep = h - NAFSSR_WINDOW[0] // 2  # rows whose window does not reach the cut
        torch.testing.assert_close(strip[:, :, :keep], whole[:, :, :keep], atol=1e-6, rtol=0)
    short = local_mean(whole_map[:, :, :44], NAFSSR_WINDOW).expand(-1, -1, 44, width)
    assert (short[:, :, :10] - whole[:, :, :10]).abs().max().item() > 1e-3


def test_receptive_field_and_default_overlap() -> None:
    # 3x3 intro + per block (3x3 conv2 + 22 rows of the 45-row TLC box) + 3x3 up
    assert receptive_field(3) == 3 * 23 + 2
    assert receptive_field(128) == 2946
    assert default_overlap(1) == 50  # exact for a 1-block model
    assert default_overlap(128) == 92  # capped: 23 rows dead zone each side + a 46-row blend
    # the strip mode of a model carries them
    mode = _mode(channels=16, num_blks=3, scale=4)
    assert (mode.margin, mode.default_overlap, mode.min_rows) == (receptive_field(3), default_overlap(3), 45)


def _strip_weights(axis: AxisPlan, scale: int) -> torch.Tensor:
    total = torch.zeros(axis.length * scale, dtype=torch.float64)
    for i, start in enumerate(axis.starts):
        total[start * scale : (start + axis.tile) * scale] += axis.weights(i, scale).double()
    return total


def test_weights_partition_unity() -> None:
    """Neighbouring weights are complementary: they sum to 1 everywhere, and each window is zero within
    the margin of its cut edges (the exact receptive field when the band holds it twice, else a quarter
    of the band)."""
    cases = [(300, 120, 40, 25, 2), (1000, 235, 92, 2946, 4), (90, 50, 10, 3, 1)]
    for length, size, ov, margin, scale in cases:
        sp = plan_spans(length, size, ov, margin)
        total = _strip_weights(sp, scale)
        torch.testing.assert_close(total, torch.ones_like(total), atol=1e-6, rtol=0)
        assert sp.starts[0] == 0 and sp.starts[-1] + sp.tile == length and sp.tile == size
        assert all(b <= a + size - ov for a, b in zip(sp.starts, sp.starts[1:], strict=False))
        for i in range(sp.count - 1):
            band = sp.starts[i] + size - sp.starts[i + 1]
            dead = (margin if band >= 2 * margin else band // 4) * scale
            assert dead > 0
            assert torch.all(sp.weights(i, scale)[len(sp.weights(i, scale)) - dead :] == 0)
            assert torch.all(sp.weights(i + 1, scale)[:dead] == 0)


def test_plan_tile_settings() -> None:
    g = _mode(channels=16, num_blks=3, scale=4)
    assert _plan(g, 300, 200, tile=0, overlap=None).count == 1
    assert _plan(g, 300, 200, tile=400, overlap=None).count == 1
    p = _plan(g, 300, 200, tile=100, overlap=30)
    assert p.plan is not None and p.plan.rows.tile == 100 and p.plan.rows.count == 4 and p.overlap == 30
    assert p.plan.cols.count == 1 and p.plan.cols.tile == 200  # full width
    p = _plan(g, 300, 200, tile=20, overlap=10)
    assert p.plan is not None and p.plan.rows.tile == MIN_STRIP_ROWS and "45" in p.notes[0]
    with pytest.raises(UsageError):
        _plan(g, 300, 200, tile=60, overlap=60)
    with pytest.raises(UsageError):
        parse_size("big", "--tile")
    # the default overlap never exceeds half a user's strip (it is never refused)
    assert _plan(g, 300, 200, tile=60, overlap=None).overlap == 30
    assert _plan(g, 300, 200, tile=200, overlap=None).overlap == default_overlap(3)


def test_plan_auto_from_memory_budget(budget) -> None:
    g = _mode(channels=128, num_blks=128, scale=4)
    whole = estimate_bytes(height=750, width=1000, channels=128, scale=4)
    budget(whole)
    assert _plan(g, 750, 1000, tile=None, overlap=None).count == 1
    budget(whole // 3)
    p = _plan(g, 750, 1000, tile=None, overlap=None)
    assert p.plan is not None and p.plan.cols.count == 1 and p.plan.rows.count > 1
    h = p.plan.rows.tile
    assert estimate_bytes(height=h, width=1000, channels=128, scale=4) <= whole // 3
    assert estimate_bytes(height=h + 1, width=1000, channels=128, scale=4) > whole // 3
    # tight memory: strips shrink to 90 rows and the overlap to half a strip (a user's, with a warning)
    budget(estimate_bytes(height=100, width=1000, channels=128, scale=4))
    p = _plan(g, 750, 1000, tile=None, overlap=80)
    assert p.plan is not None and p.plan.cols.count == 1
    assert p.plan.rows.tile == 100 and p.overlap == 50 and "reduced" in p.notes[0]


def test_plan_auto_falls_back_to_2d_tiles_for_very_wide_pairs(budget) -> None:
    g = _mode(channels=16, num_blks=3, scale=2)
    budget(estimate_bytes(height=142, width=400, channels=16, scale=2))
    p = _plan(g, 300, 2000, tile=None, overlap=None)
    assert p.plan is not None and p.plan.cols.count > 1
    assert p.plan.cols.overlap >= p.plan.cols.tile // 2
    assert len(p.notes) == 1 and "too wide" in p.notes[0]
    budget(1000)
    with pytest.raises(DeviceError):
        _plan(g, 300, 2000, tile=None, overlap=None)


def test_large_overlap_still_a_weighted_mean() -> None:
    """An overlap over half the strip makes windows beyond neighbours meet; the result stays a mean."""
    g = _mode(channels=16, num_blks=3, scale=1)
    runner = TiledRunner(lambda t: t * 2, CPU, g, scale=1, tile=100, overlap=90)
    x = torch.full((1, 6, 300, 20), 0.25)
    out, cut = runner.run(x)
    assert cut.count > 2
    torch.testing.assert_close(out, torch.full_like(out, 0.5))


def test_2d_fallback_runs_and_stays_close(budget) -> None:
    model, _io = _golden("nafssr-small-x4")
    torch.manual_seed(4)
    x = torch.rand(1, 6, 60, 700)
    budget(estimate_bytes(height=60, width=320, channels=16, scale=4))
    runner = TiledRunner(model.module, CPU, model.tiling, scale=4)
    with torch.inference_mode():
        out, cut = runner.run(x)
        whole = model.module(x)
    assert cut.plan is not None and cut.plan.cols.count > 1
    assert out.shape == whole.shape
    assert (out - whole).abs().mean().item() < 0.05


def test_restorer_pair_uses_strips() -> None:
    import numpy as np

    from nafcli.imaging import Image
    from nafcli.inference.restorer import Restorer

    model, _io = _golden("nafssr-small-x4")
    rng = np.random.default_rng(5)
    left = Image(pixels=rng.integers(0, 256, (200, 150, 3), dtype=np.uint8))
    right = Image(pixels=rng.integers(0, 256, (200, 150, 3), dtype=np.uint8))
    m = receptive_field(3)
    whole = Restorer(model, device="cpu", tile=0).restore_pair_images(left, right)
    assert whole.info.tiles == 1
    r = Restorer(model, device="cpu", tile=2 * m + 30, overlap=2 * m)
    done: list[tuple[int, int]] = []
    strips = r.restore_pair_images(left, right, progress=lambda a, b: done.append((a, b)))
    assert strips.info.tiles == 2 and strips.info.grid == (2, 1) and done == [(1, 2), (2, 2)]
    assert strips.info.warnings == []  # TLC on: strips are exact, nothing to say
    for a, b in zip(whole.images, strips.images, strict=True):
        assert a.pixels.shape == (800, 600, 3)
        assert np.abs(a.pixels.astype(int) - b.pixels.astype(int)).max() <= 1


def test_strips_without_tlc_say_they_are_not_exact() -> None:
    """Without TLC the channel attention averages over each strip: a run in several strips says so."""
    cut = _plan(_mode(channels=16, num_blks=3, scale=2, tlc=False), 300, 200, tile=100, overlap=30)
    assert cut.count > 1 and any("--tile 0" in n for n in cut.notes)
    assert _plan(_mode(channels=16, num_blks=3, scale=2, tlc=True), 300, 200, tile=100, overlap=30).notes == []


def test_span_shapes() -> None:
    one = plan_spans(100, 200, 10, 0)
    assert (one.starts, one.tile, one.count) == ((0,), 100, 1)
    with pytest.raises(ValueError, match="must be smaller"):
        plan_spans(100, 50, 50, 0)
