"""Keep freed tensor memory in the process instead of handing it back to the kernel (glibc only).

Why: glibc's malloc serves every block above 32 MB (and, by default, above a dynamic threshold far
below that) with its own ``mmap`` and returns it with ``munmap`` when freed. A NAFNet tile allocates and
frees dozens of such feature maps per block, so every one of them is page-faulted in and zeroed by the
kernel again, on every block of every tile. Measured on the 2-core build machine (NAFNet-SIDD-width32,
fast path, one 560x560 tile): 2.07 s per tile with a third of the CPU time in the kernel and 3 M page
faults; with the settings below 1.32 s, 0.6 s of kernel time. NAFSSR-L's 1000x750 stereo benchmark spent
3100 of its 7000 CPU seconds in the kernel for the same reason.

What: ``mallopt(M_MMAP_MAX, 0)`` (large blocks come from the heap, where freed blocks are reused) and
``mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)`` (free memory at the top of the heap is never trimmed). The
cost is resident memory: freed blocks stay mapped until reused. Tiles repeat the same allocations, so they
reuse them (2048x2048 in 560-px tiles: peak RSS 1.41 GB, as without it); a whole large image does not
(the reference network on a whole 2048x2048 image: 12.1 GB instead of 6.5 GB, from a fragmented heap), so
the command line tunes tiled runs only. It is a process-wide setting: the command line applies it (the
process is nafcli's), the Python API leaves it to the caller (:func:`tune`). ``NAFCLI_MALLOC_TUNING=0``
turns it off; other C libraries (musl, macOS, Windows) are left alone.

Threads: the settings hold for glibc's main arena, the heap of the main thread. Other threads get arenas
of their own made of 64 MB heaps, and a block larger than that (a 816x612 feature map of NAFNet-width32
in float32 is 64 MB, its gated twice-as-wide one 128 MB) is mmapped whatever ``M_MMAP_MAX`` says, then
unmapped when freed: the page faults are back. nafcli's runner computes on the main thread; a process
that computes on other threads (a Ray worker runs each job on a thread of its own) needs every thread
on the main arena, ``MALLOC_ARENA_MAX=1``, which glibc reads only when the process starts:
:func:`worker_environment` gives it for the processes nafcli starts. Measured on the 2-core build
machine (8 photos of 816x612 on two Ray workers of one thread): 1.95 M page faults and 30.0 CPU s
without it, 0.67 M and 24.9 CPU s with it.
"""

from __future__ import annotations

import ctypes
import os

#: glibc's mallopt parameter numbers (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: free memory kept at the top of the heap: all of it (glibc reads mallopt's int as a size_t, so -1 is the
#: largest size there is). Whatever a tile trims, the next tile of the same size faults back in, so a
#: threshold only ever cost time: 1 GB was too little for a 1056-px tile of NAFNet-SIDD-width32 in the
#: native kernels (in some heap layouts every other forward faulted 244 k pages back in, 2.24-2.73 s a
#: forward against 2.22-2.25 s; the 2-core Xeon, 2026-12-02), and 2^31 - 1 (the largest positive int,
#: until 2026-12-03) too little for a 2048-px tile: every forward of NAFNet-GoPro-width32 faulted 0.46-0.81
#: M pages back in, 13.0-15.7 s against 6.8-7.9 s with nothing trimmed (peak 4.93 / 4.68 GiB; SIDD-width32
#: 9.3-14.7 s against 5.7-6.1; the 2-core Zen 5 EPYC, benchmarks/page_faults.py with ``TRIM``); through
#: ``nafcli bench --tile 2048`` 12.8 s against 7.2 (medians of 3), at 4.34 / 5.52 GiB: without trims a heap
#: that fragments once grows instead of shrinking back. On that cloud machine a page faulted back in after
#: a trim cost ~20 us, a first touch ~1 us (2.25 GiB filled, freed and filled again: 12.8 s with 2^31 - 1,
#: 0.7 s with nothing trimmed).
TRIM_THRESHOLD = -1
#: every thread on glibc's main arena (read by glibc when a process starts)
ONE_ARENA = {"MALLOC_ARENA_MAX": "1"}

ENV = "NAFCLI_MALLOC_TUNING"

_tuned = False


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    # gnu_get_libc_version exists in glibc only; mallopt's parameter numbers are glibc's.
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None
    return libc


def _enabled() -> bool:
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def worker_environment() -> dict[str, str]:
    """Environment variables for a worker process nafcli starts to compute on threads other than its
    main one (Ray's actors): all its threads on the main arena, where :func:`tune`'s settings hold (see
    the module docstring). Empty when ``NAFCLI_MALLOC_TUNING=0``; harmless where the C library is not
    glibc (nobody else reads it), so it is given whatever this process's C library is: a cluster's
    nodes may differ."""
    return dict(ONE_ARENA) if _enabled() else {}


def tune() -> bool:
    """Apply the settings above to this process (once); True when they are in effect.

    False where the C library is not glibc or ``NAFCLI_MALLOC_TUNING=0``.
    """
    global _tuned
    if _tuned:
        return True
    if not _enabled():
        return False
    libc = _glibc()
    if libc is None:
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    _tuned = ok
    return ok


def tune_for_tiles(tile: int | str | None) -> bool:
    """:func:`tune` for a tiled or strip run (``tile`` as the command line takes it: ``auto``, N);
    a whole-image run (``tile`` 0) keeps glibc's defaults, whose freed blocks a fragmented heap would
    otherwise keep (see the module docstring). True when the settings are in effect."""
    if str(tile).strip() == "0":
        return False
    return tune()


def tuned() -> bool:
    """Whether :func:`tune` is in effect in this process."""
    return _tuned
