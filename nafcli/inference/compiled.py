"""Compiled mode: ``torch.compile`` with its kernels kept on disk, and when compiling pays (``--compile`` auto).

Why keep them: compiling a NAFNet for one tile shape costs tens of seconds to minutes on a CPU (tracing,
then a C++ compiler), and every run of the same model, precision and tile shape would pay it again.
Inductor can keep what it made (its FX graph cache and AOTAutograd cache, with the compiled kernels) in
a directory; nafcli points it at ``<cache>/compiled/inductor``, where ``<cache>`` is ``NAFCLI_CACHE_DIR``
or ``$XDG_CACHE_HOME/nafcli`` (``~/.cache/nafcli``), unless the user set ``TORCHINDUCTOR_CACHE_DIR``
themselves. Inductor keys its entries by the graph, the torch version and the machine, so a foreign entry
is never used; a corrupt one makes the compilation fail, and :class:`CompiledForward` then empties the
directory and compiles once more (never fatal: an explicit ``--compile`` then fails with one line,
``auto`` runs eagerly).

Why auto: the warm-up only pays when enough work follows. :func:`decide` weighs the time the compiled
kernels would save on the forwards still planned (the eager time of the first forward, measured, times
the speed-up measured before on this machine for this model, precision and shape, or a prior) against
the warm-up (measured before, cold or from the cache, or a prior). What was measured is kept in
``<cache>/compiled/stats.json``; a damaged file is ignored and rewritten.

CPU compilation needs a C++ compiler (inductor looks for ``$CXX``, else ``g++``; ``clang++`` on macOS):
:func:`cxx_compiler` finds it the same way, without running anything.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..paths import cache_root

INDUCTOR_ENV = "TORCHINDUCTOR_CACHE_DIR"
MODES = ("on", "off", "auto")

#: before anything was measured on this machine: what compiling a model for one shape costs (s) and what
#: it gives (eager / compiled time per forward). CPU: measured on the 2-core Xeon (NAFNet-SIDD-width32, a
#: 560-px tile, fp32, quiet): a cold compilation 57 s, a start from the cache 6.2 s, and the compiled graph
#: *slower* than the fused eager path (1.16-1.18 s against 0.97-0.99 s per tile), so auto does not compile
#: on a CPU until a --compile run here measured otherwise. CUDA: not measured (no GPU was lent); no
#: speed-up is assumed until a --compile run measures one.
PRIOR_COLD_SECONDS = {"cpu": 60.0, "cuda": 60.0}
PRIOR_WARM_SECONDS = {"cpu": 7.0, "cuda": 10.0}
PRIOR_SPEEDUP = {"cpu": 0.85, "cuda": 1.0}


def parse_mode(value: bool | str | None) -> str:
    """``True``/``on``, ``False``/``off``, ``None``/``auto`` -> ``on``, ``off`` or ``auto``."""
    from ..errors import UsageError

    if value is None:
        return "auto"
    if isinstance(value, bool):
        return "on" if value else "off"
    text = str(value).strip().lower()
    aliases = {"true": "on", "yes": "on", "1": "on", "false": "off", "no": "off", "0": "off"}
    text = aliases.get(text, text)
    if text not in MODES:
        raise UsageError(f"compile mode {value!r}: use on, off or auto")
    return text


def compiled_dir() -> Path:
    return cache_root() / "compiled"


def _inductor_default() -> str | None:
    """Inductor's own default folder (it writes it into ``TORCHINDUCTOR_CACHE_DIR`` on first use, so that
    value is not a user's choice)."""
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir

        return os.path.abspath(default_cache_dir())
    except (ImportError, AttributeError):
        return None


def inductor_dir() -> Path:
    """Where inductor keeps its caches for nafcli: the user's ``TORCHINDUCTOR_CACHE_DIR`` when they set
    one (their choice wins), else ``<cache>/compiled/inductor``."""
    env = os.environ.get(INDUCTOR_ENV)
    if env and os.path.abspath(env) != _inductor_default():
        return Path(env)
    return compiled_dir() / "inductor"


def use_cache() -> Path:
    """Point inductor's on-disk caches at :func:`inductor_dir` (before the first compilation) and turn them
    on; returns the directory. Safe to call more than once."""
    path = inductor_dir()
    path.mkdir(parents=True, exist_ok=True)
    os.environ[INDUCTOR_ENV] = str(path)
    try:
        import torch._functorch.config as functorch_config
        import torch._inductor.config as inductor_config

        inductor_config.fx_graph_cache = True
        functorch_config.enable_autograd_cache = True
    except (ImportError, AttributeError):
        pass
    return path


