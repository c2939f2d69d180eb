"""PSNR and SSIM as the image-restoration benchmarks compute them. Arrays in, numbers out; no files.

Conventions (BasicSR's, which the NAFNet authors' benchmark code derives from):

* images are H x W x C arrays on the [0, 255] scale (uint8, or float for unquantised outputs), compared in
  float64, RGB, with no border crop;
* **PSNR** is ``10 log10(255² / MSE)`` with the MSE over every pixel and channel (``inf`` when equal);
* **SSIM** (:func:`ssim`) is Wang et al.'s: an 11 x 11 Gaussian window with σ = 1.5, K1 = 0.01,
  K2 = 0.03, population (not sample) statistics, the map kept only where the window fits inside the
  image ("valid"), averaged over the image, then over the channels;
* a **stereo** pair is scored as the authors' stereo benchmark does: each metric on the left view and
  on the right view, then the mean of the two.

Two more SSIM variants exist because the authors' *published* SSIM figures were not computed with the
textbook one (read from their test configurations and metric code):

* :func:`ssim_3d` — their ``calculate_ssim`` default for SIDD / GoPro / REDS: one 11 x 11 x 11 Gaussian
  (σ = 1.5 on every axis) run over the H x W x C volume with replicated borders, the map averaged over
  every voxel. Smoothing across the three colour channels makes it read higher than :func:`ssim`.
* :func:`ssim_uniform7` — their stereo benchmark calls scikit-image's ``structural_similarity`` with its
  defaults: a 7 x 7 uniform window, sample statistics, valid region, channels averaged.

:func:`score` picks the variant by ``ssim_mode``: ``"wang"`` (default) or ``"authors"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import UsageError

SSIMMode = Literal["wang", "authors"]

#: the peak value of the scale every metric here works on
PEAK = 255.0
_K1, _K2 = 0.01, 0.03
_C1 = (_K1 * PEAK) ** 2
_C2 = (_K2 * PEAK) ** 2


def gaussian_kernel_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """The normalised 1-D Gaussian of ``size`` taps (the 2-D window is its outer product)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    k = np.exp(-(x**2) / (2.0 * sigma**2))
    return k / k.sum()


