"""nafcli bench (library and command), FLOP counting, compiled mode, CUDA levers, start-up time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.models import REPO, SHARED
from typer.testing import CliRunner

from nafcli.archs import NAFNetSpec, NAFSSRSpec
from nafcli.errors import RegistryError, UnknownModelError, UsageError
from nafcli.inference.restorer import Restorer
from nafcli.quality.bench import psnr_01, run_bench
from nafcli.quality.measure import count_flops
from nafcli.weights import load
from nafcli.weights.loader import resolve_entry, resolve_tlc

MANIFESTS = SHARED / "reference" / "manifests"
TINY = NAFNetSpec(width=8, enc_blk_nums=(1, 1), middle_blk_num=1, dec_blk_nums=(1, 1))
TINY_JSON = 'nafnet:{"width": 8, "enc_blk_nums": [1, 1], "middle_blk_num": 1, "dec_blk_nums": [1, 1]}'
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def random_model(spec, *, tlc: bool, seed: int = 0):
    """Random weights of ``spec`` (what ``nafcli bench --arch-config`` runs)."""
    return load(config=(spec.arch, spec.config()), tlc=tlc, seed=seed, pretrained=False)


@pytest.fixture
def no_registry_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NAFCLI_WEIGHTS_TOML", raising=False)


def test_bench_architectures_are_the_registrys_and_match_the_manifests(no_registry_override) -> None:
    """``bench --model ID`` takes the architecture and TLC setting from the registry (the one list of
    official models; there is no second table in bench): each must be the authors' configuration."""
    if not MANIFESTS.is_dir():
        pytest.skip(f"{MANIFESTS} is absent")
    paths = sorted(MANIFESTS.glob("*.json"))
    assert len(paths) == 13
    for path in paths:
        manifest = json.loads(path.read_text())
        entry = resolve_entry(model=manifest["name"])  # what load(model=ID, pretrained=False) builds
        assert entry.spec.config() == manifest["config"], manifest["name"]
        tlc = resolve_tlc(None, spec=entry.spec, entry=entry)
        assert tlc == (manifest["official_class"] != "NAFNet"), manifest["name"]


@pytest.mark.parametrize("model_id", ["nafssr-t-x2", "nafnet-gopro-width32"])
def test_random_registry_model_is_built_from_the_registry(model_id: str, no_registry_override) -> None:
    if not MANIFESTS.is_dir():
        pytest.skip(f"{MANIFESTS} is absent")
    manifest = json.loads((MANIFESTS / f"{model_id}.json").read_text())
    model = load(model=model_id, pretrained=False)
    assert model.spec.config() == manifest["config"]
    assert model.tlc == (manifest["official_class"] != "NAFNet")
    assert model.num_parameters == manifest["params"]
    assert model.label == model_id and "random weights" in model.source


