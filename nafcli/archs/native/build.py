"""Compile ``nafblock.cpp`` for this machine once, keep the library in nafcli's cache, load it.

Why compile on the user's machine: the kernels are written for the vector unit (AVX-512 or AVX2) the CPU
has, with ``-march=native``; a wheel cannot know it. The C++ compiler is the one ``torch.compile`` needs on
a CPU anyway (``$CXX``, else ``g++``); compiling takes a few seconds, once per machine and source.

The library's name carries a hash of everything that makes it: the source, the compiler and its version,
the flags, and the CPU's model and flags (``-march=native`` code may not run on another CPU sharing the
cache). A file that does not load (cut short, from elsewhere) is built again; a failure to build is not an
error: :func:`load` returns the reason, and the blocks run on oneDNN as before.

Library code: no printing.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ...paths import cache_root

SOURCE = Path(__file__).with_name("nafblock.cpp")
#: ``0`` turns the native kernels off (the blocks then run on oneDNN's fused convolutions)
SWITCH_ENV = "NAFCLI_NATIVE"
#: the instruction set: this CPU's (tests build the AVX2 variant with ``-march=x86-64-v3``)
ARCH_FLAGS: tuple[str, ...] = ("-march=native",)
FLAGS = ("-O3", "-fopenmp", "-shared", "-fPIC", "-std=c++17")
#: a compilation that takes longer than this has gone wrong
BUILD_TIMEOUT_S = 300


class NativeUnavailable(Exception):
    """Why the native kernels cannot run here (one line)."""


@dataclass(frozen=True)
class Library:
    """The loaded kernels and where they came from."""

    cdll: ctypes.CDLL
    path: Path
    #: floats per vector: 16 (AVX-512) or 8 (AVX2)
    vector_width: int
    #: True when this process compiled it (False: loaded from the cache)
    built: bool
    #: seconds the compilation took (0 when loaded from the cache)
    build_seconds: float = 0.0

    def describe(self) -> str:
        """One line: the instruction set, and whether it was built now or taken from the cache."""
        isa = "AVX-512" if self.vector_width == 16 else "AVX2"
        how = f"built in {self.build_seconds:.1f} s" if self.built else "from the cache"
        return f"{isa}, {how} ({self.path})"

    def supports(self, channels: int) -> bool:
        return bool(self.cdll.nb_supports(channels))


def enabled() -> bool:
    return os.environ.get(SWITCH_ENV, "1").strip().lower() not in ("0", "off", "false", "no")


def _cpuinfo(*keys: str) -> dict[str, str]:
    """The first value of each of ``keys`` in ``/proc/cpuinfo`` (missing keys absent; none where there is
    no such file)."""
    found: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in keys and key not in found:
                    found[key] = value.strip()
                    if len(found) == len(keys):
                        break
    except OSError:
        pass
    return found


def cpu_flags() -> tuple[str, str]:
    """The CPU's model name and flags from ``/proc/cpuinfo`` (empty where there is none)."""
    info = _cpuinfo("model name", "flags")
    return info.get("model name", ""), info.get("flags", "")


def cpu_vendor() -> str:
    """The CPU's vendor from ``/proc/cpuinfo`` (``AuthenticAMD``, ``GenuineIntel``; empty where it does not
    say)."""
    return _cpuinfo("vendor_id").get("vendor_id", "")


#: what a core's L2 cache is taken to hold where sysfs does not say
DEFAULT_L2_BYTES = 1 << 20


def l2_bytes() -> int:
    """A core's L2 cache in bytes, from sysfs (``DEFAULT_L2_BYTES`` where it does not say)."""
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind, size = ((index / name).read_text().strip() for name in ("level", "type", "size"))
        except OSError:
            continue
        if level == "2" and kind in ("Unified", "Data"):
            units = {"K": 1 << 10, "M": 1 << 20}
            try:
                return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)
            except ValueError:
                break
    return DEFAULT_L2_BYTES


def prefetch_channels() -> int:
    """The widest maps the kernels' passes prefetch ahead in software (``nafblock.cpp``'s
    ``NB_PREFETCH_CHANNELS``): up to 128 channels on AMD CPUs, where it was measured faster at 64 and 128
    (the Zen 5 EPYC), 32 elsewhere (on the Xeon it lost ~1 ms a pass at 64). No result depends on it."""
    return 128 if cpu_vendor() == "AuthenticAMD" else 32


def tuning_flags() -> tuple[str, ...]:
    """The machine's cache size for the kernels' blocking (``nafblock.cpp``'s ``NB_L2_BYTES``) and its
    prefetch rule (:func:`prefetch_channels`): part of the build, so part of the library's name."""
    return (f"-DNB_L2_BYTES={l2_bytes()}", f"-DNB_PREFETCH_CHANNELS={prefetch_channels()}")


def compiler() -> str | None:
    """``$CXX`` when set, else ``g++``, as found on the PATH."""
    name = os.environ.get("CXX") or "g++"
    return shutil.which(name)


def _check_machine() -> None:
    if platform.system() != "Linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        raise NativeUnavailable(f"native kernels are built for x86-64 Linux only (this is {platform.system()} "
                                f"{platform.machine()})")
    flags = set(cpu_flags()[1].split())
    if not {"avx2", "fma"} <= flags:
        raise NativeUnavailable("native kernels need AVX2 and FMA, which this CPU does not report")


