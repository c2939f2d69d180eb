"""Where a 24 MP image's time goes on a GPU: one ``Restorer.run`` under ``torch.profiler``.

    python benchmarks/gpu_profile.py --out "$OUT"                       # NAFNet-SIDD-width32, bf16, 4896^2
    python benchmarks/gpu_profile.py --device cpu --side 512 --out /tmp/gp   # try the script

Why: on the H200 (2026-12-04) a 24 MP image took 1.03 s in bf16 and 1.27 s in fp32 with TF32, so most
of the time does not scale with the bytes of the compute type; the issue's target (50 MP/s) needs to know
whether that is the copies to and from the device, the CPU work around the network, or kernels of the
network itself. Prints the wall time of each stage of ``Restorer.run`` measured apart (the copy in, the
network on the tiles, the copy out) and the profiler's top operators by device time and by CPU time;
writes them to ``--out``/profile.txt. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from nafcli.inference.restorer import Restorer
from nafcli.quality.bench import smooth_random_image
from nafcli.quality.measure import time_calls
from nafcli.weights import load


def timed(fn: Callable[[], object], device: torch.device, repeat: int) -> float:
    """Median seconds of ``repeat`` calls after a warm-up one (:func:`nafcli.quality.measure.time_calls`)."""
    return statistics.median(time_calls(fn, device, repeat)[1])  # type: ignore[arg-type]


def ln_two_reductions(t: torch.Tensor, eps: float) -> torch.Tensor:
    """The channel LayerNorm (no affine) as a float32 mean, a float32 variance about it, and one
    elementwise pass: PyTorch's reduction kernels pack many short rows into a block."""
    v = t.permute(0, 2, 3, 1)
    mean = v.mean(-1, keepdim=True, dtype=torch.float32)
    var = (v.float() - mean).square().mean(-1, keepdim=True)
    return ((v - mean) * torch.rsqrt(var + eps)).to(t.dtype).permute(0, 3, 1, 2)


def ln_moments(t: torch.Tensor, eps: float) -> torch.Tensor:
    """The same from the first two moments, both reduced in float32 straight from ``t`` (no float32 copy
    of the map; E[x^2] - E[x]^2 loses digits when the mean is large against the spread)."""
    v = t.permute(0, 2, 3, 1)
    c = v.shape[-1]
    mean = v.mean(-1, keepdim=True, dtype=torch.float32)
    msq = torch.linalg.vector_norm(v, dim=-1, keepdim=True, dtype=torch.float32).square() / c
    var = (msq - mean.square()).clamp_min(0)
    return ((v - mean) * torch.rsqrt(var + eps)).to(t.dtype).permute(0, 3, 1, 2)


def layer_norm_variants(dev: torch.device, batch: int, height: int, width: int, precision: str) -> list[str]:
    """The channel LayerNorm on a level-0 map of the tiles just run (32 channels, channels_last), four
    ways: PyTorch's ``F.layer_norm`` on the channels-last view (what the fast path runs; its CUDA kernel
    gives every pixel a thread block of its own, so a 32-channel row leaves most of the block idle), the
    same function through ``torch.compile`` (rows packed into blocks), :func:`ln_two_reductions` and
    :func:`ln_moments`. A lead for the next change, not a change."""
    from nafcli.archs.fast_blocks import CHANNELS_LAST, layer_norm_cl
    from nafcli.inference.settings import DTYPES

    dtype = DTYPES[precision]
    x = (torch.randn((batch, 32, height, width), device=dev) + 3).to(dtype).contiguous(memory_format=CHANNELS_LAST)
    compiled = torch.compile(lambda t: layer_norm_cl(t, 1e-6), dynamic=False)
    want = layer_norm_cl(x.double(), 1e-6).float()  # the float64 LayerNorm of the same values
    lines = [f"LayerNorm of a {batch}x32x{height}x{width} {precision} map ({x.numel() * x.element_size() / 1e9:.2f} GB, "
             "mean 3, spread 1; error against float64):"]
    for name, fn in (("F.layer_norm (now)", lambda: layer_norm_cl(x, 1e-6)), ("torch.compile", lambda: compiled(x)),
                     ("two reductions", lambda: ln_two_reductions(x, 1e-6)), ("moments", lambda: ln_moments(x, 1e-6))):
        try:
            err = (fn().float() - want).abs().max().item()
            seconds = timed(fn, dev, 5)
            lines.append(f"  {name}: {seconds * 1e3:.2f} ms ({2 * x.numel() * x.element_size() / seconds / 1e12:.2f} "
                         f"TB/s for one read and one write), max abs error {err:.1e}")
        except Exception as e:  # noqa: BLE001 - a variant that fails is a finding, not the end of the run
            lines.append(f"  {name}: failed ({type(e).__name__}: {str(e).splitlines()[0][:200]})")
    return lines


