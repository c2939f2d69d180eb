"""The fast inference path: the reference networks rewritten for speed, with the same weights.

Each architecture's ``spec.fast(module, dtype=...)`` (``nafnet/fast.py``, ``nafssr/fast.py``) turns a loaded
reference module into an equivalent module that computes the same function with fewer memory passes; the
blocks they share live here. The reference modules stay untouched: they mirror the authors' computation and are what
the golden tests check; every change here is tested against them (``tests/test_fast.py``).

What changes, and why each is exact (up to float rounding):

* **LayerNorm affine folded** into the following 1x1 convolution: ``W (g*y + b) + c = (W g) y + (W b + c)``.
  The normalisation itself is one ``F.layer_norm`` call on the channels-last view (the channels are the
  innermost axis there), statistics always in float32, instead of five elementwise passes.
* **beta / gamma folded** into ``conv3`` / ``conv5`` (a per-output-channel scale of a 1x1 convolution).
* **channels_last** memory format: the 1x1 convolutions become plain matrix products over pixels and
  the channel statistics are contiguous.
* **TLC local mean** computed once per feature map with a float32 integral image of the mean-centred
  values (centring keeps the running sums small, so float32 stays within ~1e-6 of the float64 reference;
  maps above 1 MP keep float64 sums). The SCA 1x1 convolution runs on the valid box means, before the
  replicate padding rather than after it (a pointwise map commutes with replicate padding): on a 64x64
  map with a 48-px window that is 17x17 pixels instead of 64x64.
* **SCA folding** (global-mean SCA, one image per batch, ``fold_sca=True``): the per-image channel scale
  ``s`` is folded into ``conv3``'s weights (``W3 (x * s) = (W3 diag(s)) x``), saving one pass over the
  feature map. Exact, but measured no faster on the CPU (oneDNN re-packs the changed weights on every
  call), so it is off by default.
* **NAFSSR**: both views run through each NAFBlock as one batch of two (same weights); the SCAM query
  scale, LayerNorm affines and beta/gamma are folded into its projections.

Reduced precision (``dtype=torch.bfloat16`` / ``float16``) casts the weights and activations, while
LayerNorm statistics, the SCA means, the TLC sums and the attention softmax stay in float32, and the
network's input/output residuals (the image itself) stay in float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import native
from .blocks import LayerNorm2d, NAFBlock
from .fast_tlc import box_geometry, mul_replicated, valid_box_mean
from .windows import Window

CHANNELS_LAST = torch.channels_last


def layer_norm_cl(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Normalise over channels without affine (it is folded away), in x's dtype.

    One pass on the channels-last view (the channels are innermost). For bf16/fp16 input the CPU and
    CUDA kernels accumulate mean and variance in float32 (their "opmath" type) and round only the
    result, so the statistics are float32 without the two extra passes an explicit ``.float()`` /
    ``.to()`` would cost (checked in tests/test_fast.py against an explicit float32 computation).

    On the CPU the same normalisation runs as ``F.group_norm`` with one group over each pixel's channels
    (pixels as the batch, channels x 1 as the sample): its kernel vectorises the short rows of a NAFNet
    (32-512 channels) better than ``F.layer_norm``'s, 1.5-2x faster on the 2-core Xeon (9.4 -> 6.4 ms on
    a 560x560x32 map; docs/performance.md), and it is the same function.
    """
    n, c, h, w = x.shape
    v = x.permute(0, 2, 3, 1)
    if x.device.type == "cpu" and v.is_contiguous():
        return F.group_norm(v.reshape(-1, c, 1), 1, eps=eps).view(n, h, w, c).permute(0, 3, 1, 2)
    return F.layer_norm(v, (c,), eps=eps).permute(0, 3, 1, 2)


def gate(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=1)
    return a * b


def conv_like(conv: nn.Conv2d, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> nn.Conv2d:
    """A new Conv2d like ``conv`` (float32) holding the given (folded) weight and bias."""
    new = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        groups=conv.groups,
        bias=conv.bias is not None or bias is not None,
        device=conv.weight.device,  # made where the reference lives (no CPU copy of a GPU model)
    )
    w = conv.weight if weight is None else weight
    b = conv.bias if bias is None else bias
    with torch.no_grad():
        new.weight.copy_(w.to(torch.float32))
        if b is not None:
            new.bias.copy_(b.to(torch.float32))
    return new


