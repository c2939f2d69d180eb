"""What the CPU test suite cannot check about the CUDA path, in one short run on a GPU machine.

    python benchmarks/gpu_checks.py --golden ../shared/reference/golden --out "$OUT"
    python benchmarks/gpu_checks.py --device cpu --golden ../shared/reference/golden --out /tmp/gc  # try it

1. Golden parity on the device: the authors' outputs for the small random-weight models of
   ``shared/reference/golden``, from the reference and the fast network on the device, fp32 within 1e-4
   (the faithfulness bar), bf16/fp16 reported as relative error. The fast fp32 network is also run with
   TF32 allowed (PyTorch's default for cuDNN convolutions), to show what :func:`exact_fp32` is for.
2. Full-size architectures (random weights): the device's ``Restorer.run`` (auto tiles and batches, as
   users run it) against the CPU's fast path (itself checked against the authors' code by the suite), on
   SIDD-width32, GoPro-width32 (TLC active: the image is larger than its training crops) and NAFSSR-S x4.
3. The command line on the device: one image in fp32 and bf16 against the CPU's output, and a folder of
   three images and one broken file (exit code 1, three outputs, the broken file named), also with
   ``--device all``.
4. Levers on a 24 MP image, reported: cuDNN's autotuner on and off, IEEE fp32 against TF32.

Prints one line per check and a summary; exits 1 when a check fails. Writes the lines to ``--out``/checks.txt.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from nafcli.inference import forward as forward_module
from nafcli.inference.restorer import Restorer, RunInfo
from nafcli.quality.bench import smooth_random_image
from nafcli.quality.measure import time_calls
from nafcli.weights import load

LINES: list[str] = []
FAILED: list[str] = []


def report(name: str, ok: bool | None, detail: str) -> None:
    """One check's line; ``ok`` None: a figure reported, nothing to pass or fail."""
    mark = {True: "ok  ", False: "FAIL", None: "info"}[ok]
    line = f"{mark} {name}: {detail}"
    LINES.append(line)
    print(line, flush=True)
    if ok is not None and not ok:
        FAILED.append(name)


@contextlib.contextmanager
def tf32_allowed() -> Iterator[None]:
    """The Restorer's forwards without :func:`exact_fp32`, TF32 on as PyTorch's defaults have it for cuDNN."""
    saved = forward_module.exact_fp32
    forward_module.exact_fp32 = lambda device, precision: contextlib.nullcontext()  # type: ignore[assignment]
    try:
        yield
    finally:
        forward_module.exact_fp32 = saved


def golden(folder: Path, device: str) -> None:
    index = json.loads((folder / "index.json").read_text())
    dev = torch.device(device)
    for name, case in index.items():
        if not (folder / case["weights"]).is_file():
            report(f"golden {name}", None, "not carried")
            continue
        tlc = case["official_class"] in ("NAFNetLocal", "NAFSSR")
        io = load_file(str(folder / case["io"]))
        x, want = io["input"], io["output"]
        scale = want.abs().max().item()
        for label, fast, precision, tf32 in (("reference fp32", False, "fp32", False), ("fast fp32", True, "fp32", False),
                                             ("fast fp32, TF32 allowed", True, "fp32", True),
                                             ("fast bf16", True, "bf16", False), ("fast fp16", True, "fp16", False)):
            if precision == "fp16" and dev.type == "cpu":
                continue
            model = load(weights=folder / case["weights"], tlc=tlc)
            r = Restorer(model, device=dev, precision=precision, fast=fast, tile=0)
            with torch.inference_mode(), (tf32_allowed() if tf32 else contextlib.nullcontext()):
                out = r.forward(x.to(dev)).float().cpu()
            err = (out - want).abs().max().item()
            if precision == "fp32" and not tf32:
                report(f"golden {name} {label}", bool(err <= 1e-4), f"max abs diff {err:.2e} (bar 1e-4)")
            else:
                finite = bool(torch.isfinite(out).all())
                report(f"golden {name} {label}", finite if precision != "fp32" else None,
                       f"max abs diff {err:.2e} = {err / scale:.1e} of the output's range{'' if finite else ', NOT FINITE'}")


def full_size(device: str) -> None:
    for model_id, side in (("nafnet-sidd-width32", 512), ("nafnet-gopro-width32", 768), ("nafssr-s-x4", 160)):
        model = load(model=model_id, pretrained=False, seed=1)
        x = smooth_random_image(model.in_channels * model.views, side)
        want, _ = Restorer(model, device="cpu", precision="fp32").run(x)
        for precision in ("fp32", "bf16", "fp16"):
            if precision == "fp16" and device == "cpu":
                continue
            t0 = time.perf_counter()
            got, info = Restorer(model, device=device, precision=precision).run(x)
            seconds = time.perf_counter() - t0
            diff = (got - want).abs()
            mse = diff.square().mean().item()
            psnr = 10 * np.log10(1 / mse) if mse > 0 else float("inf")
            where = f"{info.tiles} tile(s) of {info.tile_shape[0]}x{info.tile_shape[1]}, batch {info.batch_size}"
            detail = (f"max abs diff {diff.max().item():.2e}, PSNR {psnr:.1f} dB against the CPU, {where}, "
                      f"{seconds:.2f} s with the first call's set-up")
            ok = bool(diff.max().item() <= 1e-4 if precision == "fp32" else psnr >= 40)
            report(f"{model_id} {side}px {precision} on {device}", ok, detail)


def run_noting(r: Restorer, x: torch.Tensor, infos: list[RunInfo]) -> torch.Tensor:
    """``r.run(x)``'s output, its RunInfo appended to ``infos`` (how the image was cut)."""
    out, info = r.run(x)
    infos.append(info)
    return out


