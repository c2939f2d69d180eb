"""Native CPU kernels for the NAFBlock: the whole block in two passes over its maps (``nafblock.cpp``).

Why they exist: on a CPU the full-resolution levels of a NAFNet (32-128 channels) spend most of their time
moving maps through memory between a dozen small operations; fused per pixel, a level-1 block of a
1024x1024 tile takes ~0.1 s instead of ~0.23 s (docs/performance.md). They are compiled for this machine
at first use (:mod:`.build`) and used by :class:`nafcli.archs.fast_blocks.FastNAFBlock` for float32 on the
CPU wherever they load; everywhere else (no compiler, another CPU family, bf16/fp16, CUDA,
``NAFCLI_NATIVE=0``) the block runs on torch as before, with the same results within float rounding.
"""

from .build import SWITCH_ENV, Library, NativeUnavailable, enabled, forget, load
from .nafblock import MAX_CHANNELS, MIN_MAP_BYTES, Prepared, global_scale, pays, run_block, usable, weight_key

__all__ = ["MAX_CHANNELS", "MIN_MAP_BYTES", "SWITCH_ENV", "Library", "NativeUnavailable", "Prepared", "enabled", "forget", "global_scale", "load",
           "pays", "run_block", "usable", "weight_key"]
