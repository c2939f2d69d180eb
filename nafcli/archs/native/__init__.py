"""Native CPU kernels for the NAFBlock: the whole block in two passes over its maps (``nafblock.cpp``).

Why they exist: on a CPU the full-resolution levels of a NAFNet (32-128 channels) spend most of their time
moving maps through memory between a dozen small operations; fused per pixel, a level-1 block of a
1024x1024 tile takes ~0.08 s instead of ~0.18-0.26 s (docs/performance.md). Blocks wider than
:func:`~.nafblock.whole_block_limit` (64 channels without AVX-512; none with it) keep oneDNN's products
and take the kernels' one-pass LayerNorm and depthwise gate. Beside the blocks: the TLC box means
(sliding sums in float64), a NAFNet's up-sampling with its pixel shuffle and skip sum, its wide
down-samplings and its ending convolution. They are compiled for this machine at first use
(:mod:`.build`) and used by :mod:`nafcli.archs.fast_blocks` and the fast networks for float32 on the CPU
wherever they load (and for the TLC box means of bf16 maps too, made float32 first); everywhere else
(no compiler, another CPU family, bf16/fp16, CUDA, ``NAFCLI_NATIVE=0``) everything runs on torch as before,
with the same results within float rounding.
"""

from .build import SWITCH_ENV, Library, NativeUnavailable, enabled, forget, load
from .nafblock import (
    MAX_BLOCK_CHANNELS,
    Made,
    Prepared,
    box_mean,
    channel_scale,
    depthwise,
    down,
    down_supported,
    down_weights,
    dw_gate,
    ending,
    ending_supported,
    ending_weights,
    global_scale,
    layer_norm,
    linear,
    linear_supported,
    linear_weights,
    local_scale,
    native_down_from,
    pack,
    remade,
    run_block,
    up_skip,
    up_skip_supported,
    up_skip_weights,
    usable,
    weight_key,
    whole_block,
    whole_block_limit,
)

__all__ = [
    "MAX_BLOCK_CHANNELS", "SWITCH_ENV", "Library", "Made", "NativeUnavailable", "Prepared", "box_mean", "channel_scale", "depthwise", "down",
    "down_supported", "down_weights", "dw_gate", "ending", "ending_supported", "ending_weights",
    "enabled", "forget", "global_scale", "layer_norm", "linear", "linear_supported", "linear_weights", "load",
    "local_scale", "native_down_from", "pack", "remade", "run_block", "up_skip", "up_skip_supported", "up_skip_weights", "usable", "weight_key",
    "whole_block", "whole_block_limit",
]
