"""The fast path (each architecture's ``fast`` module and nafcli.archs.fast_blocks) against the reference
path: golden cases, TLC sums, precision, Restorer."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from helpers.models import PIPELINE, SHARED

from nafcli.archs import NAFNetSpec, NAFSSRSpec
from nafcli.archs.fast_tlc import fast_local_mean, mul_replicated, valid_box_mean
from nafcli.archs.nafnet.fast import FastNAFNet
from nafcli.archs.nafnet.fast import optimize as optimize_nafnet
from nafcli.archs.nafssr.fast import FastNAFSSR
from nafcli.archs.nafssr.fast import optimize as optimize_nafssr
from nafcli.archs.tlc import local_mean
from nafcli.errors import UsageError
from nafcli.inference.restorer import Restorer
from nafcli.quality.bench import psnr_01
from nafcli.weights import load

GOLDEN = SHARED / "reference" / "golden"


def _golden_cases() -> list[str]:
    index = GOLDEN / "index.json"
    if not index.is_file():
        return []
    return sorted(json.loads(index.read_text()))


def _load_case(name: str):
    if not GOLDEN.is_dir():
        pytest.skip(f"{GOLDEN} is absent (the shared reference data)")
    from safetensors.torch import load_file

    case = json.loads((GOLDEN / "index.json").read_text())[name]
    model = load(weights=GOLDEN / case["weights"], tlc=case["official_class"] != "NAFNet")
    io = load_file(str(GOLDEN / case["io"]))
    return model, io["input"], io["output"]


@pytest.mark.skipif(not _golden_cases(), reason="../shared/reference/golden is absent")
@pytest.mark.parametrize("fold_sca", [True, False], ids=["fold-sca", "no-fold-sca"])
@pytest.mark.parametrize("name", _golden_cases() or ["none"])
def test_fast_matches_golden_fp32(name: str, fold_sca: bool) -> None:
    model, inp, expected = _load_case(name)
    fast = model.spec.fast(model.module, dtype=torch.float32, fold_sca=fold_sca)
    assert isinstance(fast, FastNAFSSR if name.startswith("nafssr") else FastNAFNet)
    with torch.inference_mode():
        out = fast(inp)
    assert out.shape == expected.shape
    assert out.dtype == torch.float32
    err = (out - expected).abs().max().item()
    assert err <= 1e-4, f"{name}: fast path differs from the authors' output by {err:.2e}"


@pytest.mark.skipif(not _golden_cases(), reason="../shared/reference/golden is absent")
def test_optimize_leaves_reference_untouched() -> None:
    model, inp, expected = _load_case("nafnet-local-small")
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    model.spec.fast(model.module, dtype=torch.bfloat16)
    after = model.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with torch.inference_mode():
        assert (model.module(inp) - expected).abs().max().item() <= 1e-4


@pytest.mark.parametrize(
    ("shape", "window"),
    [
        ((1, 3, 40, 70), (24, 24)),  # both sides exceed the window
        ((2, 4, 20, 90), (45, 30)),  # only the width exceeds it
        ((1, 2, 17, 9), (8, 100)),  # only the height exceeds it; odd sizes
        ((1, 2, 16, 16), (16, 16)),  # window covers the map: the global mean
    ],
)
def test_fast_local_mean_matches_reference(shape: tuple[int, ...], window: tuple[int, int]) -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=gen) * 3 + 5  # an offset: centring must not cost precision
    ref = local_mean(x, window)
    got = fast_local_mean(x.contiguous(memory_format=torch.channels_last), window)
    assert got.shape == ref.shape
    assert (got - ref).abs().max().item() < 1e-5


@pytest.mark.parametrize(
    ("shape", "window"),
    [((2, 8, 20, 30), (7, 9)), ((1, 4, 20, 30), (20, 5)), ((1, 4, 9, 40), (4, 40)), ((1, 2, 5, 5), (1, 1))],
)
def test_sca_on_valid_means_then_replicate_equals_sca_on_padded_means(
    shape: tuple[int, ...], window: tuple[int, int]
) -> None:
    # The block convolves the valid box means and pads afterwards; a 1x1 convolution is pointwise, so
    # this must equal the reference order (pad, then convolve), and mul_replicated must equal x * pad(s).
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(shape, generator=gen).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(shape[1], shape[1], 1)
    box, padding = valid_box_mean(x, window)
    with torch.no_grad():
        ours = mul_replicated(x, conv(box), padding)
        ref = x * conv(local_mean(x, window))
    assert ours.shape == x.shape
    assert ours.is_contiguous(memory_format=torch.channels_last)
    assert (ours - ref).abs().max().item() < 1e-5


def test_fast_local_mean_float32_sums_stay_accurate_on_large_maps() -> None:
    # A 1500-px row with a large DC offset: plain float32 running sums would lose ~1e-3 here.
    gen = torch.Generator().manual_seed(2)
    x = torch.randn((1, 1, 200, 1500), generator=gen) + 100.0
    ref = local_mean(x.double(), (96, 384))
    got = fast_local_mean(x, (96, 384)).double()
    assert (got - ref).abs().max().item() < 2e-5


def test_fast_local_mean_keeps_float32_for_bf16_input() -> None:
    x = torch.rand((1, 4, 30, 50)).to(torch.bfloat16)
    got = fast_local_mean(x, (10, 10))
    assert got.dtype == torch.float32
    assert (got - local_mean(x.float(), (10, 10))).abs().max().item() < 1e-5


def test_bf16_box_means_are_the_float32_ones_of_the_same_values() -> None:
    # A bf16 map on the CPU goes to float32 and through the same sums as a float32 map (the native
    # kernels' where they load): the same bytes, and within float32 rounding of the reference.
    gen = torch.Generator().manual_seed(4)
    # values of many magnitudes, so that float32 sums of 48 x 48 of them round (float64 ones do not)
    x = ((torch.randn((1, 32, 70, 90), generator=gen) * 2).to(torch.bfloat16)
         .contiguous(memory_format=torch.channels_last))
    got, padding = valid_box_mean(x, (48, 48))
    same, same_padding = valid_box_mean(x.float(), (48, 48))
    assert got.dtype == torch.float32
    assert padding == same_padding
    assert torch.equal(got, same)
    ref = local_mean(x.double(), (48, 48))
    assert (torch.nn.functional.pad(got, padding, mode="replicate").double() - ref).abs().max().item() < 1e-5


def test_layer_norm_statistics_are_float32_for_bf16() -> None:
    from nafcli.archs.fast_blocks import layer_norm_cl

    # A large common offset: bf16 statistics would lose the small per-pixel variations entirely.
    x = (
        (torch.randn((1, 32, 16, 16)) * 0.5 + 40)
        .to(torch.bfloat16)
        .contiguous(memory_format=torch.channels_last)
    )
    got = layer_norm_cl(x, 1e-6)
    assert got.dtype == torch.bfloat16
    want = torch.nn.functional.layer_norm(x.float().permute(0, 2, 3, 1), (32,), eps=1e-6).permute(0, 3, 1, 2)
    # within one bf16 rounding of the float32 computation
    assert (got.float() - want).abs().max().item() <= 2**-8 * want.abs().max().item()


def _random(spec, *, tlc: bool, seed: int):
    """A model of ``spec`` with random weights (what benchmarks run): the loader's ``config`` source."""
    return load(config=(spec.arch, spec.config()), tlc=tlc, seed=seed, pretrained=False)


