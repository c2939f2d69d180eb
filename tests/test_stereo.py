"""Stereo strip tiling (nafcli.stereo): exactness against whole-image runs with the golden NAFSSR
models, the TLC-window boundary, planning from memory, the 2-D fallback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nafcli.archs.tlc import NAFSSR_WINDOW, local_mean
from nafcli.errors import DeviceError, UsageError
from nafcli.stereo import (
    MIN_STRIP_ROWS,
    Span,
    StereoGeometry,
    axis_weights,
    default_overlap,
    estimate_bytes,
    plan,
    receptive_field,
    run_strips,
    spans,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
GOLDEN = SHARED / "reference" / "golden"
CPU = torch.device("cpu")


def _golden(name: str):
    if not (GOLDEN / f"{name}.pth").is_file():
        pytest.skip(f"{GOLDEN} is absent (../shared not checked out)")
    from safetensors.torch import load_file

    from nafcli.checkpoint import load_model

    return load_model(GOLDEN / f"{name}.pth"), load_file(str(GOLDEN / f"{name}.io.safetensors"))


def _geometry(model) -> StereoGeometry:
    return StereoGeometry(channels=model.spec.width, num_blks=model.spec.num_blks, scale=model.spec.scale)


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
    p = plan(_geometry(model), height, width, tile=2 * m + 40, overlap=2 * m, device=CPU)
    assert p.count >= 3 and p.exact
    with torch.inference_mode():
        whole = model.module(x)
        strips = run_strips(model.module, x, p, scale=model.scale, device=CPU)
    assert strips.shape == whole.shape
    assert (strips - whole).abs().max().item() < 1e-4


def test_strips_differ_when_overlap_is_short() -> None:
    """The same check fails when the overlap is less than the receptive field: it can fail."""
    model, io = _golden("nafssr-small-x2")
    torch.manual_seed(2)
    x = torch.rand(1, 6, 300, 150)
    p = plan(_geometry(model), 300, 150, tile=120, overlap=40, device=CPU)
    assert p.count > 1 and not p.exact
    with torch.inference_mode():
        diff = (run_strips(model.module, x, p, scale=2, device=CPU) - model.module(x)).abs().max().item()
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


def test_weights_partition_unity() -> None:
    """Neighbouring weights are complementary: they sum to 1 wherever at most two windows meet."""
    cases = [(300, 120, 40, 25, 2), (1000, 235, 92, 2946, 4), (90, 50, 10, 3, 1)]
    for length, size, ov, margin, scale in cases:
        sp = spans(length, size, ov)
        total = torch.zeros(length * scale)
        for i, s in enumerate(sp):
            total[s.start * scale : s.stop * scale] += axis_weights(sp, i, margin, scale)
        torch.testing.assert_close(total, torch.ones_like(total), atol=1e-6, rtol=0)
        assert sp[0].start == 0 and sp[-1].stop == length
        assert all(b.start < a.stop - ov + 1 for a, b in zip(sp, sp[1:], strict=False))


def test_plan_tile_settings() -> None:
    g = StereoGeometry(channels=16, num_blks=3, scale=4)
    assert plan(g, 300, 200, tile=0, overlap=None, device=CPU).count == 1
    assert plan(g, 300, 200, tile=400, overlap=None, device=CPU).count == 1
    p = plan(g, 300, 200, tile=100, overlap=30, device=CPU)
    assert [s.stop - s.start for s in p.rows] == [100] * len(p.rows) and p.overlap == 30
    warnings: list[str] = []
    p = plan(g, 300, 200, tile=20, overlap=10, device=CPU, warn=warnings.append)
    assert p.rows[0].stop - p.rows[0].start == MIN_STRIP_ROWS and "45" in warnings[0]
    with pytest.raises(UsageError):
        plan(g, 300, 200, tile=60, overlap=60, device=CPU)
    with pytest.raises(UsageError):
        plan(g, 300, 200, tile="big", overlap=None, device=CPU)
    # the default overlap never exceeds half a user's strip (it is never refused)
    assert plan(g, 300, 200, tile=60, overlap=None, device=CPU).overlap == 30
    assert plan(g, 300, 200, tile=200, overlap=None, device=CPU).overlap == default_overlap(3)


def test_plan_auto_from_memory_budget() -> None:
    g = StereoGeometry(channels=128, num_blks=128, scale=4)
    whole = estimate_bytes(height=750, width=1000, channels=128, scale=4)
    assert plan(g, 750, 1000, tile="auto", overlap=None, device=CPU, budget=whole).count == 1
    p = plan(g, 750, 1000, tile="auto", overlap=None, device=CPU, budget=whole // 3)
    assert len(p.cols) == 1 and len(p.rows) > 1
    h = p.rows[0].stop - p.rows[0].start
    assert estimate_bytes(height=h, width=1000, channels=128, scale=4) <= whole // 3
    assert estimate_bytes(height=h + 1, width=1000, channels=128, scale=4) > whole // 3
    # tight memory: strips shrink to 90 rows and the overlap to half a strip (a user's, with a warning)
    warnings: list[str] = []
    tight = estimate_bytes(height=100, width=1000, channels=128, scale=4)
    p = plan(g, 750, 1000, tile="auto", overlap=80, device=CPU, budget=tight, warn=warnings.append)
    assert len(p.cols) == 1 and p.rows[0].stop == 100 and p.overlap == 50 and "reduced" in warnings[0]


def test_plan_auto_falls_back_to_2d_tiles_for_very_wide_pairs() -> None:
    g = StereoGeometry(channels=16, num_blks=3, scale=2)
    warnings: list[str] = []
    budget = estimate_bytes(height=142, width=400, channels=16, scale=2)
    p = plan(g, 300, 2000, tile="auto", overlap=None, device=CPU, budget=budget, warn=warnings.append)
    assert len(p.cols) > 1 and p.col_overlap >= (p.cols[0].stop - p.cols[0].start) // 2
    assert len(warnings) == 1 and "too wide" in warnings[0]
    with pytest.raises(DeviceError):
        plan(g, 300, 2000, tile="auto", overlap=None, device=CPU, budget=1000)


def test_large_overlap_still_a_weighted_mean() -> None:
    """An overlap over half the strip makes windows beyond neighbours meet; the result stays a mean."""
    g = StereoGeometry(channels=16, num_blks=3, scale=1)
    p = plan(g, 300, 20, tile=100, overlap=90, device=CPU)
    x = torch.full((1, 6, 300, 20), 0.25)
    out = run_strips(lambda t: t * 2, x, p, scale=1, device=CPU)
    torch.testing.assert_close(out, torch.full_like(out, 0.5))


def test_2d_fallback_runs_and_stays_close() -> None:
    model, _io = _golden("nafssr-small-x4")
    torch.manual_seed(4)
    x = torch.rand(1, 6, 60, 700)
    budget = estimate_bytes(height=60, width=320, channels=16, scale=4)
    p = plan(_geometry(model), 60, 700, tile="auto", overlap=None, device=CPU, budget=budget)
    assert len(p.cols) > 1
    with torch.inference_mode():
        out = run_strips(model.module, x, p, scale=4, device=CPU)
        whole = model.module(x)
    assert out.shape == whole.shape
    assert (out - whole).abs().mean().item() < 0.05


def test_restorer_pair_uses_strips(tmp_path) -> None:
    import numpy as np

    from nafcli.imageio import Image
    from nafcli.pipeline import Restorer

    model, _io = _golden("nafssr-small-x4")
    rng = np.random.default_rng(5)
    left = Image(pixels=rng.integers(0, 256, (200, 150, 3), dtype=np.uint8))
    right = Image(pixels=rng.integers(0, 256, (200, 150, 3), dtype=np.uint8))
    m = receptive_field(3)
    whole = Restorer(model, device="cpu", tile=0).restore_image_pair(left, right)
    r = Restorer(model, device="cpu", tile=2 * m + 30, overlap=2 * m)
    done: list[tuple[int, int]] = []
    strips = r.restore_image_pair(left, right, progress=lambda a, b: done.append((a, b)))
    assert r.last_run.tiles == 2 and done == [(1, 2), (2, 2)]
    for a, b in zip(whole, strips, strict=True):
        assert a.pixels.shape == (800, 600, 3)
        assert np.abs(a.pixels.astype(int) - b.pixels.astype(int)).max() <= 1


def test_span_shapes() -> None:
    assert spans(100, 200, 10) == (Span(0, 100),)
    with pytest.raises(UsageError):
        spans(100, 50, 50)
