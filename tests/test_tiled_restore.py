"""Tiling with real NAFNet models and photos: no seams; auto sizes; out-of-memory retries; the CLI options."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers.models import SHARED
from typer.testing import CliRunner

from nafcli.archs import Tiles
from nafcli.cli.main import app
from nafcli.errors import DeviceError, UsageError
from nafcli.inference.memory import mem_available
from nafcli.inference.restorer import Restorer
from nafcli.inference.sizing import MIN_TILE, TiledRunner, tile_for_budget
from nafcli.inference.tiling import plan_tiles, run_tiled
from nafcli.weights import load

runner = CliRunner()


def _photos() -> list[tuple[str, np.ndarray]]:
    import skimage.data

    # crops keep the test fast; they still hold 3x3 tiles of 128 px
    out = [("astronaut", skimage.data.astronaut()[64:384, 64:384]), ("coffee", skimage.data.coffee()[:320, 200:520])]
    noisy = SHARED / "samples" / "noisy.png"
    if noisy.is_file():
        out.append(("noisy.png", cv2.imread(str(noisy))[:, :, ::-1]))
    return out


def _junction_ratio(y: np.ndarray, plan, axis: int) -> float:
    """Mean |difference| of neighbouring pixels across the tile junctions (the pair straddling the
    centre of each cross-fade) over the mean across all other neighbour pairs, along ``axis``."""
    a = plan.rows if axis == 0 else plan.cols
    d = np.abs(np.diff(y.astype(np.float64), axis=axis))  # d[j] compares pixel j and j + 1
    junction = np.zeros(d.shape[axis], dtype=bool)
    for c in a.cuts:  # pixels whose centre is past the cut belong to the next tile
        junction[int(np.ceil(c - 0.5)) - 1] = True
    assert junction.any()
    d = np.moveaxis(d, axis, 0)
    return float(d[junction].mean() / d[~junction].mean())


@pytest.mark.parametrize("name,pixels", _photos(), ids=lambda v: v if isinstance(v, str) else "")
def test_no_seams_on_photos(name, pixels, shared):
    """Every pair position across a junction differs no more than 1.2x the other neighbours on average."""
    model = load(weights=shared / "reference" / "pipeline" / "denoise-nafnet.pth")
    x = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)).astype(np.float32) / 255)[None]
    plan = plan_tiles(*x.shape[-2:], 128, 16, size_multiple=model.spec.size_multiple)
    assert plan.grid[0] > 1 and plan.grid[1] > 1
    with torch.inference_mode():
        y = run_tiled(x, model.module, plan).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    ratios = [_junction_ratio(y, plan, axis) for axis in (0, 1)]
    assert max(ratios) <= 1.2, (name, ratios)


def test_seam_metric_sees_pasted_tiles():
    """The metric is not blind: a model that scales by its input's global mean (the failure mode of
    channel attention) shows seams when tiles are pasted without context or cross-fade, and none with
    the default cross-fade."""
    import skimage.data

    def global_mean_model(t: torch.Tensor) -> torch.Tensor:
        return t * (0.5 + t.mean(dim=(1, 2, 3), keepdim=True))

    x = torch.from_numpy(skimage.data.astronaut().transpose(2, 0, 1).astype(np.float32) / 255)[None]
    pasted = plan_tiles(512, 512, 128, 0, blend=0)
    blended = plan_tiles(512, 512, 128, 16)

    def ratio(plan) -> float:
        y = run_tiled(x, global_mean_model, plan)[0].permute(1, 2, 0).numpy()
        return max(_junction_ratio(y, plan, axis) for axis in (0, 1))

    assert ratio(pasted) > 1.5
    assert ratio(blended) <= 1.2


# -- automatic sizes ---------------------------------------------------------------------------------


def test_tile_for_budget():
    per_px = 1000.0
    assert tile_for_budget(512 * 512 * per_px, per_px, 16, cap=4096) == 512
    assert tile_for_budget(1e12, per_px, 16, cap=512) == 512  # capped
    assert tile_for_budget(1.0, per_px, 16, cap=512) == MIN_TILE  # never below the floor
    # TLC: at least the level-0 window when memory allows it, even above the cap
    assert tile_for_budget(1e12, per_px, 16, cap=256, prefer_min=384) == 384
    assert tile_for_budget(300 * 300 * per_px, per_px, 16, cap=1024, prefer_min=384) == 288


def test_mem_available(tmp_path: Path):
    f = tmp_path / "meminfo"
    f.write_text("MemTotal:       24000000 kB\nMemFree:         1000 kB\nMemAvailable:   2000000 kB\n")
    assert mem_available(str(f)) == 2000000 * 1024
    assert mem_available(str(tmp_path / "absent")) is None
    assert (mem_available() or 1) > 0


def test_restorer_auto_tiles_large_images_on_cpu(tiny_nafnet_sd):
    model = load(weights=tiny_nafnet_sd, tlc=True)
    r = Restorer(model, device="cpu")
    x = torch.rand(1, 3, 1300, 1400)  # above the largest automatic CPU tile (1024, grown to 1280 at most)
    out, info = r.run(x)
    assert out.shape == x.shape
    assert info.tile_size >= 384  # TLC: tiles at least the level-0 window
    assert info.tiles == info.grid[0] * info.grid[1] > 1
    small, small_info = r.run(torch.rand(1, 3, 40, 50))
    assert small.shape == (1, 3, 40, 50) and small_info.tiles == 1


def test_restorer_whole_image_is_the_plain_model(tiny_nafnet_sd):
    model = load(weights=tiny_nafnet_sd)
    x = torch.rand(1, 3, 70, 90)
    with torch.inference_mode():
        want = model.module(x).clamp(0, 1)
    r = Restorer(model, device="cpu", tile=0, fast=False)
    got, info = r.run(x)
    assert torch.equal(got, want)
    assert info.tile_size == 0 and info.tiles == 1
    fast = Restorer(model, device="cpu", tile=0)  # the default fast path: equal within float rounding
    assert (fast.run(x)[0] - want).abs().max().item() <= 1e-5


def test_bad_sizes_are_usage_errors(tiny_nafnet_sd):
    model = load(weights=tiny_nafnet_sd)
    with pytest.raises(UsageError, match="--tile"):
        Restorer(model, device="cpu", tile="big")
    with pytest.raises(UsageError, match="--batch-size"):
        Restorer(model, device="cpu", batch_size="-2")
    with pytest.raises(UsageError, match="--batch-size must be >= 1, not 0"):
        Restorer(model, device="cpu", batch_size=0)
    # a tile that cannot hold its overlap fails when the Restorer is made, naming the values given, not
    # on every image later (and not the tile rounded up to the size multiple)
    with pytest.raises(UsageError, match=r"--tile 32 is too small for --overlap 16: .*larger than 3 x overlap \(48\)"):
        Restorer(model, device="cpu", tile=32, overlap=16)
    with pytest.raises(UsageError, match=r"--tile 7 is too small for the default --overlap 16"):
        Restorer(model, device="cpu", tile=7)
    Restorer(model, device="cpu", tile=49, overlap=16).run(torch.rand(1, 3, 100, 100))


# -- out of memory -----------------------------------------------------------------------------------

OOM = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


class FlakyModel:
    """A 3x3 blur that raises out-of-memory when given more than ``limit`` pixels at once, or the first
    ``fail_first`` times it is called."""

    def __init__(self, limit: int, fail_first: int = 0) -> None:
        self.limit = limit
        self.fail_first = fail_first
        self.shapes: list[tuple[int, ...]] = []
        self.failures = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        if self.fail_first > 0 or x.numel() // x.shape[1] > self.limit:
            self.fail_first -= 1
            self.failures += 1
            raise OOM("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return self.blur(x)

    @staticmethod
    def blur(x: torch.Tensor) -> torch.Tensor:
        k = torch.full((x.shape[1], 1, 3, 3), 1 / 9)
        return torch.nn.functional.conv2d(x, k, padding=1, groups=x.shape[1])


def _runner(model: FlakyModel, tile, batch) -> TiledRunner:
    mode = Tiles(size_multiple=16, min_tile=0, cpu_bytes_per_pixel=80 * 8)
    return TiledRunner(model, torch.device("cpu"), mode, scale=1, tile=tile, overlap=4, batch=batch)


def test_oom_halves_batch_then_tile_and_keeps_the_size():
    model = FlakyModel(limit=2 * 256 * 256)
    r = _runner(model, tile=512, batch=4)
    x = torch.rand(1, 3, 1000, 1100)
    out, cut = r.run(x)
    # 4 x 512^2 failed, then 2 x 512^2, then 1 x 512^2; then 256-px tiles in batches of 1
    assert [s[0] for s in model.shapes[:3]] == [4, 2, 1]
    assert cut.plan is not None and max(cut.plan.tile_size) <= 256 and cut.batch == 1
    assert r.tile == 256 and r.batch == 1 and r.retries == 3
    want = model.blur(x)
    assert (out - want).abs().max().item() <= 1e-5  # the retried image is complete and right
    failures = model.failures
    r.run(torch.rand(1, 3, 300, 300))
    assert model.failures == failures  # the next image starts at the size that worked


def test_oom_on_whole_image_falls_back_to_tiles():
    model = FlakyModel(limit=400 * 400)
    r = _runner(model, tile=0, batch=1)
    x = torch.rand(1, 3, 600, 500)
    out, cut = r.run(x)
    assert cut.plan is not None and max(cut.plan.tile_size) <= 400
    assert (out - model.blur(x)).abs().max().item() <= 1e-5


def test_oom_once_is_retried_at_the_same_size_after_halving_batch():
    model = FlakyModel(limit=10**9, fail_first=1)
    r = _runner(model, tile=256, batch=2)
    out, cut = r.run(torch.rand(1, 3, 300, 600))
    assert cut.batch == 1 and r.tile == 256 and r.retries == 1


def test_oom_below_the_floor_is_a_device_error():
    model = FlakyModel(limit=10)
    r = _runner(model, tile=256, batch=1)
    with pytest.raises(DeviceError, match="out of memory"):
        r.run(torch.rand(1, 3, 300, 300))


def test_restorer_recovers_from_injected_oom(tiny_nafnet_sd):
    model = load(weights=tiny_nafnet_sd)
    real = model.module

    class Flaky(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = real
            self.raised = False

        def forward(self, x):
            if x.shape[-1] * x.shape[-2] > 200 * 200:
                self.raised = True
                raise OOM("CUDA out of memory (injected)")
            return self.inner(x)

    model.module = Flaky()
    r = Restorer(model, device="cpu", tile=0)
    out, info = r.run(torch.rand(1, 3, 300, 320))
    assert model.module.raised and out.shape == (1, 3, 300, 320)
    assert info.tiles > 1 and 0 < info.tile_size <= 200


# -- CLI ---------------------------------------------------------------------------------------------


def _photo(tmp_path: Path, h=150, w=170) -> Path:
    src = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(src), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    return src


@pytest.mark.parametrize("task", ["denoise", "deblur"])
def test_cli_tile_options_and_verbose_grid(task, tmp_path: Path, tiny_nafnet_pth):
    src = _photo(tmp_path)
    out = tmp_path / "out.png"
    res = runner.invoke(app, [task, str(src), "-w", str(tiny_nafnet_pth), "-o", str(out), "--device", "cpu",
                              "--tile", "64", "--overlap", "4", "--batch-size", "3", "--verbose"])
    assert res.exit_code == 0, res.output
    assert "3x4 tiles of 64x64 px (overlap 4, batch 3)" in res.stderr  # 150 rows, 170 columns
    assert res.stdout.strip() == str(out) and out.is_file()


def test_cli_tile_zero_and_bad_values(tmp_path: Path, tiny_nafnet_pth):
    src = _photo(tmp_path)
    res = runner.invoke(app, ["denoise", str(src), "-w", str(tiny_nafnet_pth), "-o", str(tmp_path / "a.png"),
                              "--device", "cpu", "--tile", "0", "-v"])
    assert res.exit_code == 0 and "whole image" in res.stderr
    res = runner.invoke(app, ["denoise", str(src), "-w", str(tiny_nafnet_pth), "--tile", "huge"])
    assert res.exit_code == 2 and "--tile" in res.stderr
    res = runner.invoke(app, ["denoise", str(src), "-w", str(tiny_nafnet_pth), "--overlap", "-1"])
    assert res.exit_code == 2