def _tiny_nafnet(tlc: bool = False):
    spec = NAFNetSpec(width=8, enc_blk_nums=(1, 1), middle_blk_num=1, dec_blk_nums=(1, 1))
    return _random(spec, tlc=tlc, seed=3)


@pytest.mark.parametrize("tlc", [False, True])
def test_fast_batch_and_odd_sizes_match_reference(tlc: bool) -> None:
    model = _tiny_nafnet(tlc)
    if tlc:  # small windows, so that the local mean differs from the global one at this size
        for level, pool in model.module._pools_by_level():
            pool.window = (20 >> level, 14 >> level)
    x = torch.rand((3, 3, 50, 37))
    fast = optimize_nafnet(model.module)
    assert isinstance(fast, FastNAFNet)
    with torch.inference_mode():
        assert (fast(x) - model.module(x)).abs().max().item() <= 1e-4


def test_fast_nafssr_matches_reference_batch_of_pairs() -> None:
    model = _random(NAFSSRSpec(up_scale=2, width=16, num_blks=2), tlc=True, seed=4)
    x = torch.rand((2, 6, 20, 60))
    fast = optimize_nafssr(model.module)
    assert isinstance(fast, FastNAFSSR)
    with torch.inference_mode():
        assert (fast(x) - model.module(x)).abs().max().item() <= 1e-4


