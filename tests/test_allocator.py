"""nafcli.inference.allocator: freed large blocks are reused instead of being mapped and zeroed again."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nafcli.inference.allocator import _glibc, worker_environment
from nafcli.inference.memory import mem_available

GLIBC = pytest.mark.skipif(_glibc() is None, reason="the C library is not glibc")

_PROBE = """
import json, resource, sys
import torch
import torch.nn.functional as F
from nafcli.inference.allocator import tune, tuned
applied = tune() if sys.argv[1] == "tune" else False
torch.manual_seed(0)
# 38 MB; the maps are 38-75 MB: above the 32 MB up to which glibc's default, dynamic mmap threshold can
# rise (it serves smaller freed sizes from the heap after a while), so the default always maps them anew.
x = torch.rand(1, 16, 768, 768)
w1, w2 = torch.rand(32, 16, 1, 1), torch.rand(16, 32, 1, 1)
faults = []

def passes():
    with torch.inference_mode():
        for _ in range(6):  # the same "network" on the same input, as tiles of one size are run
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            y = torch.relu(F.conv2d(x, w1)) * 0.5
            z = F.conv2d(y, w2) + x
            del y, z
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)

if sys.argv[2:] == ["thread"]:  # as a Ray worker computes: on a thread other than the main one
    import threading
    t = threading.Thread(target=passes)
    t.start()
    t.join()
else:
    passes()
print(json.dumps({"applied": applied, "tuned": tuned(), "faults": faults[2:]}))
"""


def _probe(mode: str, *where: str, **env: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode, *where],
        env={k: v for k, v in {**os.environ, **env}.items() if v},  # "" removes a variable
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout)


@GLIBC
def test_tuned_process_reuses_freed_large_blocks() -> None:
    plain = _probe("plain")
    tuned = _probe("tune")
    assert tuned["applied"] and tuned["tuned"]
    assert not plain["tuned"]
    # Each pass writes ~500 MB of maps (~130000 pages): the default allocator maps (and faults in)
    # them again on every pass; once warm, the tuned one mostly reuses the freed heap blocks (now and
    # then the heap's layout shifts and one map lands on fresh pages: measured 0-18432 per pass).
    assert min(plain["faults"]) > 50_000
    assert sum(tuned["faults"]) < sum(plain["faults"]) / 4


_TRIM_PROBE = """
import ctypes, json, resource
from nafcli.inference.allocator import tune
assert tune()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
faults = []
# 2.25 GiB filled and freed at the top of the heap (more than 2^31 - 1 bytes), then 2.19 GiB; straight
# from the C library, so that nothing else lands on the heap between (a tensor's memalign would ask for a
# little more than the block it freed, and another small block could then sit above it)
for size in (2304 << 20, 2240 << 20):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    p = libc.malloc(size)
    ctypes.memset(p, 1, size)
    libc.free(p)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps(faults))
"""


@GLIBC
@pytest.mark.skipif((mem_available() or 0) < 6 * 1024**3, reason="needs 2.25 GiB of free memory, with room to spare")
def test_freed_memory_at_the_top_of_the_heap_is_never_trimmed() -> None:
    """A large tile frees more than 2 GB at the top of the heap between forwards; trimmed, the next forward
    faulted all of it back in (a 2048-px tile of NAFNet-GoPro-width32: 13-16 s a forward instead of 7)."""
    out = subprocess.run([sys.executable, "-c", _TRIM_PROBE], capture_output=True, text=True, check=True,
                         timeout=300, env={k: v for k, v in os.environ.items() if k != "NAFCLI_MALLOC_TUNING"})
    first, second = json.loads(out.stdout)
    assert first > 1_000  # faulted in once: 590 k pages of 4 KiB (1 152 huge pages where the heap gets them)
    assert second < first / 100  # and reused, not trimmed and faulted in again (with 2^31 - 1: 573 408)


@GLIBC
def test_environment_variable_turns_it_off() -> None:
    off = _probe("tune", NAFCLI_MALLOC_TUNING="0")
    assert not off["applied"] and not off["tuned"]
    assert min(off["faults"]) > 50_000


@GLIBC
def test_a_thread_keeps_the_tuning_only_on_the_main_arena() -> None:
    """A thread's own arena is made of 64 MB heaps: the 75 MB map is mapped anew on every pass whatever
    M_MMAP_MAX says, unless every thread shares the main arena (what Ray workers are started with)."""
    own_arena = _probe("tune", "thread", MALLOC_ARENA_MAX="")
    one_arena = _probe("tune", "thread", **worker_environment())
    assert own_arena["tuned"] and one_arena["tuned"]
    assert min(own_arena["faults"]) > 15_000  # at least the 75 MB map, every pass
    assert sum(one_arena["faults"]) < sum(own_arena["faults"]) / 4


def test_worker_environment_puts_every_thread_on_one_arena(monkeypatch) -> None:
    monkeypatch.delenv("NAFCLI_MALLOC_TUNING", raising=False)
    assert worker_environment() == {"MALLOC_ARENA_MAX": "1"}
    monkeypatch.setenv("NAFCLI_MALLOC_TUNING", "0")
    assert worker_environment() == {}


@pytest.mark.parametrize(("tile", "expected"), [("auto", [True]), ("0", [])])
def test_denoise_tunes_tiled_runs_only(tile: str, expected: list[bool], tmp_path, tiny_nafnet_pth, monkeypatch):
    import cv2
    import numpy as np
    from typer.testing import CliRunner

    import nafcli.inference.allocator
    from nafcli.cli.main import app

    calls: list[bool] = []
    monkeypatch.setattr(nafcli.inference.allocator, "tune", lambda: calls.append(True) or True)
    src = tmp_path / "photo.png"
    cv2.imwrite(str(src), np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8))
    result = CliRunner().invoke(app, ["denoise", str(src), "-w", str(tiny_nafnet_pth), "-d", "cpu",
                                      "--tile", tile, "-o", str(tmp_path / "out.png")])
    assert result.exit_code == 0, result.output
    assert calls == expected