def test_a_broken_registry_is_an_error_not_a_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bench used to fall back to a built-in table when the registry could not be read; the registry is
    now the only list, so a broken one is reported (library and command), never silently replaced."""
    broken = tmp_path / "weights.toml"
    broken.write_text("[models.nafnet-sidd-width32\n")
    monkeypatch.setenv("NAFCLI_WEIGHTS_TOML", str(broken))
    with pytest.raises(RegistryError, match="not valid TOML"):
        load(model="nafnet-sidd-width32", pretrained=False)
    from nafcli.cli.main import app

    res = CliRunner().invoke(app, ["bench", "--model", "nafnet-sidd-width32", "--size", "16", "--device", "cpu"])
    assert res.exit_code == 2
    assert "error:" in res.stderr and "not valid TOML" in res.stderr and str(broken) in res.stderr


def test_random_model_has_nonzero_residual_scales() -> None:
    model = random_model(TINY, tlc=False, seed=0)
    betas = [p for n, p in model.module.named_parameters() if n.endswith(("beta", "gamma"))]
    assert betas and all(p.abs().sum() > 0 for p in betas)
    again = random_model(TINY, tlc=False, seed=0)
    assert all(
        torch.equal(a, b) for a, b in zip(model.module.parameters(), again.module.parameters(), strict=True)
    )


def test_bench_model_choices(no_registry_override) -> None:
    model = load(model="nafnet-gopro-width32", pretrained=False)
    assert model.label == "nafnet-gopro-width32" and model.tlc and model.spec.width == 32
    with pytest.raises(UnknownModelError, match="unknown model"):
        load(model="nafnet-nope", pretrained=False)
    with pytest.raises(UsageError, match="only one"):
        load(model="nafnet-sidd-width32", config=("nafnet", {}), pretrained=False)


def test_flop_count_is_analytic_for_one_conv_and_scales_with_area() -> None:
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    assert count_flops(conv, (1, 3, 10, 10)) == 2 * 8 * 3 * 9 * 100
    model = random_model(TINY, tlc=False)
    small = count_flops(model.module, (1, 3, 32, 32))
    large = count_flops(model.module, (1, 3, 64, 64))
    # the channel attention's 1x1 conv is not counted (it runs on one pooled vector per image in the
    # authors' mode), so the count is the convolutions' alone and scales with the area exactly
    assert small > 0 and large == 4 * small


def test_run_bench_reports_both_paths() -> None:
    model = random_model(TINY, tlc=False)
    result = run_bench(model, label="tiny", size=32, precisions=("fp32", "bf16"), device="cpu", repeat=2)
    ref, fp32, bf16 = result.paths
    assert ref.name == "reference" and fp32.name == "fast" and bf16.precision == "bf16"
    assert all(len(p.seconds) >= 1 and p.median > 0 and p.flops > 0 for p in result.paths)
    assert ref.speedup == 1.0 and fp32.speedup is not None
    assert fp32.max_abs_vs_reference is not None and fp32.max_abs_vs_reference < 1e-4
    assert bf16.psnr_vs_reference is not None and bf16.psnr_vs_reference > 30
    assert all(p.peak_memory_bytes > 0 for p in result.paths)
    d = result.to_dict()
    assert d["input_shape"] == [1, 3, 32, 32]
    assert d["paths"][1]["megapixels_per_second"] == pytest.approx(32 * 32 / 1e6 / fp32.median)


def test_run_bench_stereo_without_reference() -> None:
    model = random_model(NAFSSRSpec(up_scale=2, width=16, num_blks=1), tlc=True)
    result = run_bench(model, size=16, device="cpu", repeat=1, reference=False)
    assert [p.name for p in result.paths] == ["fast"]
    assert result.input_shape == (1, 6, 16, 16) and result.paths[0].speedup is None


def test_cli_bench_json_and_table() -> None:
    from nafcli.cli.main import app

    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "bench",
            "--arch-config",
            TINY_JSON,
            "--size",
            "32",
            "-n",
            "1",
            "--json",
            "--device",
            "cpu",
            "--threads",
            str(torch.get_num_threads()),
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [p["name"] for p in data["paths"]][0] == "reference"
    assert all(p["median_seconds"] > 0 for p in data["paths"])
    res = runner.invoke(
        app,
        [
            "bench",
            "--arch-config",
            TINY_JSON,
            "--size",
            "32",
            "-n",
            "1",
            "-p",
            "fp32",
            "--device",
            "cpu",
            "--threads",
            str(torch.get_num_threads()),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "GFLOP/s" in res.stdout and "reference" in res.stdout
    res = runner.invoke(app, ["bench", "--arch-config", "nafnet:{oops", "--size", "32"])
    assert res.exit_code == 2 and "--arch-config" in res.output


def test_help_does_not_import_torch() -> None:
    code = "import sys; from nafcli.cli.main import app; assert 'torch' not in sys.modules, 'torch imported'"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO)


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("NAFCLI_TEST_COMPILE", "") in ("", "0"),
    reason="torch.compile takes ~45 s for even a tiny model on the 2-core build machine; "
    "set NAFCLI_TEST_COMPILE=1 to run",
)
def test_compiled_mode_matches_and_reports_warmup() -> None:
    model = random_model(
        NAFNetSpec(width=8, enc_blk_nums=(1,), middle_blk_num=1, dec_blk_nums=(1,)), tlc=False
    )
    x = torch.rand((1, 3, 32, 32))
    compiled = Restorer(model, device="cpu", compile=True)
    out, first = compiled.run(x)
    assert first.compile_seconds > 0 and first.path == "fast+compiled"
    _, second = compiled.run(x)  # same shape: no second compilation
    assert second.compile_seconds == 0
    ref, _ = Restorer(model, device="cpu", fast=False).run(x)
    assert (out - ref).abs().max().item() <= 1e-4


# -- CUDA: the same levers; run where a GPU is present ---------------------------------------------


@CUDA
@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_fast_path_matches_reference(precision: str) -> None:
    model = random_model(TINY, tlc=True, seed=5)
    x = torch.rand((2, 3, 64, 80))
    ref, _ = Restorer(model, device="cpu", fast=False).run(x)
    fast = Restorer(model, device="cuda", precision=precision)
    assert next(fast.module.parameters()).is_cuda
    out, info = fast.run(x)
    assert info.device.startswith("cuda") and info.precision == precision
    if precision == "fp32":
        assert (out - ref).abs().max().item() <= 1e-4
    else:
        assert psnr_01(out, ref) >= 40


@CUDA
@pytest.mark.gpu
def test_cuda_compiled_graph_matches_reference() -> None:
    model = random_model(TINY, tlc=False, seed=6)
    x = torch.rand((1, 3, 64, 64))
    ref, _ = Restorer(model, device="cpu", fast=False).run(x)
    compiled = Restorer(model, device="cuda", compile=True)
    first, first_info = compiled.run(x)
    second, second_info = compiled.run(x)  # replayed graph
    assert first_info.compile_seconds > 0 and second_info.compile_seconds == 0
    assert (first - ref).abs().max().item() <= 1e-4 and (second - ref).abs().max().item() <= 1e-4


@CUDA
@pytest.mark.gpu
def test_cuda_bench_reports_allocated_memory() -> None:
    model = random_model(TINY, tlc=False)
    result = run_bench(model, size=64, precisions=("bf16",), device="cuda", repeat=2)
    assert result.device.startswith("cuda")
    assert all(p.peak_memory_bytes > 0 for p in result.paths)


# -- the limit: the device's throughput on the model's own 1x1 products ---------------------------


def test_conv1x1_shapes_are_the_reference_networks_gemms() -> None:
    from nafcli.quality.limit import conv1x1_shapes, model_flops

    model = random_model(TINY, tlc=True)  # TLC: the reference's SCA conv runs on every pixel; left out
    shapes = {(s.rows, s.k, s.n): s.count for s in conv1x1_shapes(model.module, (1, 3, 64, 64))}
    # width 8 on levels of 64x64, 32x32 and 16x16 pixels: conv1/conv4 (c -> 2c) and conv3/conv5 (c -> c)
    # of the encoder and decoder blocks of levels 0 and 1 and of the middle block, and the two ups (1x1,
    # c -> 2c: 32 -> 64 channels at 16x16, 16 -> 32 at 32x32)
    assert shapes == {
        (4096, 8, 16): 4, (4096, 8, 8): 4,
        (1024, 16, 32): 4 + 1, (1024, 16, 16): 4,
        (256, 32, 64): 2 + 1, (256, 32, 32): 2,
    }
    gemm = sum(2 * r * k * n * c for (r, k, n), c in shapes.items())
    assert 0 < gemm < model_flops(model.module, (1, 3, 64, 64))


def test_measure_limit_times_every_shape() -> None:
    from nafcli.quality.limit import GemmShape, measure_limit, time_shape

    t = time_shape(GemmShape(4096, 16, 32, count=3), torch.float32, torch.device("cpu"))
    assert t.seconds > 0 and t.method in ("conv2d", "addmm", "native") and t.rows_timed == 4096
    assert t.gflops_per_second == pytest.approx(2 * 4096 * 16 * 32 / 1e9 / t.seconds)
    model = random_model(TINY, tlc=False)
    limit = measure_limit(model.module, (1, 3, 64, 64), torch.float32, torch.device("cpu"))
    assert len(limit.shapes) == 6 and limit.gflops_per_second > 0
    assert limit.flops == sum(s.shape.flops for s in limit.shapes)
    assert limit.to_dict()["input_shape"] == [1, 3, 64, 64]


def test_bench_rows_carry_their_share_of_the_limit() -> None:
    model = random_model(TINY, tlc=False)
    result = run_bench(model, size=64, precisions=("fp32",), device="cpu", repeat=1, tile=0)
    ref, fast = result.paths
    assert fast.network_input == [1, 3, 64, 64] and ref.network_input == [1, 3, 64, 64]
    for p in (ref, fast):
        assert p.limit_gflops_per_second and p.limit_gflops_per_second > 0
        assert len(p.limit_samples) == 1 and p.limit_drift is None  # measured after the one timed run
        assert p.limit_gflops_per_second == p.limit_samples[0]
        assert p.share_of_limit == pytest.approx(p.gflops_per_second / p.limit_gflops_per_second)
        assert p.megapixels_per_second_at_limit(result.pixels) == pytest.approx(
            p.megapixels_per_second(result.pixels) / p.share_of_limit)
    d = result.to_dict()
    assert d["paths"][1]["share_of_limit"] == fast.share_of_limit
    assert d["paths"][1]["megapixels_per_second_at_limit"] > 0
    assert len(d["limits"]) == 2 and d["limits"][0]["dtype"] == "float32" and d["limits"][0]["shapes"]
    assert d["paths"][1]["limit_samples"] == fast.limit_samples
    none = run_bench(model, size=32, precisions=("fp32",), device="cpu", repeat=1, reference=False, limit=False)
    assert none.paths[0].share_of_limit is None and none.limits == []


def test_bench_marks_auto_and_never_times_a_configuration_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    from nafcli.inference import settings
    from nafcli.quality.bench import resolve_rows

    cpu = torch.device("cpu")
    monkeypatch.setattr(settings, "native_bf16", lambda device: False)
    assert resolve_rows(("fp32", "auto"), cpu) == [("fp32", ["fp32", "auto"])]
    assert resolve_rows(("auto", "fp32", "fp32"), cpu) == [("fp32", ["auto", "fp32"])]
    model = random_model(TINY, tlc=False)
    result = run_bench(model, size=32, precisions=("fp32", "auto"), device="cpu", repeat=1, reference=False,
                       limit=False)
    (row,) = result.paths
    assert row.auto and row.requested == ["fp32", "auto"] and row.precision_label == "fp32 (auto)"
    assert result.auto_precision == "fp32" and "no native bf16" in result.auto_reason
    monkeypatch.setattr(settings, "native_bf16", lambda device: True)
    assert resolve_rows(("fp32", "auto", "bf16"), cpu) == [("fp32", ["fp32"]), ("bf16", ["auto", "bf16"])]


def test_cli_bench_shows_auto_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from nafcli.cli.main import app
    from nafcli.inference import settings

    monkeypatch.setattr(settings, "native_bf16", lambda device: False)
    res = CliRunner().invoke(app, ["bench", "--arch-config", TINY_JSON, "--size", "32", "-n", "1", "-p", "fp32",
                                   "-p", "auto", "--device", "cpu", "--no-reference", "--no-limit"])
    assert res.exit_code == 0, res.output
    assert res.stdout.count("fp32 (auto)") == 1 and res.stdout.count("fast") == 1
    assert "auto: fp32 (this CPU has no native bf16" in res.stderr


def test_the_limit_is_measured_after_each_timed_run_and_its_median_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """A VM's speed moves between minutes: the row's limit is measured after each of its timed runs,
    untimed, and the median of those is the row's (a stand-in measurement whose result climbs by one each
    time, so the order and the median are known); none before the first run, whose peak memory is the
    row's."""
    from nafcli.quality import bench as bench_module
    from nafcli.quality.limit import GemmShape, Limit, ShapeTiming

    taken: list[tuple[int, ...]] = []

    def fake_limit(_module: torch.nn.Module, shape: tuple[int, ...], dtype: torch.dtype,
                   device: torch.device) -> Limit:
        taken.append(shape)
        gflops = float(len(taken))
        limit = Limit("float32", str(device), shape)
        limit.shapes.append(ShapeTiming(GemmShape(1000, 10, 10), 2e-4 / gflops, gflops, "addmm", 1000))
        return limit

    monkeypatch.setattr(bench_module, "measure_limit", fake_limit)
    model = random_model(TINY, tlc=False)
    result = run_bench(model, size=32, precisions=("fp32",), device="cpu", repeat=5, reference=False, tile=0)
    fast = result.paths[0]
    assert len(fast.seconds) == 5 and taken == [(1, 3, 32, 32)] * 5
    assert fast.limit_samples == pytest.approx([1.0, 2.0, 3.0, 4.0, 5.0], rel=1e-6)
    assert fast.limit_gflops_per_second == pytest.approx(3.0, rel=1e-6)
    assert fast.limit_drift == pytest.approx(5.0, rel=1e-6)
    assert len(result.limits) == 5