def _photo_crop(size: int = 192) -> torch.Tensor:
    import cv2

    path = SHARED / "samples" / "noisy.png"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    rgb = bgr[:size, :size, ::-1].astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]


def test_bf16_within_45db_of_fp32_on_a_photo() -> None:
    weights = PIPELINE / "denoise-nafnet.pth"
    if not weights.is_file():
        pytest.skip(f"{weights} is absent")
    model = load(weights=weights)
    x = _photo_crop()
    fp32, fp32_info = Restorer(model, device="cpu", precision="fp32").run(x)
    bf16, bf16_info = Restorer(model, device="cpu", precision="bf16").run(x)
    assert (fp32_info.precision, bf16_info.precision) == ("fp32", "bf16")
    assert not torch.equal(fp32, bf16)  # it really ran in reduced precision
    assert psnr_01(bf16, fp32) >= 45.0


def test_restorer_fast_by_default_and_reference_selectable() -> None:
    model = _tiny_nafnet()
    x = torch.rand((1, 3, 33, 40))
    fast = Restorer(model, device="cpu")
    ref = Restorer(model, device="cpu", fast=False)
    assert isinstance(fast.module, FastNAFNet)
    assert ref.module is model.module
    assert fast.path == "fast" and ref.path == "reference"
    (got, got_info), (want, want_info) = fast.run(x), ref.run(x)
    assert got_info.path == "fast" and want_info.path == "reference"
    assert (got - want).abs().max().item() <= 1e-5


def test_restorer_runs_unknown_modules_as_they_are() -> None:
    model = _tiny_nafnet()

    class Wrapper(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x)

    x = torch.rand((1, 3, 32, 32))
    want, _ = Restorer(model, device="cpu", fast=False).run(x)
    model.module = Wrapper(model.module)
    r = Restorer(model, device="cpu")
    assert r.module is model.module and not r.fast and r.path == "reference"
    got, info = r.run(x)
    assert info.path == "reference"
    assert torch.equal(got, want)


def test_precision_validation() -> None:
    from nafcli.inference.settings import check_precision, native_bf16, native_fp16

    cpu = torch.device("cpu")
    with pytest.raises(UsageError, match="precision"):
        check_precision("int8", cpu)
    assert check_precision("auto", cpu) == ("bf16" if native_bf16(cpu) else "fp32")
    if native_fp16(cpu):
        assert check_precision("fp16", cpu) == "fp16"
    else:
        with pytest.raises(UsageError, match="fp16"):
            check_precision("fp16", cpu)


def test_threads_never_oversubscribe() -> None:
    from nafcli.inference.settings import configure_threads, default_threads, usable_cores

    before = torch.get_num_threads()
    try:
        cores = usable_cores()
        assert default_threads(torch.device("cpu")) == cores
        assert default_threads(torch.device("cpu"), workers=cores * 2) == 1
        assert default_threads(torch.device("cuda")) <= 2
        assert configure_threads(1, torch.device("cpu")) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_psnr_helper() -> None:
    a = torch.zeros((1, 3, 4, 4))
    assert math.isinf(psnr_01(a, a))
    assert abs(psnr_01(a + 0.1, a) - 20.0) < 1e-4


