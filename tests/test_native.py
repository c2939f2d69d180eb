"""The native NAFBlock kernels (nafcli.archs.native): the same function as the torch blocks, built once and
kept, and never in the way when they cannot run."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_fast import _golden_cases, _load_case

from nafcli.archs import native
from nafcli.archs.blocks import NAFBlock
from nafcli.archs.fast_blocks import FastNAFBlock
from nafcli.archs.native import build
from nafcli.errors import UsageError
from nafcli.weights import load

CL = torch.channels_last


def _library() -> native.Library:
    lib = native.load()
    if not isinstance(lib, native.Library):
        pytest.skip(f"native kernels unavailable here: {lib}")
    return lib


def _block(c: int, window: tuple[int, int] | None = None, seed: int = 0) -> FastNAFBlock:
    """A fast block of ``c`` channels whose every parameter is random (beta, gamma and the LayerNorm affines
    too, so that each part of the block changes the output)."""
    gen = torch.Generator().manual_seed(seed)
    ref = NAFBlock(c)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return FastNAFBlock(ref, window).eval()


def _native(block: FastNAFBlock, x: torch.Tensor, lib: native.Library) -> torch.Tensor:
    return block._forward_native(x, lib)


def _input(shape: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen).contiguous(memory_format=CL)


def _with_one_thread_and_two(fn: Callable[[], torch.Tensor]) -> list[torch.Tensor]:
    """``fn()`` under inference mode with one thread, then with two (torch's count restored after)."""
    threads = torch.get_num_threads()
    outs = []
    try:
        with torch.inference_mode():
            for t in (1, 2):
                torch.set_num_threads(t)
                outs.append(fn())
    finally:
        torch.set_num_threads(threads)
    return outs


def _spy_calls(monkeypatch: pytest.MonkeyPatch, name: str, arg: int) -> list[int]:
    """Record the channels of argument ``arg`` (a map) of every call of ``native.<name>`` from now on (e.g.
    ``native.linear``, the kernels' 1x1 product: its input, argument 2)."""
    calls: list[int] = []
    kernel = getattr(native, name)

    def spy(*args):  # noqa: ANN002, ANN202
        calls.append(args[arg].shape[1])
        return kernel(*args)

    monkeypatch.setattr(native, name, spy)
    return calls


@pytest.mark.parametrize("c", [16, 32, 48, 64, 96, 128, 192, 256, 384, 512])
def test_native_block_equals_the_torch_block(c: int) -> None:
    lib = _library()
    block = _block(c, seed=c)
    x = _input((1, c, 13, 29))  # widths that are no multiple of the six-pixel micro-kernel
    with torch.inference_mode():
        want = block._forward_plain(x)
        got = _native(block, x, lib)
    assert got.shape == want.shape and got.dtype == torch.float32
    assert got.permute(0, 2, 3, 1).is_contiguous()  # channels_last out, as the other paths
    err = (got - want).abs().max().item()
    assert err <= 2e-5 * max(1.0, want.abs().max().item()), f"{c} channels: {err:.2e}"


@pytest.mark.parametrize(("shape", "window"), [
    ((1, 32, 40, 70), (24, 24)),   # TLC windows smaller than the map both ways
    ((2, 16, 20, 90), (45, 30)),   # a batch of two (NAFSSR's views), only the width exceeds the window
    ((1, 64, 17, 9), (8, 100)),    # odd sizes, only the height exceeds it
    ((3, 32, 16, 16), (16, 16)),   # the window covers the map: the global mean
])
def test_native_block_with_tlc_windows_and_batches(shape: tuple[int, ...], window: tuple[int, int]) -> None:
    lib = _library()
    block = _block(shape[1], window, seed=7)
    x = _input(shape)
    with torch.inference_mode():
        want = block._forward_plain(x)
        got = _native(block, x, lib)
    assert (got - want).abs().max().item() <= 2e-5 * max(1.0, want.abs().max().item())


def test_native_block_on_a_map_made_row_by_row() -> None:
    """Maps whose 3x3 input exceeds the whole-map buffer are made in a ring of three rows per thread: the
    same result, with one thread, two and three (band edges in other places)."""
    lib = _library()
    block = _block(32, seed=5)
    x = _input((1, 32, 203, 340))  # (203 + 2) x (340 + 2) x 64 floats > 4 M: the ring
    assert 205 * 342 * 64 > 4 << 20
    threads = torch.get_num_threads()
    with torch.inference_mode():
        want = block._forward_plain(x)
        try:
            for n in (1, 2, 3):
                torch.set_num_threads(n)
                got = _native(block, x, lib)
                assert (got - want).abs().max().item() <= 2e-5 * want.abs().max().item(), f"{n} threads"
        finally:
            torch.set_num_threads(threads)


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Record which native path each block took: ("block", C) or ("hybrid", C)."""
    calls: list[tuple[str, int]] = []
    block, hybrid = FastNAFBlock._forward_native, FastNAFBlock._forward_hybrid

    def on_block(self, inp, lib):  # noqa: ANN001, ANN202
        calls.append(("block", inp.shape[1]))
        return block(self, inp, lib)

    def on_hybrid(self, inp, lib):  # noqa: ANN001, ANN202
        calls.append(("hybrid", inp.shape[1]))
        return hybrid(self, inp, lib)

    monkeypatch.setattr(FastNAFBlock, "_forward_native", on_block)
    monkeypatch.setattr(FastNAFBlock, "_forward_hybrid", on_hybrid)
    return calls


@pytest.mark.parametrize("limit", [64, 256])
def test_which_blocks_run_natively(limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """fp32 on the CPU: up to the CPU's limit (64 or 256 channels) the whole block, wider blocks the
    hybrid; bf16: neither."""
    _library()
    monkeypatch.setattr(native.nafblock, "_cpu_limit", lambda: limit)
    monkeypatch.delenv(native.nafblock.WHOLE_ENV, raising=False)
    calls = _spy(monkeypatch)
    with torch.inference_mode():
        for c in (32, 64, 128, 256, 512):
            _block(c)(_input((1, c, 12, 12)))
        assert calls == [("block" if c <= limit else "hybrid", c) for c in (32, 64, 128, 256, 512)]
        _block(32).to(torch.bfloat16)(_input((1, 32, 12, 12)).to(torch.bfloat16))
    assert len(calls) == 5


@pytest.mark.parametrize("c", [128, 256, 512])
@pytest.mark.parametrize("window", [None, (10, 30)], ids=["global", "tlc"])
def test_hybrid_block_equals_the_torch_block(c: int, window: tuple[int, int] | None) -> None:
    lib = _library()
    block = _block(c, window, seed=c + 1)
    for shape in ((1, c, 17, 41), (2, c, 9, 33)):
        x = _input(shape)
        with torch.inference_mode():
            want = block._forward_plain(x)
            got = block._forward_hybrid(x, lib)
        assert got.permute(0, 2, 3, 1).is_contiguous()
        assert (got - want).abs().max().item() <= 2e-5 * max(1.0, want.abs().max().item()), shape


def test_prepared_weights_follow_a_change_of_weights() -> None:
    lib = _library()
    block = _block(32)
    x = _input((1, 32, 8, 8))
    with torch.inference_mode():
        before = _native(block, x, lib)
        with torch.no_grad():
            block.conv1.weight.mul_(0.5)
        after = _native(block, x, lib)
        want = block._forward_plain(x)
    assert not torch.allclose(before, after)
    assert (after - want).abs().max().item() <= 2e-5 * max(1.0, want.abs().max().item())


@pytest.mark.skipif(not _golden_cases(), reason="../shared/reference/golden is absent")
@pytest.mark.parametrize("whole", [True, False], ids=["whole-blocks", "hybrid-blocks"])
@pytest.mark.parametrize("name", _golden_cases() or ["none"])
def test_golden_cases_through_the_native_kernels(name: str, whole: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every golden case within 1e-4 of the authors' output with every block the kernels take run whole
    natively, and again with every one of them as the hybrid."""
    _library()
    monkeypatch.setenv(native.nafblock.WHOLE_ENV, str(1 << 20 if whole else 0))
    calls = _spy(monkeypatch)
    model, inp, expected = _load_case(name)
    fast = model.spec.fast(model.module, dtype=torch.float32)
    with torch.inference_mode():
        out = fast(inp)
    assert calls and {kind for kind, _ in calls} == {"block" if whole else "hybrid"}
    err = (out - expected).abs().max().item()
    assert err <= 1e-4, f"{name}: native kernels differ from the authors' output by {err:.2e}"


@pytest.mark.parametrize(("flags", "want"), [
    ("fpu sse2 avx2 fma avx512f avx512bw", native.nafblock.AVX512_WHOLE),  # measured faster whole at every width
    ("fpu sse2 avx2 fma", native.nafblock.MAX_BLOCK_CHANNELS),  # the AVX2 build: the default
    ("", native.nafblock.MAX_BLOCK_CHANNELS),  # no /proc/cpuinfo
])
def test_the_whole_block_limit_follows_the_cpu(flags: str, want: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(native.nafblock.WHOLE_ENV, raising=False)
    monkeypatch.setattr(native.nafblock, "cpu_flags", lambda: ("some CPU", flags))
    native.nafblock._cpu_limit.cache_clear()
    try:
        assert native.whole_block_limit() == want
        wide = torch.zeros((1, 128, 2, 2))
        assert native.whole_block(wide) == (want >= 128)
        monkeypatch.setenv(native.nafblock.WHOLE_ENV, "512")
        assert native.whole_block_limit() == 512
        monkeypatch.setenv(native.nafblock.WHOLE_ENV, "0")
        assert not native.whole_block(torch.zeros((1, 16, 2, 2)))
        monkeypatch.setenv(native.nafblock.WHOLE_ENV, "lots")  # not a number: the rule's value
        assert native.whole_block_limit() == want
    finally:
        native.nafblock._cpu_limit.cache_clear()


def test_the_avx2_build_computes_the_same(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The variant for CPUs without AVX-512 (8-float vectors, 12 accumulators), built here with
    ``-march=x86-64-v3``: same results, and it takes the 8-channel blocks the AVX-512 build leaves."""
    if build.compiler() is None:
        pytest.skip("no C++ compiler")
    monkeypatch.setenv("NAFCLI_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(build, "ARCH_FLAGS", ("-march=x86-64-v3",))
    build.forget()
    try:
        lib = _library()
        assert lib.vector_width == 8 and lib.supports(8) and lib.supports(48)
        for c, window in ((8, None), (48, (6, 10)), (128, None)):
            block = _block(c, window, seed=c)
            x = _input((2, c, 11, 19))
            with torch.inference_mode():
                want = block._forward_plain(x)
                got = _native(block, x, lib)
            assert (got - want).abs().max().item() <= 2e-5 * max(1.0, want.abs().max().item()), c
        # the network's other kernels: 16 -> 32 down-sampling, up-sampling with the skip sum (8 channels out:
        # one 8-float vector), the ending
        torch.manual_seed(0)
        down, up, end = torch.nn.Conv2d(16, 32, 2, 2), torch.nn.Conv2d(16, 32, 1, bias=False), torch.nn.Conv2d(16, 3, 3, padding=1)
        x, skip, image = _input((1, 16, 6, 10)), _input((1, 8, 12, 20), seed=2), _input((1, 3, 6, 10), seed=3)
        assert native.down_supported(lib, down, x) and native.up_skip_supported(lib, up)
        assert native.ending_supported(lib, end)
        with torch.inference_mode():
            pairs = ((native.down(lib, native.down_weights(lib, down), x), down(x)),
                     (native.up_skip(lib, native.up_skip_weights(lib, up), x, skip), F.pixel_shuffle(up(x), 2) + skip),
                     (native.ending(lib, native.ending_weights(end), x, image), end(x) + image))
        for got, want in pairs:
            assert (got - want).abs().max().item() <= 1e-5 * max(1.0, want.abs().max().item())
    finally:
        build.forget()


def _default_and_variant(tmp_path, monkeypatch: pytest.MonkeyPatch, flag: str,
                         run: Callable[[native.Library], list[torch.Tensor]]
                         ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``run`` on the default build, then on a build with one more compiler flag (a library of its own
    name, in a cache of its own)."""
    default = _library()
    want = run(default)
    flags = build.tuning_flags()
    monkeypatch.setenv("NAFCLI_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(build, "tuning_flags", lambda: (*flags, flag))
    build.forget()
    try:
        variant = _library()
        assert variant.path.name != default.path.name
        return want, run(variant)
    finally:
        build.forget()


def test_streamed_stores_write_the_same_bytes(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Maps of 32 MB and more are written with streaming stores (``STREAM_MIN_BYTES``; no map of a test is
    that large): a build that streams every map writes the same bytes as the default one, in the blocks
    (global and TLC SCA; a front made whole and one through its ring of rows) and the up-sampling."""
    if build.compiler() is None:
        pytest.skip("no C++ compiler")
    torch.manual_seed(0)
    up = torch.nn.Conv2d(64, 128, 1, bias=False)
    cases = [(_block(32, (40, 70)), _input((1, 32, 61, 97))), (_block(32), _input((1, 32, 258, 258))),
             (_block(64, (20, 30)), _input((2, 64, 33, 45)))]
    x_up, skip = _input((1, 64, 12, 20)), _input((1, 32, 24, 40), seed=2)

    def run(lib: native.Library) -> list[torch.Tensor]:
        with torch.inference_mode():
            return [_native(block, x, lib) for block, x in cases] + [
                native.up_skip(lib, native.up_skip_weights(lib, up), x_up, skip)]

    want, got = _default_and_variant(tmp_path, monkeypatch, "-DNB_STREAM_MIN_BYTES=0", run)
    assert all(torch.equal(a, b) for a, b in zip(want, got, strict=True))


def test_rows_taken_from_another_thread_give_the_same_bytes(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A front through its ring of rows hands a thread's unstarted rows to a thread that has finished its
    own (``take_last_half``). A build where the first thread starts with every row (``-DNB_STEAL_ALL``), so
    that the other makes only rows it took, writes the bytes of the default build with two threads."""
    if build.compiler() is None:
        pytest.skip("no C++ compiler")
    cases = [(_block(32, (40, 70)), _input((1, 32, 258, 258))), (_block(32), _input((2, 32, 300, 250)))]

    def run(lib: native.Library) -> list[torch.Tensor]:
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(2)
            with torch.inference_mode():
                return [_native(block, x, lib) for block, x in cases]
        finally:
            torch.set_num_threads(threads)

    want, got = _default_and_variant(tmp_path, monkeypatch, "-DNB_STEAL_ALL", run)
    assert all(torch.equal(a, b) for a, b in zip(want, got, strict=True))


# -- building, the cache, and when there is nothing to build with ----------------------------------------


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NAFCLI_CACHE_DIR", str(tmp_path))
    build.forget()
    yield tmp_path
    build.forget()


def test_built_once_then_loaded_from_the_cache(fresh_cache) -> None:
    if build.compiler() is None:
        pytest.skip("no C++ compiler")
    first = _library()
    assert first.built and first.path.parent == fresh_cache / "native" and first.path.is_file()
    assert first.vector_width in (8, 16)
    build.forget()
    second = _library()
    assert not second.built and second.path == first.path
    assert [p.name for p in first.path.parent.iterdir()] == [first.path.name]  # no temporary files left


def test_a_damaged_cached_library_is_built_again(fresh_cache) -> None:
    if build.compiler() is None:
        pytest.skip("no C++ compiler")
    path = build.library_path(build.compiler())
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x7fELF cut short")
    lib = _library()
    assert lib.built and lib.path == path and path.stat().st_size > 1000


def test_no_compiler_means_torch_blocks_and_one_line_why(fresh_cache, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    result = native.load()
    assert isinstance(result, native.NativeUnavailable)
    assert "no-such-compiler-here" in str(result) and "\n" not in str(result)
    block = _block(32)
    x = _input((1, 32, 10, 10))
    with torch.inference_mode():
        assert torch.allclose(block(x), block._forward_plain(x), atol=1e-5)


def test_a_compiler_that_fails_is_one_line_and_not_fatal(fresh_cache, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fresh_cache / "bad-cxx"
    fake.write_text("#!/bin/sh\necho 'bad-cxx: error: something broke' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("CXX", str(fake))
    result = native.load()
    assert isinstance(result, native.NativeUnavailable)
    assert "something broke" in str(result)
    assert not list((fresh_cache / "native").glob("*.so"))  # nothing half-written under the cached name


def test_switched_off_by_environment(fresh_cache, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.SWITCH_ENV, "0")
    result = native.load()
    assert isinstance(result, native.NativeUnavailable) and native.SWITCH_ENV in str(result)
    assert not (fresh_cache / "native").exists()


def test_source_is_shipped_with_the_package() -> None:
    """The kernels are compiled from the installed package: the .cpp must be package data."""
    assert build.SOURCE.is_file()
    from pathlib import Path

    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"archs/native/*.cpp"' in pyproject


def test_whole_network_with_native_blocks_matches_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """A NAFNet of width 32 (the official models' first levels) against the reference path: its 32- and
    64-channel blocks run whole natively, the 128-channel ones as the hybrid (the limit fixed at 64, as on
    most CPUs)."""
    _library()
    monkeypatch.setenv(native.nafblock.WHOLE_ENV, "64")
    calls = _spy(monkeypatch)
    model = load(config=("nafnet", {"width": 32, "enc_blk_nums": [1, 1, 1], "middle_blk_num": 1,
                                    "dec_blk_nums": [1, 1, 1]}), pretrained=False, seed=2)
    fast = model.spec.fast(model.module, dtype=torch.float32)
    x = torch.rand((1, 3, 96, 128))
    with torch.inference_mode():
        err = (fast(x) - model.module(x)).abs().max().item()
    assert sorted(set(calls)) == [("block", 32), ("block", 64), ("hybrid", 128), ("hybrid", 256)]
    assert err <= 1e-4


def test_tlc_models_take_the_large_cpu_tiles_when_the_kernels_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the native kernels, local statistics cost little at any size: TLC models get the 1024-px CPU
    tile as the others do; in bf16 (no native blocks) or with the kernels off, the 512-px one."""
    from nafcli.inference import sizing
    from nafcli.inference.restorer import Restorer

    _library()
    monkeypatch.setattr(sizing, "mem_available", lambda: 64 << 30)
    model = load(model="nafnet-gopro-width32", pretrained=False)
    assert model.tiling.min_tile  # a TLC model
    x = torch.zeros((1, 3, 4096, 4096))

    def auto_tile(**kw) -> int:  # noqa: ANN003
        runner = Restorer(model, device="cpu", **kw).runner
        return runner._auto_tile(x, model.tiling)

    assert auto_tile(precision="fp32") == sizing.CPU_TILE_GLOBAL
    try:
        assert auto_tile(precision="bf16") == sizing.CPU_TILE
    except UsageError:  # a CPU that refuses bf16 (no native bf16)
        pass
    monkeypatch.setenv(native.SWITCH_ENV, "0")
    assert auto_tile(precision="fp32") == sizing.CPU_TILE


@pytest.mark.parametrize(("shape", "window"), [((1, 37, 53, 3), (7, 11)), ((2, 20, 90, 16), (20, 45)),
                                                ((1, 64, 64, 256), (48, 48)), ((1, 5, 5, 8), (5, 5))])
def test_box_means_equal_float64_sums(shape: tuple[int, ...], window: tuple[int, int]) -> None:
    """The sliding sums against a float64 integral image, on maps whose mean is far from zero (where
    float32 running sums would drift): within float32 rounding. Any channel count, batches, windows as
    large as the map."""
    lib = _library()
    gen = torch.Generator().manual_seed(11)
    v = (torch.randn(shape, generator=gen) * 3 + 40).contiguous()  # N H W C
    k1, k2 = window
    got = native.box_mean(lib, v, k1, k2)
    cs = torch.nn.functional.pad(v.double().cumsum(1).cumsum(2), (0, 0, 1, 0, 1, 0))
    want = (cs[:, k1:, k2:] - cs[:, :-k1, k2:] - cs[:, k1:, :-k2] + cs[:, :-k1, :-k2]) / (k1 * k2)
    assert got.shape == want.shape
    assert (got.double() - want).abs().max().item() <= 4e-6 * 43  # float32 rounding of values near 43
    with pytest.raises(ValueError, match="does not fit"):
        native.box_mean(lib, v, shape[1] + 1, k2)


@pytest.mark.parametrize(("shape", "window"), [((2, 20, 47, 32), (9, 13)), ((1, 30, 30, 256), (12, 12)),
                                                ((1, 8, 9, 64), (8, 9))])
def test_the_tlc_scale_in_one_pass_writes_the_bytes_of_means_then_product(shape: tuple[int, ...],
                                                                           window: tuple[int, int]) -> None:
    """``local_scale`` (the window means and the SCA product, one row at a time) against ``box_mean`` then
    ``linear``: the same bytes, with one thread and with two; rows of means that are not whole groups of
    the micro-kernel's pixels (47 - 13 + 1 = 35), batches, a window as large as the map. A window larger
    than the map is refused."""
    lib = _library()
    gen = torch.Generator().manual_seed(5)
    c = shape[-1]
    v = (torch.randn(shape, generator=gen) * 2 + 3).contiguous()  # N H W C
    g = v.permute(0, 3, 1, 2)  # N C H W, channels_last
    conv = torch.nn.Conv2d(c, c, 1)
    weights = native.linear_weights(lib, conv)
    k1, k2 = window
    fused = _with_one_thread_and_two(lambda: native.local_scale(lib, weights, g, k1, k2))
    apart = _with_one_thread_and_two(
        lambda: native.linear(lib, weights, native.box_mean(lib, v, k1, k2).permute(0, 3, 1, 2)).permute(0, 2, 3, 1))
    assert fused[0].shape == (shape[0], shape[1] - k1 + 1, shape[2] - k2 + 1, c)
    assert all(torch.equal(a, b) for a, b in zip(fused + apart[1:], apart[:1] * 3, strict=True))
    with torch.inference_mode():
        want = conv(torch.nn.functional.avg_pool2d(g, window, stride=1))
    assert (fused[0] - want.permute(0, 2, 3, 1)).abs().max().item() <= 1e-4
    with pytest.raises(RuntimeError, match="not supported"):
        native.local_scale(lib, weights, g, shape[1] + 1, k2)


def test_a_cache_that_cannot_be_written_is_not_fatal(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    if build.compiler() is None:
        pytest.skip("no C++ compiler")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("NAFCLI_CACHE_DIR", str(blocker))
    build.forget()
    try:
        result = native.load()
        assert isinstance(result, native.NativeUnavailable) and "\n" not in str(result)
        block = _block(32)
        x = _input((1, 32, 10, 10))
        with torch.inference_mode():
            assert torch.allclose(block(x), block._forward_plain(x), atol=1e-5)
    finally:
        build.forget()


def test_results_do_not_depend_on_the_number_of_threads() -> None:
    """Bit for bit the same with 1, 2 and 3 threads (a Ray worker of one thread writes the same bytes as
    a local run of two): the channel sums are added row by row in row order, the box means' sliding sums
    run the same way whoever computes them."""
    lib = _library()
    threads = torch.get_num_threads()
    cases = [(_block(32, (40, 70)), _input((1, 32, 61, 97))), (_block(128, (20, 30)), _input((2, 128, 33, 45))),
             (_block(64), _input((1, 64, 203, 340))), (_block(16), _input((2, 16, 20, 24))),
             (_block(256), _input((2, 256, 12, 14)))]  # global SCA on a batch of two (NAFSSR's views)
    v = _input((2, 48, 67, 99)).permute(0, 2, 3, 1).contiguous()
    results = []
    try:
        with torch.inference_mode():
            for n in (1, 2, 3):
                torch.set_num_threads(n)
                results.append([block(x) for block, x in cases] + [native.box_mean(lib, v, 31, 45)])
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other, strict=True))


def test_the_first_run_says_whether_the_kernels_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """One ``--verbose`` note, on the first run only: the kernels and where they came from, or why not."""
    from nafcli.inference.restorer import Restorer

    lib = _library()
    model = load(config=("nafnet", {"width": 16, "enc_blk_nums": [1], "middle_blk_num": 1, "dec_blk_nums": [1]}),
                 pretrained=False, seed=1)
    r = Restorer(model, device="cpu", precision="fp32")
    first, second = (r.run(torch.rand(1, 3, 24, 24))[1].notes for _ in range(2))
    assert (f"native NAFBlock kernels: {lib.describe()}; blocks of up to {native.whole_block_limit()} channels "
            "whole") in first and str(lib.path) in lib.describe()
    assert not any("native" in note for note in second)
    monkeypatch.setenv(native.SWITCH_ENV, "0")
    notes = Restorer(model, device="cpu", precision="fp32").run(torch.rand(1, 3, 24, 24))[1].notes
    assert f"native NAFBlock kernels off: native kernels turned off ({native.SWITCH_ENV}=0)" in notes


@pytest.mark.parametrize("window", [None, (5, 9)], ids=["global", "tlc"])
def test_blocks_the_kernels_do_not_take_give_the_same_bytes_at_any_thread_count(
        window: tuple[int, int] | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """fp32 on the CPU, a channel count the kernels were not built for (12; 8 too where vectors hold 16
    floats): the block runs with addmm products and a float64 SCA, within float rounding of the torch block,
    and one thread writes what two write (oneDNN's 8 -> 8 product does not, on the Zen 5 EPYC)."""
    lib = _library()
    widths = [12] + ([8] if lib.vector_width == 16 else [])
    taken: list[int] = []
    invariant = FastNAFBlock._forward_invariant

    def spy(self, inp):  # noqa: ANN001, ANN202
        taken.append(inp.shape[1])
        return invariant(self, inp)

    monkeypatch.setattr(FastNAFBlock, "_forward_invariant", spy)
    for c in widths:
        block, x = _block(c, window, seed=c), _input((1, c, 23, 31), seed=c)
        outs = _with_one_thread_and_two(lambda block=block, x=x: block(x))
        with torch.inference_mode():
            want = block._forward_plain(x)
        assert torch.equal(outs[0], outs[1])
        assert (outs[0] - want).abs().max().item() <= 2e-5 * max(1.0, want.abs().max().item())
    assert taken == [c for c in widths for _ in (1, 2)]


@pytest.mark.parametrize(("k", "n", "bias"), [(32, 32, True), (64, 128, False), (256, 512, False), (512, 512, True)])
def test_the_native_1x1_product_matches_the_convolution_at_any_thread_count(k: int, n: int, bias: bool) -> None:
    lib = _library()
    gen = torch.Generator().manual_seed(k + n)
    conv = torch.nn.Conv2d(k, n, 1, bias=bias)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * 0.1)
    x = _input((2, k, 7, 9), seed=k)  # 126 rows: a zero-padded last group of the six-row micro-kernel
    assert native.linear_supported(lib, k, n)
    outs = _with_one_thread_and_two(lambda: native.linear(lib, native.linear_weights(lib, conv), x))
    with torch.inference_mode():
        want = conv(x)
    assert outs[0].shape == want.shape and outs[0].permute(0, 2, 3, 1).is_contiguous()
    assert torch.equal(outs[0], outs[1])
    assert (outs[0] - want).abs().max().item() <= 1e-5 * max(1.0, want.abs().max().item())


def test_the_native_1x1_product_refuses_what_it_was_not_built_for() -> None:
    lib = _library()
    assert not native.linear_supported(lib, 32, 48)  # neither C nor 2C
    assert not native.linear_supported(lib, 1024, 2048)  # a width not built
    conv = torch.nn.Conv2d(32, 48, 1)
    with pytest.raises(RuntimeError, match="32 -> 48"):
        native.linear(lib, native.linear_weights(lib, conv), _input((1, 32, 4, 4)))


@pytest.mark.parametrize(("c", "shape"), [(32, (2, 32, 14, 18)), (256, (1, 256, 8, 10)), (512, (1, 512, 6, 4))])
def test_the_native_down_sampling_matches_the_convolution_at_any_thread_count(c: int, shape: tuple) -> None:
    """The 2x2 stride-2 convolution C -> 2C: 7 x 9 and 4 x 5 outputs (zero-padded last blocks of the
    six-pixel micro-kernel), within float rounding of oneDNN's, the same bytes at one thread and two."""
    lib = _library()
    conv = torch.nn.Conv2d(c, 2 * c, 2, 2)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=torch.Generator().manual_seed(c)) * 0.1)
    x = _input(shape, seed=c)
    assert native.down_supported(lib, conv, x)
    outs = _with_one_thread_and_two(lambda: native.down(lib, native.down_weights(lib, conv), x))
    with torch.inference_mode():
        want = conv(x)
    assert outs[0].shape == want.shape and outs[0].permute(0, 2, 3, 1).is_contiguous()
    assert torch.equal(outs[0], outs[1])
    assert (outs[0] - want).abs().max().item() <= 1e-5 * max(1.0, want.abs().max().item())


def test_the_native_down_sampling_refuses_what_it_was_not_built_for() -> None:
    lib = _library()
    conv = torch.nn.Conv2d(32, 64, 2, 2)
    assert not native.down_supported(lib, conv, _input((1, 32, 6, 7)))  # an odd side
    assert not native.down_supported(lib, torch.nn.Conv2d(32, 48, 2, 2), _input((1, 32, 6, 6)))  # not 2C
    assert not native.down_supported(lib, torch.nn.Conv2d(32, 64, 3, 2), _input((1, 32, 6, 6)))  # not 2x2
    assert not native.down_supported(lib, torch.nn.Conv2d(1024, 2048, 2, 2), _input((1, 1024, 2, 2)))  # not built
    with pytest.raises(RuntimeError, match="32 channels on 6x7"):
        native.down(lib, native.down_weights(lib, conv), _input((1, 32, 6, 7)))


@pytest.mark.parametrize(("c", "shape"), [(32, (2, 32, 7, 9)), (64, (1, 64, 1, 5)), (16, (1, 16, 13, 1)),
                                         (32, (1, 32, 4, 43)), (64, (2, 64, 3, 18))])
def test_the_native_ending_matches_the_convolution_and_residual_at_any_thread_count(c: int, shape: tuple) -> None:
    """The 3x3 convolution C -> 3 with zero padding plus the image residual, on maps whose every pixel is
    at a border (one row, one column) too, and on rows wide enough for the kernel's groups of a vector's
    width of pixels with some left over (43 and 18 columns): within float rounding of oneDNN's, the same
    bytes at one thread and two."""
    lib = _library()
    conv = torch.nn.Conv2d(c, 3, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=torch.Generator().manual_seed(c)) * 0.1)
    x = _input(shape, seed=c)
    residual = _input((shape[0], 3, *shape[2:]), seed=c + 1)
    assert native.ending_supported(lib, conv)
    outs = _with_one_thread_and_two(lambda: native.ending(lib, native.ending_weights(conv), x, residual))
    with torch.inference_mode():
        want = conv(x) + residual
    assert outs[0].shape == want.shape
    assert torch.equal(outs[0], outs[1])
    assert (outs[0] - want).abs().max().item() <= 1e-5 * max(1.0, want.abs().max().item())


def test_the_native_ending_refuses_what_it_was_not_built_for() -> None:
    lib = _library()
    assert not native.ending_supported(lib, torch.nn.Conv2d(32, 4, 3, padding=1))  # not three channels
    assert not native.ending_supported(lib, torch.nn.Conv2d(32, 3, 3, padding=0))  # no padding
    assert not native.ending_supported(lib, torch.nn.Conv2d(32, 3, 3, padding=1, bias=False))
    assert not native.ending_supported(lib, torch.nn.Conv2d(24, 3, 3, padding=1))  # a width not built
    with pytest.raises(RuntimeError, match="24 channels"):
        native.ending(lib, native.ending_weights(torch.nn.Conv2d(24, 3, 3, padding=1)), _input((1, 24, 4, 4)),
                      _input((1, 3, 4, 4)))


def test_the_kernels_are_built_for_this_machines_l2_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The L2 size from sysfs is a build flag (the wider blocks' pixel blocks are sized by it), so a
    library built for another cache size is another file."""
    assert build.l2_bytes() >= 64 * 1024
    assert build.tuning_flags() == (f"-DNB_L2_BYTES={build.l2_bytes()}",
                                    f"-DNB_PREFETCH_CHANNELS={build.prefetch_channels()}")
    cxx = build.compiler()
    if cxx is None:
        pytest.skip("no C++ compiler")
    here = build.library_path(cxx)
    monkeypatch.setattr(build, "l2_bytes", lambda: 3 << 20)
    assert build.library_path(cxx) != here


def test_the_networks_resampling_and_ending_run_natively_and_give_the_same_bytes_with_one_thread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A width-32 NAFNet of five levels: every up-sampling (product, pixel shuffle and skip sum in one
    pass), its 256-channel down-sampling and the ending run in the kernels (oneDNN's 256 -> 512 up-sampling
    product rounds differently with one thread and with two on the Zen 5 EPYC, its 256 -> 512
    down-sampling on this 8 x 10 map on the Xeon), the narrower down-samplings where this CPU's rule puts
    them (:func:`~nafcli.archs.native.native_down_from`); the network is within 1e-4 of the reference and
    one thread writes what two write."""
    _library()
    ups = _spy_calls(monkeypatch, "up_skip", 2)
    downs = _spy_calls(monkeypatch, "down", 2)
    endings = _spy_calls(monkeypatch, "ending", 2)
    model = load(config=("nafnet", {"width": 32, "enc_blk_nums": [1, 1, 1, 1], "middle_blk_num": 1,
                                    "dec_blk_nums": [1, 1, 1, 1]}), pretrained=False, seed=3)
    fast = model.spec.fast(model.module, dtype=torch.float32)
    x = torch.rand((1, 3, 64, 80), generator=torch.Generator().manual_seed(3))
    outs = _with_one_thread_and_two(lambda: fast(x))
    with torch.inference_mode():
        want = model.module(x)
    assert sorted(set(ups)) == [64, 128, 256, 512]
    assert set(downs) == {c for c in (32, 64, 128, 256) if c >= native.native_down_from()} and 256 in downs
    assert set(endings) == {32}
    assert torch.equal(outs[0], outs[1])
    assert (outs[0] - want).abs().max().item() <= 1e-4


@pytest.mark.parametrize(("vendor", "want"), [("AuthenticAMD", 128), ("GenuineIntel", 32), ("", 32)])
def test_how_wide_the_maps_the_kernels_prefetch_are_is_a_rule_by_cpu(monkeypatch: pytest.MonkeyPatch, vendor: str,
                                                                     want: int) -> None:
    """Up to 128 channels on AMD CPUs (measured faster on the Zen 5), 32 elsewhere; a build flag, so a
    library built by the other rule is another file."""
    monkeypatch.setattr(build, "cpu_vendor", lambda: vendor)
    assert build.prefetch_channels() == want
    assert f"-DNB_PREFETCH_CHANNELS={want}" in build.tuning_flags()
    cxx = build.compiler()
    if cxx is not None:
        here = build.library_path(cxx)
        monkeypatch.setattr(build, "cpu_vendor", lambda: "GenuineIntel" if want == 128 else "AuthenticAMD")
        assert build.library_path(cxx) != here


@pytest.mark.parametrize(("vendor", "flags", "want"), [
    ("AuthenticAMD", "fma avx2 avx512f", 32), ("AuthenticAMD", "fma avx2", 256), ("GenuineIntel", "fma avx2 avx512f", 256),
    ("", "", 256)])
def test_which_down_samplings_run_natively_is_a_rule_by_cpu(monkeypatch: pytest.MonkeyPatch, vendor: str, flags: str,
                                                            want: int) -> None:
    """Every width on an AMD CPU with AVX-512 (measured faster there), from 256 channels on elsewhere."""
    from nafcli.archs.native import nafblock

    monkeypatch.setattr(nafblock, "cpu_vendor", lambda: vendor)
    monkeypatch.setattr(nafblock, "cpu_flags", lambda: ("a CPU", flags))
    nafblock.native_down_from.cache_clear()
    try:
        assert native.native_down_from() == want
    finally:
        nafblock.native_down_from.cache_clear()


@pytest.mark.parametrize(("k", "shape"), [(32, (2, 32, 7, 9)), (64, (1, 64, 3, 100)), (512, (1, 512, 4, 5))])
def test_the_native_up_sampling_matches_product_shuffle_and_skip_at_any_thread_count(k: int, shape: tuple) -> None:
    """Product, pixel shuffle and skip sum in one pass: rows of 9 and 100 pixels (a zero-padded last block
    of the micro-kernel, a block and a part), within float rounding of torch's three steps, the same bytes
    at one thread and two."""
    lib = _library()
    conv = torch.nn.Conv2d(k, 2 * k, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=torch.Generator().manual_seed(k)) * 0.1)
    x = _input(shape, seed=k)
    skip = _input((shape[0], k // 2, 2 * shape[2], 2 * shape[3]), seed=k + 1)
    assert native.up_skip_supported(lib, conv)
    outs = _with_one_thread_and_two(lambda: native.up_skip(lib, native.up_skip_weights(lib, conv), x, skip))
    with torch.inference_mode():
        want = torch.nn.functional.pixel_shuffle(conv(x), 2) + skip
    assert outs[0].shape == want.shape and outs[0].permute(0, 2, 3, 1).is_contiguous()
    assert torch.equal(outs[0], outs[1])
    assert (outs[0] - want).abs().max().item() <= 1e-5 * max(1.0, want.abs().max().item())


def test_the_native_up_sampling_refuses_what_it_was_not_built_for() -> None:
    lib = _library()
    assert not native.up_skip_supported(lib, torch.nn.Conv2d(32, 64, 1))  # a bias
    assert not native.up_skip_supported(lib, torch.nn.Conv2d(32, 48, 1, bias=False))  # not 2K
    assert not native.up_skip_supported(lib, torch.nn.Conv2d(1024, 2048, 1, bias=False))  # a width not built
    assert native.up_skip_supported(lib, torch.nn.Conv2d(16, 32, 1, bias=False)) == (lib.vector_width == 8)
    with pytest.raises(RuntimeError, match="24 channels"):
        native.up_skip(lib, torch.zeros(24, 48), _input((1, 24, 2, 2)), _input((1, 12, 4, 4)))


@pytest.mark.parametrize("whole", [True, False], ids=["whole", "hybrid"])
@pytest.mark.parametrize("c", [32, 256, 512])
def test_tlc_blocks_give_the_same_bytes_with_one_thread_and_two(c: int, whole: bool,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A block with TLC windows smaller than its map: the SCA product on the window means runs in the
    kernels' micro-kernel (a whole block: with the means, ``local_scale``; the hybrid: ``linear``), so a
    whole native block writes the same bytes with one thread and with two (oneDNN's 256 -> 256 does not,
    on the Zen 5 EPYC). The hybrid's other products are oneDNN's: there only the path and the values are
    checked (it runs by default where the whole block does not pay, the Xeon, whose oneDNN products gave
    the same bytes at both thread counts in the Ray tests)."""
    _library()
    monkeypatch.setenv(native.nafblock.WHOLE_ENV, str(1 << 20 if whole else 0))
    calls = _spy_calls(monkeypatch, "local_scale" if whole else "linear", 2)
    block, x = _block(c, (10, 30), seed=c), _input((1, c, 40, 50), seed=c)
    outs = _with_one_thread_and_two(lambda: block(x))
    with torch.inference_mode():
        want = block._forward_plain(x)
    assert calls == [c, c]
    if whole:
        assert torch.equal(outs[0], outs[1])
    assert (outs[0] - want).abs().max().item() <= 2e-5 * max(1.0, want.abs().max().item())