def test_the_limit_keeps_the_native_product_where_it_is_the_fastest(monkeypatch: pytest.MonkeyPatch) -> None:
    """The limit is the best this device does on each product: in float32 on a CPU where the native kernels
    load, their own product is timed beside conv2d and addmm and kept when it is the fastest (here made so
    by a stand-in timer); without the kernels only the two are timed."""
    from nafcli.archs import native
    from nafcli.quality import limit as limit_module
    from nafcli.quality.limit import GemmShape, time_shape

    if not isinstance(native.load(), native.Library):
        pytest.skip("the native kernels do not load here")
    calls: list[int] = []
    real = native.linear
    monkeypatch.setattr(native, "linear", lambda *args: calls.append(1) or real(*args))

    def timer(fn, _device) -> float:  # the native product "takes" 1 ms, the others 2
        before = len(calls)
        fn()
        return 1e-3 if len(calls) > before else 2e-3

    monkeypatch.setattr(limit_module, "_median_seconds", timer)
    shape = GemmShape(4096, 32, 64)
    t = time_shape(shape, torch.float32, torch.device("cpu"))
    assert calls and t.method == "native" and t.seconds == pytest.approx(1e-3)
    assert t.gflops_per_second == pytest.approx(2 * 4096 * 32 * 64 / 1e9 / 1e-3)
    monkeypatch.setattr(native, "load", lambda: native.NativeUnavailable("turned off"))
    calls.clear()
    t = time_shape(shape, torch.float32, torch.device("cpu"))
    assert not calls and t.method in ("conv2d", "addmm") and t.seconds == pytest.approx(2e-3)