def whole_run_variants(r: Restorer, x: torch.Tensor, dev: torch.device, repeat: int) -> list[str]:
    """The 24 MP run again with each LayerNorm variant in the fast NAFBlocks (patched in for the run, put
    back after): what a change would give end to end, and how far its output moves."""
    from nafcli.archs import fast_blocks

    saved = fast_blocks.layer_norm_cl
    want, _ = r.run(x)
    mp = x.shape[-2] * x.shape[-1] / 1e6
    lines = ["the whole run with the LayerNorm replaced:"]
    for name, fn in (("torch.compile", torch.compile(saved, dynamic=True)), ("two reductions", ln_two_reductions),
                     ("moments", ln_moments)):
        fast_blocks.layer_norm_cl = fn
        try:
            _, times, _, out = time_calls(lambda: r.run(x)[0], dev, repeat)  # its warm-up compiles
            seconds = statistics.median(times)
            lines.append(f"  {name}: {seconds:.3f} s = {mp / seconds:.1f} MP/s, output within "
                         f"{(out - want).abs().max().item():.1e} of the current one")
        except Exception as e:  # noqa: BLE001 - a variant that fails is a finding
            lines.append(f"  {name}: failed ({type(e).__name__}: {str(e).splitlines()[0][:200]})")
        finally:
            fast_blocks.layer_norm_cl = saved
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="nafnet-sidd-width32")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--side", type=int, default=4896)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(args.device)
    model = load(model=args.model, pretrained=False)
    x = smooth_random_image(model.in_channels * model.views, args.side)
    r = Restorer(model, device=dev, precision=args.precision)
    _, info = r.run(x)  # warm-up: the memory probe, cuDNN's plans, the allocator's pools
    lines = [f"{args.model} {args.precision} {args.side}x{args.side} on {dev}: {info.tiles} tile(s) of "
             f"{info.tile_shape[0]}x{info.tile_shape[1]}, batch {info.batch_size}"]
    whole = timed(lambda: r.run(x), dev, args.repeat)
    xd = x.to(dev)
    copy_in = timed(lambda: x.to(dev), dev, args.repeat)
    copy_out = timed(lambda: xd.to("cpu"), dev, args.repeat)
    th, tw = info.tile_shape
    tiles = torch.rand((info.batch_size, x.shape[1], th, tw), device=dev)
    network = timed(lambda: r.forward(tiles), dev, args.repeat)
    forwards = -(-info.tiles // info.batch_size)
    mp = args.side * args.side / 1e6
    lines += [
        f"Restorer.run: {whole:.3f} s median = {mp / whole:.1f} MP/s",
        f"copy of the input to the device: {copy_in:.3f} s ({x.numel() * 4 / copy_in / 1e9:.1f} GB/s); "
        f"the output back: {copy_out:.3f} s",
        f"network alone: {network:.3f} s a forward of {info.batch_size} tile(s), x{forwards} forwards = "
        f"{network * forwards:.3f} s ({mp / (network * forwards):.1f} MP/s of the image)",
        f"left for the rest (tiling, blending, clamping, planning): {whole - network * forwards - copy_in - copy_out:.3f} s",
    ]
    if dev.type == "cuda":
        lines += ["", *layer_norm_variants(dev, info.batch_size, th, tw, r.precision)]
        lines += ["", *whole_run_variants(r, x, dev, args.repeat)]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=activities, record_shapes=True) as prof:
        r.run(x)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    averages = prof.key_averages()
    if dev.type == "cuda":
        busy = sum(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0)) for e in averages) / 1e6
        lines += [f"the device was busy {busy:.3f} s of the profiled run (the rest: waiting for the host)",
                  "", "top operators by device time:", averages.table(sort_by="cuda_time_total", row_limit=25),
                  "", "the same by input shape (which convolution is which):",
                  prof.key_averages(group_by_input_shape=True).table(sort_by="cuda_time_total", row_limit=20,
                                                                     max_name_column_width=40,
                                                                     max_shapes_column_width=90)]
    lines += ["", "top operators by CPU time:", averages.table(sort_by="cpu_time_total", row_limit=15)]
    text = "\n".join(lines)
    (args.out / "profile.txt").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