def clear_cache() -> None:
    """Remove inductor's cached artifacts (after a compilation failed on them); the next one rebuilds."""
    path = inductor_dir()
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)


def compiler_names() -> list[str]:
    """The C++ compilers inductor tries for CPU kernels: its ``cpp.cxx`` setting (``$CXX`` as it was when
    torch was imported, else ``g++``; ``clang++`` on macOS)."""
    try:
        import torch._inductor.config as inductor_config

        names = [n for n in inductor_config.cpp.cxx if isinstance(n, str)]
    except (ImportError, AttributeError, TypeError):
        names = []
    return names or [os.environ.get("CXX") or ("clang++" if sys.platform == "darwin" else "g++")]


def cxx_compiler(names: Sequence[str] | None = None) -> str | None:
    """The first of ``names`` (default :func:`compiler_names`) found on the PATH, as a path, or None: a
    machine without it cannot compile for the CPU. Runs nothing."""
    for name in compiler_names() if names is None else names:
        found = shutil.which(name)
        if found:
            return found
    return None


# -- what was measured ----------------------------------------------------------------------------


def stats_path() -> Path:
    return compiled_dir() / "stats.json"


def stats_key(model: str, precision: str, shape: tuple[int, ...], device: str) -> str:
    """One entry per model architecture, precision, network input shape, device and torch version (a
    new torch compiles differently)."""
    import torch

    return f"{model}|{precision}|{'x'.join(map(str, shape))}|{device}|torch {torch.__version__}"


def load_stats(path: Path | None = None) -> dict[str, dict[str, float]]:
    """The stats file, or nothing when it is missing or damaged (it is rewritten on the next record)."""
    try:
        data = json.loads((path or stats_path()).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def record_stats(key: str, values: Mapping[str, float], path: Path | None = None) -> None:
    """Merge ``values`` into the entry ``key`` (atomic replace; best effort: a cache we cannot write only
    costs a measurement next time)."""
    path = path or stats_path()
    data = load_stats(path)
    entry = data.setdefault(key, {})
    entry.update({k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".stats-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass


# -- the decision ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """Whether to compile for one shape, and the one line that says why (``--verbose``)."""

    compile: bool
    reason: str


def decide(*, forwards_left: int, eager_seconds: float, entry: Mapping[str, float] | None, device_type: str,
           compiler: bool = True) -> Decision:
    """Compile when the time the compiled kernels save on the ``forwards_left`` planned forwards (eager
    time x (1 - 1/speed-up)) exceeds the warm-up: the cache load measured before when this shape was
    compiled here, else the cold compilation measured before, else the priors. ``entry``: this model,
    precision and shape's stats (:func:`load_stats`)."""
    if not compiler:
        return Decision(False, "compile auto: no C++ compiler found (CPU compilation needs one): running eagerly")
    entry = entry or {}
    eager = entry.get("eager_seconds") or eager_seconds
    compiled = entry.get("compiled_seconds")
    if compiled and eager:
        speedup, how = eager / compiled, "measured"
    else:
        speedup, how = PRIOR_SPEEDUP.get(device_type, 1.0), "prior"
    if entry.get("warm_seconds") is not None and inductor_dir().is_dir():
        warmup, source = entry["warm_seconds"], "cached, measured"
    elif entry.get("cold_seconds") is not None:
        # compiled here before: the kernels should be in the cache, whose load is not measured yet
        cached = inductor_dir().is_dir() and any(inductor_dir().iterdir())
        warmup = min(entry["cold_seconds"], PRIOR_WARM_SECONDS.get(device_type, 10.0)) if cached else entry["cold_seconds"]
        source = "cached, estimated" if cached else "cold, measured"
    else:
        warmup, source = PRIOR_COLD_SECONDS.get(device_type, 120.0), "cold, prior"
    saving = forwards_left * eager_seconds * (1.0 - 1.0 / speedup) if speedup > 0 else 0.0
    go = saving > warmup
    reason = (f"compile auto: {forwards_left} more forward(s) of {eager_seconds:.2f} s planned, compiled "
              f"{speedup:.2f}x ({how}) would save {saving:.1f} s against a {warmup:.1f} s warm-up ({source}): "
              + ("compiling" if go else "running eagerly"))
    return Decision(go, reason)


def model_key(spec_description: str, tlc: bool) -> str:
    """The model part of a stats key: the architecture and its TLC setting (not the weights: compile time
    and speed do not depend on their values)."""
    return spec_description + (" + TLC" if tlc else "")


def as_dict(entry: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in entry.items()}