def test_the_table_says_when_the_limits_measurements_ranged_widely(capsys: pytest.CaptureFixture[str]) -> None:
    """A row whose limit measurements spread over more than 10 % gets a one-line note naming the range
    (the machine's speed moved: the share is less sure); a steady row gets none."""
    from nafcli.cli.tables import render_bench
    from nafcli.quality.bench import BenchResult, PathResult

    def row(samples: list[float]) -> PathResult:
        return PathResult("fast", "fp32", [1.0], flops=10**9, limit_gflops_per_second=sorted(samples)[1],
                          limit_drift=samples[-1] / samples[0], limit_samples=samples)

    result = BenchResult("m", "NAFNet", "cpu", 2, (1, 3, 32, 32), "auto", [row([300.0, 330.0, 340.0])])
    render_bench(result)
    assert "ranged over 300-340 GFLOP/s" in capsys.readouterr().err
    result.paths = [row([300.0, 310.0, 320.0])]
    render_bench(result)
    assert "ranged over" not in capsys.readouterr().err


def test_the_peak_memory_is_the_first_timed_runs_when_the_limit_is_measured_after_each() -> None:
    """What runs after each timed call (the limit's products) may leave memory resident: the peak reported
    is the first timed call's, read before any of it (here 600 MB kept by the calls after)."""
    from nafcli.quality.measure import peak_bytes, time_calls

    cpu = torch.device("cpu")
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("no /proc/self/clear_refs: the RSS high-water mark cannot be reset here")
    kept: list[torch.Tensor] = []
    _warm, times, peak, _out = time_calls(lambda: torch.zeros(16), cpu, 3,
                                          after_each=lambda: kept.append(torch.ones(50_000_000)))
    assert len(times) == 3 and len(kept) == 3
    assert peak + 500 * 2**20 < peak_bytes(cpu)