def fold_norm(norm: LayerNorm2d, conv: nn.Conv2d, out_scale: torch.Tensor | None = None) -> nn.Conv2d:
    """``conv(norm(x))`` with norm's affine moved into the conv; optionally scale the outputs too."""
    w = conv.weight.double()  # O, I, 1, 1
    b = conv.bias.double() if conv.bias is not None else w.new_zeros(w.shape[0])
    g, beta = norm.weight.double(), norm.bias.double()
    nw = w * g.view(1, -1, 1, 1)
    nb = b + w[:, :, 0, 0] @ beta
    if out_scale is not None:
        s = out_scale.double().reshape(-1)
        nw = nw * s.view(-1, 1, 1, 1)
        nb = nb * s
    return conv_like(conv, nw, nb)


def scale_out(conv: nn.Conv2d, scale: torch.Tensor) -> nn.Conv2d:
    """``conv(x) * scale`` (per output channel) as one conv."""
    s = scale.double().reshape(-1)
    b = conv.bias.double() * s if conv.bias is not None else None
    return conv_like(conv, conv.weight.double() * s.view(-1, 1, 1, 1), b)


def _pointwise_op() -> object | None:
    """oneDNN's convolution with a fused binary post-op (``mkldnn::_convolution_pointwise.binary``, the
    kernel inductor's CPU fusions call), or None in a build without it."""
    try:
        return torch.ops.mkldnn._convolution_pointwise.binary
    except (AttributeError, RuntimeError):
        return None


_POINTWISE = _pointwise_op()
#: dtype -> whether the fused CPU convolutions run and agree with the plain ones here (checked once)
_FUSED_OK: dict[torch.dtype, bool] = {}


def conv_then(x: torch.Tensor, other: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int,
              groups: int, op: str) -> torch.Tensor:
    """``conv2d(x, weight, bias) <op> other`` (``op``: ``add`` or ``mul``, ``other`` the output's shape) in
    one oneDNN call on the CPU: the product is applied to each output block while it is in cache, so the
    separate pass over the map (read two maps, write one) disappears."""
    return _POINTWISE(x, other, weight, bias, [padding, padding], [1, 1], [1, 1], groups, op,  # type: ignore[operator]
                      None, None, [], None)


def fused_cpu_ok(dtype: torch.dtype) -> bool:
    """Whether :func:`conv_then` is available for ``dtype`` on this CPU and matches the unfused
    computation on a small case (checked once per dtype; a build or CPU without it runs unfused)."""
    if dtype not in _FUSED_OK:
        ok = False
        if _POINTWISE is not None and torch.backends.mkldnn.is_available():
            try:
                gen = torch.Generator().manual_seed(0)
                x = torch.rand((1, 8, 6, 5), generator=gen).to(dtype).contiguous(memory_format=CHANNELS_LAST)
                other = torch.rand((1, 8, 6, 5), generator=gen).to(dtype).contiguous(memory_format=CHANNELS_LAST)
                w, b = torch.rand((8, 1, 3, 3), generator=gen).to(dtype), torch.rand(8, generator=gen).to(dtype)
                with torch.inference_mode():
                    got = conv_then(x, other, w, b, 1, 8, "mul").float()
                    want = (F.conv2d(x, w, b, padding=1, groups=8).float() * other.float())
                ok = bool((got - want).abs().max().item() <= 0.05 * want.abs().max().item() + 1e-6)
            except (RuntimeError, NotImplementedError, TypeError):
                ok = False
        _FUSED_OK[dtype] = ok
    return _FUSED_OK[dtype]


