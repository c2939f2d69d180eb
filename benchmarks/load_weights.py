"""Load time of a .pth checkpoint against the safetensors copy nafcli caches after the first verified load.

Generates random weights with an official configuration (default NAFNet-SIDD-width64, ~464 MB), writes the
.pth as the authors do ({"params": state_dict}) and its safetensors copy, then times
``nafcli.weights.checkpoint.read_state_dict`` (reading the file) and ``nafcli.weights.load(weights=...)``
(reading, checking, building the network) on each (median of --repeat runs, each in a fresh process so the page
cache is the only thing shared). Prints one JSON object. Never asserted on; numbers on a busy machine are
indicative only.

    python benchmarks/load_weights.py                 # width 64 (SIDD), ~1 GB of temporary files
    python benchmarks/load_weights.py --width 8       # quick check of the script itself
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import resource, sys, time
t0 = time.perf_counter()
from nafcli.weights import load
from nafcli.weights.checkpoint import read_state_dict
t1 = time.perf_counter()
sd = read_state_dict(sys.argv[1])
t2 = time.perf_counter()
del sd
t3 = time.perf_counter()
m = load(weights=sys.argv[1])
t4 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(t4 - t3, t2 - t1, rss, m.num_parameters)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="where to write the temporary files")
    args = ap.parse_args()

    import torch

    from nafcli.archs import NAFNetSpec
    from nafcli.weights.checkpoint import save_safetensors

    spec = NAFNetSpec(
        width=args.width, enc_blk_nums=(2, 2, 4, 8), middle_blk_num=12, dec_blk_nums=(2, 2, 2, 2)
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        pth, st = Path(tmp) / "weights.pth", Path(tmp) / "weights.safetensors"
        torch.manual_seed(0)
        sd = {k: torch.randn_like(v) for k, v in spec.build(tlc=False).state_dict().items()}
        torch.save({"params": sd}, pth)
        save_safetensors(sd, st)
        del sd
        result: dict[str, object] = {"config": spec.describe(), "repeat": args.repeat}
        root = str(Path(__file__).resolve().parents[1])
        for name, path in (("pth", pth), ("safetensors", st)):
            runs = []
            for _ in range(args.repeat):
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True,
                    env={"PYTHONPATH": root, "PATH": "/usr/bin:/bin"},
                )  # fmt: skip
                seconds, read, rss, params = out.stdout.split()
                runs.append((float(seconds), float(read), float(rss)))
            result[name] = {
                "bytes": path.stat().st_size,
                "load_model_median_s": round(statistics.median(r[0] for r in runs), 3),
                "load_model_runs_s": [round(r[0], 3) for r in runs],
                "read_state_dict_median_s": round(statistics.median(r[1] for r in runs), 3),
                "max_rss_mb": round(max(r[2] for r in runs), 1),
            }
            result["params"] = int(params)
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