def _version(cxx: str) -> str:
    try:
        done = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise NativeUnavailable(f"the C++ compiler {cxx} does not run: {exc}") from exc
    return done.stdout


def library_path(cxx: str) -> Path:
    """Where the library built by ``cxx`` from today's source for this CPU is kept."""
    digest = hashlib.sha256()
    for part in (SOURCE.read_bytes(), cxx.encode(), _version(cxx).encode(), " ".join(FLAGS + ARCH_FLAGS + tuning_flags()).encode(),
                 *(s.encode() for s in cpu_flags())):
        digest.update(part)
        digest.update(b"\0")
    return cache_root() / "native" / f"nafblock-{digest.hexdigest()[:20]}.so"


def _compile(cxx: str, target: Path) -> None:
    """Compile to a temporary file beside ``target``, then rename it into place (never a half-written
    library under the cached name, even with two processes building at once)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".nafblock-", suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        try:
            done = subprocess.run([cxx, *FLAGS, *ARCH_FLAGS, *tuning_flags(), str(SOURCE), "-o", tmp], capture_output=True, text=True,
                                  timeout=BUILD_TIMEOUT_S, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            raise NativeUnavailable(f"compiling the native kernels with {cxx} failed: {exc}") from exc
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or [f"it exited with code {done.returncode} and no message"])[-1]
            raise NativeUnavailable(f"compiling the native kernels with {cxx} failed: {last}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _open(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    i64, ptr, f32, i32 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_float, ctypes.c_int
    lib.nb_vector_width.restype = i32
    lib.nb_supports.argtypes = [i32]
    lib.nb_supports.restype = i32
    lib.nb_front.argtypes = [i32, ptr, i64, i64, i64, ptr, ptr, ptr, ptr, f32, ptr, ptr, i32]
    lib.nb_front.restype = i32
    lib.nb_back.argtypes = [i32, ptr, ptr, i64, i64, i64, ptr, i64, i64, i64, i64, ptr, ptr, ptr, ptr, ptr, ptr,
                            f32, ptr, i32]
    lib.nb_back.restype = i32
    lib.nb_box_mean.argtypes = [i32, ptr, i64, i64, i64, i64, i64, ptr, i32]
    lib.nb_box_mean.restype = i32
    lib.nb_local_scale.argtypes = [i32, ptr, i64, i64, i64, i64, i64, ptr, ptr, ptr, i32]
    lib.nb_local_scale.restype = i32
    lib.nb_pack.argtypes = [i32, i32, ptr, ptr]
    lib.nb_pack.restype = i32
    lib.nb_linear.argtypes = [i32, i32, ptr, i64, ptr, ptr, ptr, i32]
    lib.nb_linear.restype = i32
    lib.nb_down.argtypes = [i32, ptr, i64, i64, i64, ptr, ptr, ptr, i32]
    lib.nb_down.restype = i32
    lib.nb_ending.argtypes = [i32, ptr, i64, i64, i64, ptr, ptr, ptr, ptr, i32]
    lib.nb_ending.restype = i32
    lib.nb_up_skip.argtypes = [i32, ptr, i64, i64, i64, ptr, ptr, ptr, i32]
    lib.nb_up_skip.restype = i32
    lib.nb_layer_norm.argtypes = [i32, ptr, i64, f32, ptr, i32]
    lib.nb_layer_norm.restype = i32
    lib.nb_dw_gate.argtypes = [i32, ptr, i64, i64, i64, ptr, ptr, ptr, ptr, i32]
    lib.nb_dw_gate.restype = i32
    return lib


def _load_or_build() -> Library:
    _check_machine()
    cxx = compiler()
    if cxx is None:
        raise NativeUnavailable(f"no C++ compiler ({os.environ.get('CXX') or 'g++'}) on the PATH")
    path = library_path(cxx)
    built = False
    start = time.perf_counter()
    if not path.is_file():
        _compile(cxx, path)
        built = True
    try:
        lib = _open(path)
    except (OSError, AttributeError):
        if built:
            raise NativeUnavailable(f"the native kernels built at {path} do not load") from None
        # cut short or foreign: build it again, once
        _compile(cxx, path)
        built = True
        try:
            lib = _open(path)
        except (OSError, AttributeError):
            raise NativeUnavailable(f"the native kernels built at {path} do not load") from None
    return Library(lib, path, int(lib.nb_vector_width()), built, time.perf_counter() - start if built else 0.0)


_lock = threading.Lock()
_result: Library | NativeUnavailable | None = None


def load() -> Library | NativeUnavailable:
    """The native kernels (built the first time), or why they cannot run here. Decided once per process;
    ``NAFCLI_NATIVE=0`` turns them off."""
    global _result
    if not enabled():
        return NativeUnavailable(f"native kernels turned off ({SWITCH_ENV}=0)")
    with _lock:
        if _result is None:
            try:
                _result = _load_or_build()
            except NativeUnavailable as exc:
                _result = exc
            except OSError as exc:  # the cache folder cannot be written, and the like
                _result = NativeUnavailable(f"native kernels not built: {exc}")
        return _result


def forget() -> None:
    """Decide again at the next :func:`load` (tests)."""
    global _result
    with _lock:
        _result = None