@pytest.mark.parametrize("kernels", ["native", "torch"])
@pytest.mark.parametrize("window", [(384, 384), (24, 24), (45, 135)])
def test_fast_local_mean_on_a_4000x3000_map_is_within_1e5_of_float64(window: tuple[int, int], kernels: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 2 req 4 holds on the default (fast) path too: the native kernels' sums are float64, and
    without them large maps switch the running sums to float64."""
    from nafcli.archs import fast_tlc, native

    if kernels == "torch":
        monkeypatch.setattr(fast_tlc.native, "load", lambda: native.NativeUnavailable("off for this test"))
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((1, 1, 3000, 4000), generator=gen)
    ref = local_mean(x.double(), window)
    got = fast_local_mean(x, window).double()
    assert (got - ref).abs().max().item() <= 1e-5


@pytest.mark.parametrize(("shape", "window"), [((1, 8, 70, 70), (48, 48)), ((2, 4, 35, 50), (24, 30))])
def test_box_means_by_band_products_equal_the_integral_image(
    shape: tuple[int, ...], window: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the native kernels (bf16, no compiler), small maps take their window sums from two
    band-matrix products, larger ones from an integral image: both give the TLC means (within float32
    rounding) and the same replicate padding, as do the native kernels' sliding sums where they run."""
    from nafcli.archs import fast_tlc, native

    gen = torch.Generator().manual_seed(4)
    x = (torch.randn(shape, generator=gen) * 2 + 3).contiguous(memory_format=torch.channels_last)
    by_native, pad_n = valid_box_mean(x, window)
    monkeypatch.setattr(fast_tlc.native, "load", lambda: native.NativeUnavailable("off for this test"))
    by_products, pad_a = valid_box_mean(x, window)
    monkeypatch.setattr(fast_tlc, "GEMM_BOX_MAX_MACS", 0)
    by_integral, pad_b = valid_box_mean(x, window)
    assert pad_a == pad_b == pad_n and by_products.shape == by_integral.shape == by_native.shape
    assert (by_native - by_integral).abs().max().item() < 1e-5
    assert by_products.is_contiguous(memory_format=torch.channels_last)
    assert (by_products - by_integral).abs().max().item() < 1e-5
    ref = local_mean(x.double(), window)
    assert (fast_local_mean(x, window).double() - ref).abs().max().item() < 1e-5


# -- off the CPU: every tensor where the model is ------------------------------------------------------
# CI has no GPU, and the fast networks take other branches off the CPU (no native kernels, no oneDNN
# fusions). The meta device stands in for CUDA: a tensor made on the CPU while building or running a
# network on another device fails there as it would on a GPU ("Tensor on device cpu is not on the
# expected device meta"), as the stereo attention's query scale once did on CUDA.


@pytest.mark.parametrize(("model_id", "shape"), [("nafnet-sidd-width32", (2, 3, 64, 64)),
                                                  ("nafnet-gopro-width32", (1, 3, 512, 384)),
                                                  ("nafssr-s-x4", (1, 6, 40, 48))])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fast_networks_build_and_run_where_the_reference_lives(model_id: str, shape: tuple[int, ...],
                                                             dtype: torch.dtype) -> None:
    model = load(model=model_id, pretrained=False)
    fast = model.spec.fast(model.module.to("meta").eval(), dtype=dtype)
    assert all(t.device.type == "meta" for t in [*fast.parameters(), *fast.buffers()])
    with torch.inference_mode():
        out = fast(torch.rand(shape).to("meta"))
    scale = model.scale
    assert out.device.type == "meta" and tuple(out.shape) == (shape[0], shape[1], shape[2] * scale, shape[3] * scale)


def test_forward_moves_its_input_to_the_device() -> None:
    """The tiled runner cuts tiles wherever the image is (the CPU for an image larger than a tenth of the
    GPU's free memory); the network call moves each batch to the device."""
    from nafcli.inference.forward import Forward

    model = load(model="nafnet-sidd-width32", pretrained=False)
    fast = model.spec.fast(model.module.to("meta").eval(), dtype=torch.float32)
    forward = Forward(fast, torch.device("meta"), "fp32", fast=True, mode="off", model_key="test")
    with torch.inference_mode():
        assert forward(torch.rand(1, 3, 32, 32)).device.type == "meta"
        assert forward.eager(torch.rand(1, 3, 32, 32)).device.type == "meta"
