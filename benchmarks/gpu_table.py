"""The GPU table of issue 15 (requirement 6) in one short run: `nafcli bench` rows, most important first.

    python benchmarks/gpu_table.py --device cuda --out "$OUT" --budget 420
    python benchmarks/gpu_table.py --device cpu --quick --out /tmp/gpu_table   # a smoke test of the script

Rows: NAFNet-SIDD-width32, NAFNet-GoPro-width32 and NAFSSR-S x4 (random weights) in bf16, fp16 and fp32
and compiled (`--compile`, bf16), at 1024^2, 2048^2 and 24 MP (4896^2) images; for the stereo model the
sizes are those of each output view (low-resolution sides 256, 512 and 1224). Every row runs with auto
tiles and batches (`--tile auto`), the fast path only, its limit measured as `nafcli bench` does. The
order is the order of importance: the issue's target (SIDD-width32 bf16 on 24 MP, >= 50 MP/s on an
H100/H200-class GPU) first, compiled rows last, since their warm-up takes longest. A row that would
start after ``--budget`` seconds is left out (said in the table), each row has its own timeout, and a
failing row is reported with the last line it printed, never fatal.

Each row's JSON is written to ``--out`` (bench-MODEL-SIZE-PRECISION[-compiled].json) as soon as it is
done, and the Markdown table (MP/s of the image, peak device memory, share of the measured limit) is
printed at the end and written to ``--out``/table.md. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: image sides: 1024^2, 2048^2 and 24 MP (4896^2 = 23.97 MP)
SIDES = (1024, 2048, 4896)
#: the stereo model's upscale: its input side is the image side over this
SR_SCALE = 4


@dataclass(frozen=True)
class Row:
    model: str
    side: int  # of the output image (each view for the stereo model)
    precision: str
    compiled: bool = False

    @property
    def input_side(self) -> int:
        return self.side // SR_SCALE if self.model.startswith("nafssr") else self.side

    @property
    def name(self) -> str:
        return f"bench-{self.model}-{self.side}-{self.precision}{'-compiled' if self.compiled else ''}"


def rows(sides: tuple[int, ...]) -> list[Row]:
    """Every row of the table, the most important first."""
    big, *rest = sorted(sides, reverse=True)
    first = [Row("nafnet-sidd-width32", big, "bf16")]
    plain = [Row(m, s, p) for p in ("bf16", "fp16", "fp32")
             for m in ("nafnet-sidd-width32", "nafnet-gopro-width32", "nafssr-s-x4") for s in (big, *rest)]
    compiled = [Row(m, s, "bf16", compiled=True) for m in ("nafnet-sidd-width32", "nafnet-gopro-width32", "nafssr-s-x4")
                for s in sorted(sides)]
    return first + [r for r in plain if r not in first] + compiled


def run_row(row: Row, device: str, repeat: int, timeout: float) -> tuple[dict | None, str]:
    """One `nafcli bench` row: its JSON, or None and why."""
    cmd = [sys.executable, "-m", "nafcli", "bench", "-m", row.model, "--size", str(row.input_side), "-p", row.precision,
           "--device", device, "--no-reference", "-n", str(repeat), "--json"]
    if row.compiled:
        cmd.append("--compile")
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return None, last
    try:
        return json.loads(done.stdout), ""
    except json.JSONDecodeError:
        return None, "no JSON on stdout"


def table_line(row: Row, data: dict | None, why: str) -> str:
    """The row's line of the Markdown table: MP/s of the output image(s), median seconds, peak memory,
    share of the limit, how the image was cut; or dashes and why it did not run."""
    label = f"| {row.model} | {row.side}x{row.side} | {row.precision}{' compiled' if row.compiled else ''} |"
    if data is None:
        return f"{label} - | - | - | - | - | {why} |"
    path = data["paths"][0]
    views = 2 if row.model.startswith("nafssr") else 1
    mps = views * row.side * row.side / path["median_seconds"] / 1e6
    peak = path.get("peak_memory_bytes")
    share = path.get("share_of_limit")
    batch, _, height, width = path["network_input"]  # a forward's input: batch x C x H x W
    cells = [f"{mps:.2f}", f"{path['median_seconds']:.3f}", f"{peak / 2**30:.2f} GiB" if peak else "?",
             f"{share * 100:.1f} % of {path['limit_gflops_per_second']:.0f} GFLOP/s" if share is not None else "-",
             f"batch {batch} of {height}x{width}", ""]
    return f"{label} {' | '.join(cells)} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", type=Path, required=True, help="folder for each row's JSON and table.md")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds after which no row is started")
    ap.add_argument("--row-timeout", type=float, default=180.0, help="seconds a row may take")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs a row (median)")
    ap.add_argument("--quick", action="store_true", help="small images (64, 128), for trying the script on a CPU")
    args = ap.parse_args()
    sides = (64, 128) if args.quick else SIDES
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    lines = ["| model | image | precision | MP/s | s (median) | peak memory | share of the limit | tiles | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows(sides):
        elapsed = time.monotonic() - start
        if elapsed > args.budget:
            lines.append(table_line(row, None, f"not run: the {args.budget:.0f} s budget was spent"))
            continue
        data, why = run_row(row, args.device, args.repeat, args.row_timeout)
        if data is not None:
            (args.out / f"{row.name}.json").write_text(json.dumps(data, indent=1))
        lines.append(table_line(row, data, why))
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    (args.out / "table.md").write_text(text)
    print(f"\n{text}\n{time.monotonic() - start:.0f} s in all")


if __name__ == "__main__":
    main()
