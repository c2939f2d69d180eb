"""The network call of a :class:`~.restorer.Restorer`: eager, or compiled per network input shape.

``--compile`` on compiles every shape on its first forward (kernels kept in nafcli's cache,
:mod:`.compiled`); ``auto`` runs a shape's first forward eagerly, times it, and compiles when the
forwards still planned for that shape (:meth:`Forward.plan`) save more than the warm-up measured or
cached (:func:`~.compiled.decide`); ``off`` never compiles. Apart from the ``Restorer`` because it is a
state machine of its own (per shape: undecided, eager, compiled; timings recorded for later runs),
and the ``Restorer`` only needs to call it and ask what happened.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import torch

from ..errors import DeviceError, UsageError
from . import compiled as compiled_mode
from .settings import DTYPES, compile_module, exact_fp32
from .sizing import OutOfMemory

Shape = tuple[int, ...]


class Forward:
    """``module`` called on ``device`` in ``precision`` (autocast for a reference module in bf16/fp16),
    through ``torch.compile`` where ``mode`` says so. ``model_key`` names the model in the timing
    records (:func:`~.compiled.model_key`). One per Restorer; not thread-safe."""

    def __init__(self, module: torch.nn.Module, device: torch.device, precision: str, *, fast: bool, mode: str,
                 model_key: str) -> None:
        self.module, self.device, self.precision, self.fast = module, device, precision, fast
        self.model_key = model_key
        #: ``off``, ``on`` or ``auto``; ``off`` too when the CPU has no C++ compiler to compile with
        self.mode = mode
        #: pending lines for the next RunInfo.notes (:meth:`take_notes`)
        self._notes: list[str] = []
        if mode != "off" and device.type == "cpu" and compiled_mode.cxx_compiler() is None:
            if mode == "on":
                raise UsageError("--compile: no C++ compiler found (CPU compilation needs g++, or the one $CXX "
                                 "names); install one, or run without --compile")
            self._notes.append(compiled_mode.decide(forwards_left=0, eager_seconds=0.0, entry=None,
                                                    device_type="cpu", compiler=False).reason)
            self.mode = "off"
        self._compiled_module: Any = None
        #: per network input shape: compiled (True) or eager (False); absent: not decided yet (auto)
        self._use_compiled: dict[Shape, bool] = {}
        self._compiled_shapes: set[Shape] = set()
        self._timed_shapes: set[Shape] = set()
        #: forwards still to come per network input shape (:meth:`plan`, or the current image)
        self.planned: Counter[Shape] = Counter()
        #: seconds spent compiling (or loading compiled kernels) since :meth:`begin`
        self.compile_seconds = 0.0
        #: whether a compiled forward ran since :meth:`begin`
        self.ran_compiled = False

    @property
    def compiled(self) -> bool:
        """Whether compiled mode may run (``on``, or ``auto`` before or after deciding to compile)."""
        return self.mode == "on" or (self.mode == "auto" and any(self._use_compiled.values()))

    def plan(self, shapes: Counter[Shape]) -> None:
        """Forwards to come, by network input shape (``auto`` weighs the warm-up against all of them)."""
        if self.mode == "auto":
            self.planned.update(shapes)

    def begin(self, shapes: Counter[Shape]) -> None:
        """A new input whose forwards are ``shapes``: counted as planned (at least), timings reset."""
        self.compile_seconds = 0.0
        self.ran_compiled = False
        if self.mode == "auto":
            for shape, count in shapes.items():
                self.planned[shape] = max(self.planned[shape], count)

    def take_notes(self) -> list[str]:
        """The ``--verbose`` lines since the last call (the ``auto`` decisions)."""
        notes, self._notes = self._notes, []
        return notes

    def stats_key(self, shape: Shape) -> str:
        name = str(self.device) if self.device.type != "cuda" else torch.cuda.get_device_name(self.device)
        return compiled_mode.stats_key(self.model_key, self.precision, shape, name)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The network on ``x`` (moved to the device here: tiles are cut wherever the image is)."""
        x = x.to(self.device)
        shape = tuple(int(d) for d in x.shape)
        if self.planned[shape] > 0:
            self.planned[shape] -= 1
        if self.mode == "off":
            return self._forward_module(self.module, x)
        use = self._use_compiled.get(shape)
        if use is None and self.mode == "on":
            use = self._use_compiled[shape] = True
        if use is None:
            # auto: this forward runs eagerly and is timed; the forwards still planned decide the rest
            t0 = time.perf_counter()
            out = self._forward_module(self.module, x)
            self._sync()
            seconds = time.perf_counter() - t0
            key = self.stats_key(shape)
            decision = compiled_mode.decide(forwards_left=self.planned[shape], eager_seconds=seconds,
                                            entry=compiled_mode.load_stats().get(key), device_type=self.device.type)
            compiled_mode.record_stats(key, {"eager_seconds": seconds})
            self._use_compiled[shape] = decision.compile
            self._notes.append(decision.reason)
            return out
        if not use:
            return self._forward_module(self.module, x)
        if shape not in self._compiled_shapes:
            return self._compile_for(x, shape)
        self.ran_compiled = True
        if shape not in self._timed_shapes:  # the first compiled forward after the warm-up: its speed
            self._timed_shapes.add(shape)
            t0 = time.perf_counter()
            out = self._forward_module(self._compiled_module, x)
            self._sync()
            compiled_mode.record_stats(self.stats_key(shape), {"compiled_seconds": time.perf_counter() - t0})
            return out
        return self._forward_module(self._compiled_module, x)

    def eager(self, x: torch.Tensor) -> torch.Tensor:
        """The module run eagerly on ``x``, outside the compile bookkeeping: for a probe (the memory one
        forward takes), which must neither compile a shape of its own nor count as a planned forward."""
        return self._forward_module(self.module, x.to(self.device))

    def _compile_for(self, x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """The first compiled call for a shape: compiles, or loads the kernels from the cache; timed and
        recorded. A failure empties the cache and compiles once more; a second failure is one line
        (``on``) or an eager run (``auto``)."""
        from torch._dynamo.utils import counters

        t0 = time.perf_counter()
        for attempt in (1, 2):
            hits, misses = counters["inductor"]["fxgraph_cache_hit"], counters["inductor"]["fxgraph_cache_miss"]
            try:
                if self._compiled_module is None:
                    compiled_mode.use_cache()
                    self._compiled_module = compile_module(self.module, self.device)
                out = self._forward_module(self._compiled_module, x)
                self._sync()
            except (KeyboardInterrupt, OutOfMemory):
                raise
            except Exception as e:  # noqa: BLE001 - a compiler failure must not cost the image
                torch._dynamo.reset()
                self._compiled_module = None
                self._compiled_shapes.clear()
                if attempt == 1:
                    compiled_mode.clear_cache()
                    continue
                first = (str(e).strip().splitlines() or [""])[0][:200]
                if self.mode == "on":
                    raise DeviceError(f"--compile: compilation failed ({type(e).__name__}: {first}); "
                                      "run without --compile") from None
                self._use_compiled = dict.fromkeys(self._use_compiled, False)
                self._notes.append(f"compile auto: compilation failed ({type(e).__name__}: {first}): "
                                   "running eagerly")
                return self._forward_module(self.module, x)
            break
        seconds = time.perf_counter() - t0
        self.compile_seconds += seconds
        self._compiled_shapes.add(shape)
        self.ran_compiled = True
        warm = counters["inductor"]["fxgraph_cache_hit"] > hits and counters["inductor"]["fxgraph_cache_miss"] == misses
        compiled_mode.record_stats(self.stats_key(shape), {("warm_seconds" if warm else "cold_seconds"): seconds})
        return out

    def _forward_module(self, module: Any, x: torch.Tensor) -> torch.Tensor:
        with exact_fp32(self.device, self.precision):
            return self._call(module, x)

    def _call(self, module: Any, x: torch.Tensor) -> torch.Tensor:
        if module is self._compiled_module and self.device.type == "cuda":
            # CUDA-graph replay reuses its output buffers: mark the step, and keep our own copy.
            torch.compiler.cudagraph_mark_step_begin()
            return module(x).clone()
        if self.precision == "fp32" or self.fast:
            # The fast module casts itself (statistics in float32); no autocast needed.
            return module(x)
        with torch.autocast(device_type=self.device.type, dtype=DTYPES[self.precision]):
            return module(x)