def _as_float(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise UsageError(f"{name}: expected an H x W x C image, got an array of shape {a.shape}")
    return a.astype(np.float64, copy=False)


def _pair(restored: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = _as_float(restored, "restored")
    b = _as_float(target, "target")
    if a.shape != b.shape:
        raise UsageError(f"cannot compare images of shapes {a.shape} and {b.shape}: sizes/channels differ")
    return a, b


def psnr(restored: np.ndarray, target: np.ndarray) -> float:
    """PSNR in dB on the [0, 255] scale over all pixels and channels; ``inf`` for identical images."""
    a, b = _pair(restored, target)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(PEAK * PEAK / mse)


def _ssim_map_terms(
    mu_a: np.ndarray, mu_b: np.ndarray, e_aa: np.ndarray, e_bb: np.ndarray, e_ab: np.ndarray, cov_norm: float = 1.0
) -> np.ndarray:
    var_a = (e_aa - mu_a * mu_a) * cov_norm
    var_b = (e_bb - mu_b * mu_b) * cov_norm
    cov = (e_ab - mu_a * mu_b) * cov_norm
    num = (2.0 * mu_a * mu_b + _C1) * (2.0 * cov + _C2)
    den = (mu_a * mu_a + mu_b * mu_b + _C1) * (var_a + var_b + _C2)
    return num / den


def _check_size(a: np.ndarray, win: int, what: str) -> None:
    if a.shape[0] < win or a.shape[1] < win:
        raise UsageError(f"{what} needs images of at least {win}x{win} pixels, got {a.shape[1]}x{a.shape[0]}")


def ssim(restored: np.ndarray, target: np.ndarray) -> float:
    """Wang et al.'s SSIM: 11 x 11 Gaussian (σ 1.5), valid region, mean over pixels then channels."""
    import cv2

    a, b = _pair(restored, target)
    _check_size(a, 11, "SSIM")
    g = gaussian_kernel_1d(11, 1.5)
    values = []
    for c in range(a.shape[2]):
        x, y = np.ascontiguousarray(a[:, :, c]), np.ascontiguousarray(b[:, :, c])

        def blur(m: np.ndarray) -> np.ndarray:
            # the border mode does not matter: only windows that fit entirely inside are kept
            return cv2.sepFilter2D(m, cv2.CV_64F, g, g, borderType=cv2.BORDER_REFLECT)[5:-5, 5:-5]

        s = _ssim_map_terms(blur(x), blur(y), blur(x * x), blur(y * y), blur(x * y))
        values.append(float(s.mean()))
    return float(np.mean(values))


def ssim_3d(restored: np.ndarray, target: np.ndarray) -> float:
    """The NAFNet authors' default SSIM: an 11 x 11 x 11 Gaussian (σ 1.5) over H x W x C with replicated
    borders on all three axes, averaged over every position (no crop)."""
    import cv2

    a, b = _pair(restored, target)
    g = gaussian_kernel_1d(11, 1.5)
    channels = a.shape[2]
    # along the channel axis, replicate padding of 5 on a C-long axis: tap i reads channel clip(c+i-5)
    mix = np.zeros((channels, channels))
    for c in range(channels):
        for i, w in enumerate(g):
            mix[c, min(max(c + i - 5, 0), channels - 1)] += w

    def blur(m: np.ndarray) -> np.ndarray:
        planes = np.stack(
            [cv2.sepFilter2D(np.ascontiguousarray(m[:, :, c]), cv2.CV_64F, g, g,
                             borderType=cv2.BORDER_REPLICATE) for c in range(channels)],
            axis=2,
        )
        return planes @ mix.T

    s = _ssim_map_terms(blur(a), blur(b), blur(a * a), blur(b * b), blur(a * b))
    return float(s.mean())


def ssim_uniform7(restored: np.ndarray, target: np.ndarray) -> float:
    """scikit-image's ``structural_similarity`` defaults (the authors' stereo benchmark): 7 x 7 uniform
    window, sample covariance, valid region, mean over pixels then channels."""
    import cv2

    a, b = _pair(restored, target)
    _check_size(a, 7, "SSIM")
    n = 49
    cov_norm = n / (n - 1.0)
    values = []
    for c in range(a.shape[2]):
        x, y = np.ascontiguousarray(a[:, :, c]), np.ascontiguousarray(b[:, :, c])

        def box(m: np.ndarray) -> np.ndarray:
            return cv2.boxFilter(m, cv2.CV_64F, (7, 7), normalize=True, borderType=cv2.BORDER_REFLECT)[3:-3, 3:-3]

        s = _ssim_map_terms(box(x), box(y), box(x * x), box(y * y), box(x * y), cov_norm)
        values.append(float(s.mean()))
    return float(np.mean(values))


@dataclass(frozen=True)
class Scores:
    """PSNR (dB) and SSIM of one image or one stereo pair."""

    psnr: float
    ssim: float


def score(restored: np.ndarray, target: np.ndarray, *, ssim_mode: SSIMMode = "wang", stereo: bool = False) -> Scores:
    """Both metrics for one (mono) image. ``ssim_mode="authors"`` picks the variant the authors' benchmark
    used for that kind of model (:func:`ssim_3d` for mono, :func:`ssim_uniform7` for stereo views)."""
    if ssim_mode == "wang":
        s = ssim(restored, target)
    elif ssim_mode == "authors":
        s = ssim_uniform7(restored, target) if stereo else ssim_3d(restored, target)
    else:
        raise UsageError(f"unknown SSIM mode {ssim_mode!r} (use wang or authors)")
    return Scores(psnr=psnr(restored, target), ssim=s)


def score_stereo(
    restored: tuple[np.ndarray, np.ndarray], target: tuple[np.ndarray, np.ndarray], *, ssim_mode: SSIMMode = "wang"
) -> Scores:
    """A stereo pair as the authors' stereo benchmark scores it: each view alone, then the mean."""
    left = score(restored[0], target[0], ssim_mode=ssim_mode, stereo=True)
    right = score(restored[1], target[1], ssim_mode=ssim_mode, stereo=True)
    return Scores(psnr=(left.psnr + right.psnr) / 2.0, ssim=(left.ssim + right.ssim) / 2.0)


def mean_scores(scores: list[Scores]) -> Scores:
    """The benchmark average: the arithmetic mean of the per-image figures (not a pooled MSE)."""
    if not scores:
        raise UsageError("no scores to average")
    return Scores(psnr=float(np.mean([s.psnr for s in scores])), ssim=float(np.mean([s.ssim for s in scores])))