def levers(device: str, side: int = 4896, repeat: int = 3) -> None:
    """Two switches measured on a 24 MP image (``Restorer.run``, auto tiles, median of ``repeat`` after a
    warm-up): cuDNN's autotuner (``torch.backends.cudnn.benchmark``, off in PyTorch and in nafcli) and what
    IEEE fp32 costs against TF32 (:func:`exact_fp32`). Reported, nothing asserted."""
    if device == "cpu":
        return
    saved = torch.backends.cudnn.benchmark
    x = smooth_random_image(3, side)
    try:
        for model_id, precision, autotune, tf32 in (
            ("nafnet-sidd-width32", "bf16", False, False), ("nafnet-sidd-width32", "bf16", True, False),
            ("nafnet-sidd-width32", "fp32", False, False), ("nafnet-sidd-width32", "fp32", False, True),
        ):
            torch.backends.cudnn.benchmark = autotune
            model = load(model=model_id, pretrained=False)
            r = Restorer(model, device=device, precision=precision)
            with tf32_allowed() if tf32 else contextlib.nullcontext():
                infos: list[RunInfo] = []
                warm, times, _, _ = time_calls(lambda r=r, infos=infos: run_noting(r, x, infos), torch.device(device),
                                               repeat)
            info, median = infos[-1], statistics.median(times)
            label = f"{precision}{' TF32' if tf32 else ''}{', cudnn.benchmark' if autotune else ''}"
            report(f"lever {model_id} {side}px {label}", None,
                   f"{median:.3f} s median = {side * side / median / 1e6:.1f} MP/s (warm-up {warm:.1f} s; "
                   f"{info.tiles} tile(s) of {info.tile_shape[0]}x{info.tile_shape[1]}, batch {info.batch_size})")
            del r, model
            torch.cuda.empty_cache()
    finally:
        torch.backends.cudnn.benchmark = saved


def cli(device: str, weights: Path, work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)  # a fresh folder: outputs of an earlier run would be skipped
    work.mkdir(parents=True)
    rng = np.random.default_rng(0)
    folder = work / "in"
    folder.mkdir(exist_ok=True)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (384 + 32 * i, 512, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    image = folder / "img0.png"

    def nafcli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "nafcli", *args], capture_output=True, text=True, check=False)

    outputs: dict[str, np.ndarray] = {}
    for dev, precision in (("cpu", "fp32"), (device, "fp32"), (device, "bf16")):
        out = work / f"one-{dev}-{precision}.png"
        done = nafcli("denoise", str(image), "--weights", str(weights), "-o", str(out), "--device", dev,
                      "-p", precision, "--overwrite")
        if done.returncode != 0 or not out.is_file():
            report(f"cli one image {dev} {precision}", False, f"exit {done.returncode}: {done.stderr.strip()[-300:]}")
            continue
        outputs[f"{dev}-{precision}"] = np.asarray(Image.open(out)).astype(int)
    base = outputs.get("cpu-fp32")
    for key, arr in outputs.items():
        if key == "cpu-fp32" or base is None:
            continue
        levels = np.abs(arr - base)
        mse = float(np.mean(np.square(levels / 255.0)))
        psnr = 10 * np.log10(1 / mse) if mse > 0 else float("inf")
        # fp32 must give the CPU's bytes up to a level of rounding; bf16 is reported (the golden model's
        # outputs span +-11, which magnifies bf16's rounding; the full-size checks above judge bf16)
        ok = bool(levels.max() <= 1) if key.endswith("fp32") else None
        report(f"cli one image {key} vs cpu fp32", ok, f"max {levels.max()} level(s), "
               f"{np.mean(levels > 0) * 100:.4f} % of values differ, PSNR {psnr:.1f} dB")
    for dev in (device, "all"):
        out = work / f"batch-{dev}"
        done = nafcli("denoise", str(folder), "--weights", str(weights), "-o", str(out), "--device", dev, "--json")
        written = sorted(p.name for p in out.glob("*")) if out.is_dir() else []
        ok = bool(done.returncode == 1 and len(written) == 3 and "broken.png" in done.stderr)
        report(f"cli batch --device {dev}", ok, f"exit {done.returncode}, wrote {written}, "
               f"stderr {done.stderr.strip().splitlines()[-1:] if done.stderr.strip() else '(none)'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--golden", type=Path, required=True, help="shared/reference/golden (or a copy of it)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(args.device)
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        report("device", None, f"{props.name}, {props.total_memory / 2**30:.0f} GiB, capability "
               f"{props.major}.{props.minor}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
               f"cuDNN {torch.backends.cudnn.version()}")
    steps: list[tuple[str, Callable[[], None]]] = [
        ("golden", lambda: golden(args.golden, args.device)),
        ("full size", lambda: full_size(args.device)),
        ("cli", lambda: cli(args.device, args.golden / "nafnet-small.pth", Path(os.environ.get("TMPDIR", "/tmp")) / "nafcli-gpu-checks")),
        ("levers", lambda: levers(args.device)),
    ]
    for name, step in steps:
        t0 = time.perf_counter()
        try:
            step()
        except Exception as e:  # noqa: BLE001 - one broken step must not hide the others' results
            report(name, False, f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}")
        report(f"{name} took", None, f"{time.perf_counter() - t0:.1f} s")
    report("summary", not FAILED, f"{len(FAILED)} failed: {FAILED}" if FAILED else "all passed")
    (args.out / "checks.txt").write_text("\n".join(LINES) + "\n")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
