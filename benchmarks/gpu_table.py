"""The GPU table of issue 15 (requirement 6) in one short run: `nafcli bench` rows, most important first.

    python benchmarks/gpu_table.py --device cuda --out "$OUT" --budget 300
    python benchmarks/gpu_table.py --device cpu --quick --precisions bf16,fp32 --out /tmp/gt  # try the script

Rows: NAFNet-SIDD-width32, NAFNet-GoPro-width32 and NAFSSR-S x4 (random weights) in bf16, fp16 and fp32
and compiled (`--compile`, bf16), at 1024^2, 2048^2 and 24 MP (4896^2) images; for the stereo model the
sizes are those of each output view (low-resolution sides 256, 512 and 1224). Every row runs with auto
tiles and batches (`--tile auto`), the fast path only, its limit measured as `nafcli bench` does. One
`nafcli bench` process runs the three precisions of a model and size (`-p` repeated: one start-up of
torch and CUDA instead of three). The order is the order of importance: the 24 MP images first (the
issue's target, SIDD-width32 bf16 on 24 MP, >= 50 MP/s on an H100/H200-class GPU, is the first row, and
its compiled row follows the three models' plain ones), then 2048^2 and 1024^2, the other compiled rows
last, since their warm-up takes longest. A group that would start
after ``--budget`` seconds is left out (said in the table), each group has its own timeout, and a
failing group is reported with the last line it printed, never fatal.

Each group's JSON goes into ``--out``/bench.json (one object, keyed bench-MODEL-SIZE[-compiled]) as soon
as it is done (one file: the device tool brings back at most eight), and
the Markdown table (MP/s of the image, peak device memory, share of the measured limit, warm-up) is
rewritten to ``--out``/table.md after every group, so a run cut short still leaves what it measured.
Nothing is asserted.
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
MODELS = ("nafnet-sidd-width32", "nafnet-gopro-width32", "nafssr-s-x4")
PRECISIONS = ("bf16", "fp16", "fp32")


@dataclass(frozen=True)
class Group:
    """One `nafcli bench` process: a model at one size, in several precisions, compiled or not."""

    model: str
    side: int  # of the output image (each view for the stereo model)
    precisions: tuple[str, ...]
    compiled: bool = False

    @property
    def input_side(self) -> int:
        return self.side // SR_SCALE if self.model.startswith("nafssr") else self.side

    @property
    def name(self) -> str:
        return f"bench-{self.model}-{self.side}{'-compiled' if self.compiled else ''}"

    def label(self, precision: str) -> str:
        return f"| {self.model} | {self.side}x{self.side} | {precision}{' compiled' if self.compiled else ''} |"


def groups(sides: tuple[int, ...], precisions: tuple[str, ...] = PRECISIONS) -> list[Group]:
    """Every group of the table, the most important first: the largest image's plain rows and the issue's
    target model compiled on it (the one compiled row that may decide whether 50 MP/s is in reach), then
    the plain rows of the other sizes, largest first, then the other compiled ones likewise."""
    by_size = sorted(sides, reverse=True)
    plain = [Group(m, s, precisions) for s in by_size for m in MODELS]
    compiled = [Group(m, s, ("bf16",), compiled=True) for s in by_size for m in MODELS]
    first = plain[: len(MODELS)] + compiled[:1]
    return first + [g for g in plain + compiled if g not in first]


def run_group(group: Group, device: str, repeat: int, timeout: float) -> tuple[dict | None, str]:
    """One `nafcli bench` process: its JSON, or None and why."""
    cmd = [sys.executable, "-m", "nafcli", "bench", "-m", group.model, "--size", str(group.input_side),
           "--device", device, "--no-reference", "-n", str(repeat), "--json"]
    for p in group.precisions:
        cmd += ["-p", p]
    if group.compiled:
        cmd.append("--compile")
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return None, last[:300]
    try:
        return json.loads(done.stdout), ""
    except json.JSONDecodeError:
        return None, "no JSON on stdout"


def table_lines(group: Group, data: dict | None, why: str) -> list[str]:
    """The group's lines of the Markdown table, one per precision: MP/s of the output image(s), median
    seconds, peak memory, share of the limit, how the image was cut, warm-up; or dashes and why not."""
    if data is None:
        return [f"{group.label(p)} - | - | - | - | - | - | {why} |" for p in group.precisions]
    lines = []
    views = 2 if group.model.startswith("nafssr") else 1
    for path in data["paths"]:
        mps = views * group.side * group.side / path["median_seconds"] / 1e6
        peak = path.get("peak_memory_bytes")
        share = path.get("share_of_limit")
        batch, _, height, width = path["network_input"]  # a forward's input: batch x C x H x W
        cells = [f"{mps:.2f}", f"{path['median_seconds']:.3f}", f"{peak / 2**30:.2f} GiB" if peak else "?",
                 f"{share * 100:.1f} % of {path['limit_gflops_per_second']:.0f} GFLOP/s" if share is not None else "-",
                 f"batch {batch} of {height}x{width}", f"{path['warmup_seconds']:.1f} s", ""]
        lines.append(f"{group.label(path['precision'])} {' | '.join(cells)} |")
    return lines


HEADER = ["| model | image | precision | MP/s | s (median) | peak memory | share of the limit | tiles | warm-up | note |",
          "|---|---|---|---|---|---|---|---|---|---|"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", type=Path, required=True, help="folder for each group's JSON and table.md")
    ap.add_argument("--budget", type=float, default=300.0, help="seconds after which no group is started")
    ap.add_argument("--group-timeout", type=float, default=150.0,
                    help="seconds a group may take (twice that for a compiled one)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs a row (median)")
    ap.add_argument("--precisions", default=",".join(PRECISIONS),
                    help="comma-separated precisions of the plain rows (a CPU has no fp16: bf16,fp32)")
    ap.add_argument("--start", type=int, default=0,
                    help="skip the first N groups (measured by an earlier call: a lease is short)")
    ap.add_argument("--quick", action="store_true", help="small images (64, 128), for trying the script on a CPU")
    args = ap.parse_args()
    sides = (64, 128) if args.quick else SIDES
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    lines = list(HEADER)
    measured: dict[str, dict] = {}  # group name -> its `nafcli bench --json`
    for group in groups(sides, tuple(args.precisions.split(",")))[args.start:]:
        elapsed = time.monotonic() - start
        if elapsed > args.budget:
            lines += table_lines(group, None, f"not run: the {args.budget:.0f} s budget was spent")
        else:
            # a compiled group also compiles (cold: a minute or more for a full NAFNet): twice the time
            timeout = args.group_timeout * (2 if group.compiled else 1)
            data, why = run_group(group, args.device, args.repeat, timeout)
            if data is not None:
                measured[group.name] = data
                (args.out / "bench.json").write_text(json.dumps(measured, indent=1))
            new = table_lines(group, data, why)
            lines += new
            print("\n".join(new), f"({time.monotonic() - start:.0f} s)", flush=True)
        (args.out / "table.md").write_text("\n".join(lines) + "\n")
    print(f"\n{chr(10).join(lines)}\n\n{time.monotonic() - start:.0f} s in all")


if __name__ == "__main__":
    main()