def _addmm_1x1(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for a 1x1 convolution as one ``torch.addmm`` on the channels-last view (pixels x C_in):
    the same function at every thread count (see :meth:`FastNAFBlock._forward_invariant`)."""
    n, c, h, w = x.shape
    v = x.permute(0, 2, 3, 1).reshape(-1, c)
    out = torch.addmm(conv.bias, v, conv.weight[:, :, 0, 0].t())
    return out.view(n, h, w, -1).permute(0, 3, 1, 2)


class FastNAFBlock(nn.Module):
    """:class:`~nafcli.archs.NAFBlock` with folded parameters; channels_last in, channels_last out.

    On the CPU (where :func:`fused_cpu_ok`), the elementwise passes between the convolutions are fused
    into them (:meth:`_forward_fused`); elsewhere (CUDA, a build without oneDNN, under torch.compile)
    each step is its own kernel (:meth:`_forward_plain`). Both compute the same function.
    """

    def __init__(self, ref: NAFBlock, window: Window | None, *, fold_sca: bool = False) -> None:
        super().__init__()
        self.eps1, self.eps2 = ref.norm1.eps, ref.norm2.eps
        self.conv1 = fold_norm(ref.norm1, ref.conv1)
        self.conv2 = conv_like(ref.conv2)
        self.sca = conv_like(ref.sca[1])
        self.conv3 = scale_out(ref.conv3, ref.beta)
        self.conv4 = fold_norm(ref.norm2, ref.conv4)
        self.conv5 = scale_out(ref.conv5, ref.gamma)
        self.window = window
        self.fold_sca = fold_sca
        #: fuse on the CPU when the kernels allow it (False: always the plain path, e.g. for a compiler
        #: that fuses by itself)
        self.fuse_cpu = True
        #: the weights in the native kernels' layout, made at the first native forward
        self._native: native.Prepared | None = None
        #: conv2 in the native depthwise gate's layout (:func:`nafcli.archs.native.remade`)
        self._dw: native.Made | None = None
        #: the SCA convolution in the native 1x1 product's layout
        self._sca: native.Made | None = None

    def _global(self, h: int, w: int) -> bool:
        return self.window is None or (self.window[0] >= h and self.window[1] >= w)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        # torch.compile traces the plain path: the oneDNN post-op kernels have no fake-tensor version,
        # and inductor fuses the elementwise passes by itself (with the same kernels)
        if self.fuse_cpu and inp.device.type == "cpu" and not torch.compiler.is_compiling():
            if inp.dtype == torch.float32:
                lib = native.load()
                if isinstance(lib, native.Library):
                    if native.usable(inp, lib):
                        if native.whole_block(inp) or not fused_cpu_ok(inp.dtype):
                            return self._forward_native(inp, lib)
                        return self._forward_hybrid(inp, lib)
                    if not lib.supports(inp.shape[1]):
                        return self._forward_invariant(inp)
            if fused_cpu_ok(inp.dtype):
                return self._forward_fused(inp)
        return self._forward_plain(inp)

    def _prepared(self, lib: native.Library) -> native.Prepared:
        if self._native is None or not self._native.fits(lib, self.conv1):
            self._native = native.Prepared.of(lib, self.conv1, self.conv2, self.conv3, self.conv4, self.conv5,
                                              self.eps1, self.eps2)
        return self._native

    def _sca_weights(self, lib: native.Library) -> tuple[torch.Tensor, torch.Tensor]:
        """The SCA convolution in the kernels' 1x1 product's layout, for TLC: it runs on every window mean
        in the kernels (``nb_linear``, ``nb_local_scale``), not oneDNN, whose 256 -> 256 product rounds
        differently with one thread and with two on the Zen 5 EPYC, and a one-thread Ray worker must write
        the bytes of a two-thread run (speed: 32 channels on 673x673 window means 4.5 ms against oneDNN's
        7.5; 64-256 channels within 5 % either way)."""
        self._sca = native.remade(self._sca, self.sca, lambda conv: native.linear_weights(lib, conv),
                                  lib.vector_width)
        weight, bias = self._sca[1]
        return weight, bias

    def _local_scale(self, lib: native.Library, box: torch.Tensor) -> torch.Tensor:
        """The SCA convolution on the TLC window means ``box`` (see :meth:`_sca_weights`)."""
        return native.linear(lib, self._sca_weights(lib), box)

    def _forward_hybrid(self, inp: torch.Tensor, lib: native.Library) -> torch.Tensor:
        """oneDNN's products with the native kernels' LayerNorm and depthwise gate: for the blocks wider
        than :func:`nafcli.archs.native.whole_block_limit` (64 channels without AVX-512, where the whole
        native block was not measured faster beyond that; every width built with it). conv1 runs as one
        product (the fused path splits it in two for its post-ops), its output goes through the depthwise
        3x3 and the gate in one pass, and the LayerNorms are one pass each."""
        c = inp.shape[1]
        self._dw = native.remade(self._dw, self.conv2, native.depthwise)
        t = native.layer_norm(lib, inp, self.eps1)
        x, sums = native.dw_gate(lib, self._dw[1], F.conv2d(t, self.conv1.weight, self.conv1.bias))
        del t
        w3, b3 = self.conv3.weight, self.conv3.bias
        h, wd = x.shape[-2:]
        if self._global(h, wd):
            n = x.shape[0]
            s = native.channel_scale(self.sca, sums, h * wd).view(n, c, 1, 1)
            if n == 1:
                w3 = w3 * s.view(1, -1, 1, 1)
            else:
                x = x * s
        else:
            box, padding = valid_box_mean(x, self.window)
            x = mul_replicated(x, self._local_scale(lib, box), padding)
        y = conv_then(x, inp, w3, b3, 0, 1, "add")
        del x
        t = native.layer_norm(lib, y, self.eps2)
        w4, b4 = self.conv4.weight, self.conv4.bias
        x = conv_then(t, F.conv2d(t, w4[:c], b4[:c]), w4[c:], b4[c:], 0, 1, "mul")  # the gate
        del t
        return conv_then(x, y, self.conv5.weight, self.conv5.bias, 0, 1, "add")

    def _forward_native(self, inp: torch.Tensor, lib: native.Library) -> torch.Tensor:
        """The block in the native kernels (:mod:`nafcli.archs.native`): two passes over the maps."""
        prepared = self._prepared(lib)
        h, w = inp.shape[-2:]
        if self._global(h, w):
            scale = native.global_scale(self.sca, h * w)
        else:
            def scale(g: torch.Tensor, _sums: torch.Tensor) -> tuple[torch.Tensor, int, int]:
                # the window means and their product in one pass of the kernels (nb_local_scale)
                assert self.window is not None
                k1, k2, (left, _, top, _) = box_geometry(h, w, self.window)
                return native.local_scale(lib, self._sca_weights(lib), g, k1, k2), top, left
        return native.run_block(lib, prepared, inp, scale)

    def _forward_invariant(self, inp: torch.Tensor) -> torch.Tensor:
        """The plain path with every 1x1 product a ``torch.addmm`` on the channels-last view and the global
        SCA in float64 (:func:`nafcli.archs.native.channel_scale`): for fp32 CPU blocks whose channel count
        the native kernels do not take (8 with AVX-512's 16-float vectors; no official model has one).
        oneDNN's 1x1 convolution is not the same function of its input at every thread count on every CPU
        (an 8 -> 8 product on the Zen 5 EPYC rounds differently with one thread and with two), and a
        one-thread Ray worker must write the bytes a two-thread run writes."""
        x = gate(self.conv2(_addmm_1x1(self.conv1, layer_norm_cl(inp, self.eps1))))
        h, w = x.shape[-2:]
        if self._global(h, w):
            n, c = x.shape[:2]
            sums = x.sum(dim=(-2, -1), dtype=torch.float64)
            x = x * native.channel_scale(self.sca, sums, h * w).view(n, c, 1, 1)
        else:
            box, padding = valid_box_mean(x, self.window)
            x = mul_replicated(x, _addmm_1x1(self.sca, box), padding)
        y = inp + _addmm_1x1(self.conv3, x)
        return y + _addmm_1x1(self.conv5, gate(_addmm_1x1(self.conv4, layer_norm_cl(y, self.eps2))))

    def _forward_plain(self, inp: torch.Tensor) -> torch.Tensor:
        x = gate(self.conv2(self.conv1(layer_norm_cl(inp, self.eps1))))
        h, w = x.shape[-2:]
        if self._global(h, w):
            # Global mean: a per-image channel vector, in float32.
            pooled = x.mean(dim=(-2, -1), keepdim=True, dtype=torch.float32)
            s = F.conv2d(pooled, self.sca.weight.float(), self.sca.bias.float())  # N, C, 1, 1
            if self.fold_sca and x.shape[0] == 1:
                w3 = self.conv3.weight * s.view(1, -1, 1, 1).to(self.conv3.weight.dtype)
                x = F.conv2d(x, w3, self.conv3.bias)
            else:
                x = self.conv3(x * s.to(x.dtype))
        else:
            # TLC: the 1x1 SCA convolution on the valid box means, then the replicate padding.
            box, padding = valid_box_mean(x, self.window)
            x = self.conv3(mul_replicated(x, self.sca(box.to(x.dtype)), padding))
        y = inp + x
        return y + self.conv5(gate(self.conv4(layer_norm_cl(y, self.eps2))))

    def _forward_fused(self, inp: torch.Tensor) -> torch.Tensor:
        """The same function with five fewer passes over the feature maps: each gate becomes a product
        fused into the convolution that makes its second half (the halves of conv1/conv2 and conv4 run
        as two convolutions each), the SCA scale is folded into conv3's weights, and both residual sums
        are fused into conv3 and conv5. Left: the two LayerNorms and the SCA mean (a read)."""
        c = inp.shape[1]
        t = layer_norm_cl(inp, self.eps1)
        w1, b1, w2, b2 = self.conv1.weight, self.conv1.bias, self.conv2.weight, self.conv2.bias
        a = F.conv2d(F.conv2d(t, w1[:c], b1[:c]), w2[:c], b2[:c], padding=1, groups=c)
        x = conv_then(F.conv2d(t, w1[c:], b1[c:]), a, w2[c:], b2[c:], 1, c, "mul")  # the gate
        del t, a
        w3, b3 = self.conv3.weight, self.conv3.bias
        h, w = x.shape[-2:]
        if self._global(h, w):
            pooled = x.mean(dim=(-2, -1), keepdim=True, dtype=torch.float32)
            s = F.conv2d(pooled, self.sca.weight.float(), self.sca.bias.float())  # N, C, 1, 1
            if x.shape[0] == 1:  # the scale goes into conv3's weights: W3 (x * s) = (W3 diag(s)) x
                w3 = (w3.float() * s.view(1, -1, 1, 1)).to(w3.dtype)
            else:
                x = x * s.to(x.dtype)
        else:
            box, padding = valid_box_mean(x, self.window)
            x = mul_replicated(x, self.sca(box.to(x.dtype)), padding)
        y = conv_then(x, inp, w3, b3, 0, 1, "add")
        del x
        t = layer_norm_cl(y, self.eps2)
        w4, b4 = self.conv4.weight, self.conv4.bias
        x = conv_then(t, F.conv2d(t, w4[:c], b4[:c]), w4[c:], b4[c:], 0, 1, "mul")  # the gate
        del t
        return conv_then(x, y, self.conv5.weight, self.conv5.bias, 0, 1, "add")


class FastNetwork(nn.Module):
    """What every fast network takes from its reference the same way: the TLC setting, the compute dtype,
    the first convolution, and a :class:`FastNAFBlock` for each reference block (:meth:`fast_block`).
    Subclasses build the rest, then move themselves to ``dtype`` and channels_last."""

    def __init__(self, ref: nn.Module, *, dtype: torch.dtype, fold_sca: bool) -> None:
        super().__init__()
        self.tlc = ref.tlc
        self.compute_dtype = dtype
        self.intro = conv_like(ref.intro)  # type: ignore[arg-type]
        self._fold_sca = fold_sca

    def fast_block(self, block: NAFBlock) -> FastNAFBlock:
        return FastNAFBlock(block, block.sca[0].window, fold_sca=self._fold_sca)


def build_fast(fast_type: type[nn.Module], ref_type: type[nn.Module], ref: nn.Module, *, dtype: torch.dtype,
               fold_sca: bool) -> nn.Module:
    """``fast_type(ref)`` in eval mode without gradients: the fast equivalent of a reference network of
    ``ref_type`` (``TypeError`` for anything else, e.g. a user's wrapper, which then runs as it is)."""
    if not isinstance(ref, ref_type):
        raise TypeError(f"no fast path for {type(ref).__name__}")
    with torch.no_grad():
        fast = fast_type(ref, dtype=dtype, fold_sca=fold_sca)
    fast.eval()
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast
