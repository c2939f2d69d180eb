#!/usr/bin/env bash
# Issue 15's GPU session in one call of the device tool (docs/performance.md, "GPU"):
#   bash benchmarks/gpu_session.sh [TABLE_BUDGET_SECONDS] [GROUP_TIMEOUT_SECONDS] [FIRST_GROUP] [checks]
# (FIRST_GROUP: gpu_table.py --start, to go on where an earlier lease stopped; "nochecks" as the fourth
# word skips the tests and gpu_checks.py)
# The CUDA tests, benchmarks/gpu_checks.py, benchmarks/gpu_profile.py, then benchmarks/gpu_table.py (last:
# a run cut short loses table rows only). Packages the GPU image lacks (PyAV, this project's typer and its pydantic) come as
# wheels in .gpu/whl, the golden references as .gpu/golden (both carried, both git-ignored). Everything
# lands in $OUT: session.txt, checks.txt, checks.log, profile.txt, table.md, table.log, bench.json.
# Make .gpu once, here (pip reaches PyPI; ../shared is beside the checkout):
#   python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .gpu/whl av==18.1.0 typer==0.29.2 click==8.5.1 pydantic==2.14.4 pydantic_core==2.50.5 \
#     annotated-types==0.8.0 annotated-doc==0.0.7 typing-inspection==0.4.5 typing_extensions==4.16.0
#   mkdir -p .gpu/golden && cp ../shared/reference/golden/* .gpu/golden/ && chmod -R u+w .gpu
# (52 MB with the repository's 5 MB: under the 64 MiB a call carries.)
set -u
export PYTHONUNBUFFERED=1 NAFCLI_CACHE_DIR=/tmp/nafcli-cache PYTHONPATH="$PWD"
budget=${1:-150}
group_timeout=${2:-100}
first_group=${3:-0}
checks=${4:-checks}
if compgen -G ".gpu/whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .gpu/whl/*.whl && export PYTHONPATH="/tmp/site:$PWD"
fi
if [ "$checks" = checks ]; then
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.sm,clocks.max.sm,power.draw,power.limit --format=csv
  python3 -c "import sys, torch, typer, av; print('python', sys.version.split()[0], 'torch', torch.__version__, \
'cuda', torch.version.cuda, 'typer', typer.__version__, 'av', av.__version__)"
  echo "cpus $(nproc)"
  timeout 100 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_bench.py 2>&1 | tail -n 15
  timeout 40 python3 -m pytest -q -p no:cacheprovider tests/test_precision.py 2>&1 | tail -n 3
} > "$OUT/session.txt" 2>&1
cat "$OUT/session.txt"
timeout 170 python3 benchmarks/gpu_checks.py --golden .gpu/golden --out "$OUT" > "$OUT/checks.log" 2>&1
echo "gpu_checks exit $?" >> "$OUT/checks.log"
fi
timeout 240 python3 benchmarks/gpu_profile.py --out "$OUT" > /dev/null 2>> "$OUT/session.txt"
python3 benchmarks/gpu_table.py --device cuda --out "$OUT" --budget "$budget" --group-timeout "$group_timeout" \
  --start "$first_group" > "$OUT/table.log" 2>&1
cat "$OUT"/checks.log "$OUT"/profile.txt "$OUT/table.md" 2>/dev/null
