"""The metrics against independent computations (scikit-image, torch) on real photographs."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from helpers.models import SHARED
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from nafcli.quality import metrics


def _photos() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, clean, degraded) uint8 RGB pairs from real photographs: JPEG-compressed, noisy, blurred."""
    rng = np.random.default_rng(0)
    out = []
    for name in ("astronaut", "chelsea", "coffee"):
        img = getattr(skimage.data, name)()
        noisy = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        out.append((f"{name}-noise", img, noisy))
        blurred = cv2.GaussianBlur(img, (0, 0), 1.2)
        out.append((f"{name}-blur", img, blurred))
    return out


PHOTOS = _photos()


def _shared_pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The authors' demo inputs against their published outputs (same size for denoise / deblur)."""
    s = SHARED / "samples"
    pairs = []
    for inp, out in [("noisy.png", "noisy.nafnet-sidd-width64.png"),
                     ("blurry-gopro.png", "blurry-gopro.nafnet-gopro-width64.png")]:
        if (s / inp).is_file():
            a = cv2.imread(str(s / out))[:, :, ::-1]
            b = cv2.imread(str(s / inp))[:, :, ::-1]
            pairs.append((inp, a, b))
    return pairs


def _all_pairs():
    return PHOTOS + _shared_pairs()


@pytest.mark.parametrize("name,clean,degraded", _all_pairs(), ids=[p[0] for p in _all_pairs()])
def test_psnr_matches_scikit_image(name, clean, degraded):
    ours = metrics.psnr(degraded, clean)
    theirs = peak_signal_noise_ratio(clean, degraded, data_range=255)
    assert abs(ours - theirs) < 0.01
    assert 15 < ours < 60  # a real degradation, not a degenerate case


@pytest.mark.parametrize("name,clean,degraded", _all_pairs(), ids=[p[0] for p in _all_pairs()])
def test_ssim_matches_scikit_image_gaussian(name, clean, degraded):
    ours = metrics.ssim(degraded, clean)
    theirs = structural_similarity(
        clean, degraded, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
        channel_axis=2,
    )
    assert abs(ours - theirs) < 1e-4
    assert 0.05 < ours < 0.9999


@pytest.mark.parametrize("name,clean,degraded", PHOTOS[:2], ids=[p[0] for p in PHOTOS[:2]])
def test_uniform7_ssim_matches_scikit_image_defaults(name, clean, degraded):
    ours = metrics.ssim_uniform7(degraded, clean)
    theirs = structural_similarity(clean, degraded, data_range=255, channel_axis=2)
    assert abs(ours - theirs) < 1e-4


def _ssim_3d_torch(a: np.ndarray, b: np.ndarray) -> float:
    """A direct 11x11x11 conv3d with replicate padding (the authors' formulation), for comparison."""
    g = torch.tensor(metrics.gaussian_kernel_1d(11, 1.5))
    k = (g[:, None, None] * g[None, :, None] * g[None, None, :])[None, None]
    conv = torch.nn.Conv3d(1, 1, 11, padding=5, bias=False, padding_mode="replicate").double()
    with torch.no_grad():
        conv.weight.copy_(k)

        def f(x):
            return conv(x[None, None])[0, 0]

        x, y = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
        mx, my = f(x), f(y)
        sxx, syy, sxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
        c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
        s = (2 * mx * my + c1) * (2 * sxy + c2) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


def test_ssim_3d_matches_a_direct_3d_convolution():
    _, clean, degraded = PHOTOS[0]
    clean, degraded = clean[:96, :128], degraded[:96, :128]
    assert abs(metrics.ssim_3d(degraded, clean) - _ssim_3d_torch(degraded, clean)) < 1e-6
    # and it is a different number from the per-channel SSIM (it smooths across colour channels)
    assert abs(metrics.ssim_3d(degraded, clean) - metrics.ssim(degraded, clean)) > 1e-3


def test_identical_images():
    _, clean, _ = PHOTOS[0]
    assert metrics.psnr(clean, clean) == math.inf
    assert metrics.ssim(clean, clean) == pytest.approx(1.0)
    assert metrics.ssim_3d(clean, clean) == pytest.approx(1.0)


def test_unquantised_float_input_is_scored_on_the_same_scale():
    _, clean, degraded = PHOTOS[0]
    f = degraded.astype(np.float64) + 0.25  # e.g. a network output before rounding
    want = peak_signal_noise_ratio(clean.astype(np.float64), f, data_range=255)
    assert abs(metrics.psnr(f, clean) - want) < 0.01


def test_stereo_is_the_mean_of_the_two_views():
    (_, l_clean, l_deg), (_, r_clean, r_deg) = PHOTOS[0], PHOTOS[3]  # astronaut noise, chelsea blur
    l_clean, l_deg, r_clean, r_deg = (a[:300, :400] for a in (l_clean, l_deg, r_clean, r_deg))
    both = metrics.score_stereo((l_deg, r_deg), (l_clean, r_clean))
    left, right = metrics.score(l_deg, l_clean), metrics.score(r_deg, r_clean)
    assert both.psnr == pytest.approx((left.psnr + right.psnr) / 2)
    assert both.ssim == pytest.approx((left.ssim + right.ssim) / 2)
    # authors' mode for stereo: scikit-image defaults on the 6-channel stack = mean of the two views
    six = metrics.score_stereo((l_deg, r_deg), (l_clean, r_clean), ssim_mode="authors")
    want = structural_similarity(np.dstack([l_clean, r_clean]), np.dstack([l_deg, r_deg]), data_range=255,
                                 channel_axis=2)
    assert abs(six.ssim - want) < 1e-4


def test_shape_mismatch_is_a_clear_error():
    from nafcli.errors import UsageError

    _, clean, _ = PHOTOS[0]
    with pytest.raises(UsageError, match="shapes"):
        metrics.psnr(clean[:-1], clean)
