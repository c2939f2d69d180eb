"""nafcli.imaging.adapters: numpy arrays and PIL images in, the same type, shape, dtype and mode out
(``from_user`` / ``to_user``, what ``Restorer.restore`` wraps around the network)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

from nafcli.errors import UsageError
from nafcli.imaging.adapters import from_user, to_user

H, W = 5, 7


def _array(dtype: type, channels: int | None) -> np.ndarray:
    """An H x W (channels None) or H x W x channels array of every kind of value the dtype holds."""
    shape = (H, W) if channels is None else (H, W, channels)
    rng = np.random.default_rng(channels or 0)
    if np.issubdtype(dtype, np.floating):
        return rng.random(shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


def _round_trip(obj):  # noqa: ANN001, ANN202
    u = from_user(obj)
    return u, to_user(u, u.image, u.floats)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64], ids=lambda d: d.__name__)
@pytest.mark.parametrize("channels", [None, 1, 2, 3, 4], ids=["gray", "gray1", "gray+alpha", "rgb", "rgba"])
def test_numpy_round_trip(dtype: type, channels: int | None) -> None:
    arr = _array(dtype, channels)
    u, back = _round_trip(arr)
    assert u.kind == "numpy" and u.dtype == dtype and u.ndim == arr.ndim
    assert isinstance(back, np.ndarray)
    assert back.shape == arr.shape and back.dtype == arr.dtype
    if u.floats is None:
        np.testing.assert_array_equal(back, arr)
    else:  # the network computes in float32: float64 input comes back within float32 rounding
        np.testing.assert_allclose(back, arr, rtol=0, atol=1e-7)
        if channels in (2, 4):
            np.testing.assert_array_equal(back[:, :, -1], arr[:, :, -1])  # alpha: untouched
    # the colour and the alpha are kept apart: the network never sees the alpha
    color = u.image.pixels if u.floats is None else u.floats
    assert color.shape == (H, W, 1 if channels in (None, 1, 2) else 3)
    if channels in (2, 4):
        np.testing.assert_array_equal(u.image.alpha, arr[:, :, -1])
    else:
        assert u.image.alpha is None


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16], ids=lambda d: d.__name__)
def test_integer_pixels_keep_their_depth(dtype: type) -> None:
    u = from_user(_array(dtype, 3))
    assert u.floats is None and u.image.pixels.dtype == dtype
    assert u.image.max_value == (255 if dtype == np.uint8 else 65535)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
def test_float_input_is_not_quantised(dtype: type) -> None:
    arr = (np.arange(H * W * 3).reshape(H, W, 3) / (H * W * 3) + 1e-4).astype(dtype)  # between 8-bit levels
    u = from_user(arr)
    assert u.floats is not None and u.floats.dtype == np.float32
    np.testing.assert_allclose(u.floats, arr, rtol=0, atol=1e-7)  # the network gets the values themselves
    restored = u.floats * 0.5 + 0.25  # what a network might return, off every 8/16-bit level
    back = to_user(u, u.image, restored)
    assert back.dtype == dtype
    np.testing.assert_allclose(back, restored, rtol=0, atol=1e-7)
    for levels in (255, 65535):
        assert np.abs(back - np.round(back * levels) / levels).max() > 1e-6  # not rounded to any depth


def test_float_input_is_clipped_to_the_unit_range() -> None:
    arr = np.array([[[-0.5, 0.25, 1.5]]], np.float32)
    u = from_user(arr)
    assert u.floats is not None
    np.testing.assert_array_equal(u.floats, [[[0.0, 0.25, 1.0]]])


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "I;16", "F"])
def test_pil_lossless_modes_round_trip(mode: str) -> None:
    if mode == "F":
        im = PILImage.fromarray(_array(np.float32, None), "F")
    elif mode == "I;16":
        im = PILImage.fromarray(_array(np.uint16, None).astype("<u2"))  # Pillow: 2-D uint16 is I;16
    else:
        im = PILImage.fromarray(_array(np.uint8, None if mode == "L" else len(mode)), mode)
    u, back = _round_trip(im)
    assert u.kind == "pil" and u.mode == mode
    assert isinstance(back, PILImage.Image)
    assert back.mode == mode and back.size == im.size == (W, H)
    np.testing.assert_array_equal(np.asarray(back), np.asarray(im))


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("P", "RGB"), ("1", "L"), ("CMYK", "RGB"), ("YCbCr", "RGB"), ("I", "I;16")],
)
def test_pil_other_modes_come_back_as_the_mode_the_network_saw(mode: str, expected: str) -> None:
    im = PILImage.fromarray(_array(np.uint8, 3), "RGB").convert(mode)
    u, back = _round_trip(im)
    assert back.mode == expected and back.size == im.size
    want = {"RGB": im.convert("RGB"), "L": im.convert("L"), "I;16": im}[expected]
    np.testing.assert_array_equal(np.asarray(back).astype(np.int64), np.asarray(want).astype(np.int64))


def test_pil_palette_with_transparency_keeps_its_alpha() -> None:
    rgba = _array(np.uint8, 4)
    rgba[:, :, 3] = np.where(rgba[:, :, 3] > 127, 255, 0)
    im = PILImage.fromarray(rgba, "RGBA").convert("P", palette=PILImage.Palette.ADAPTIVE, colors=16)
    im.info["transparency"] = 0
    u, back = _round_trip(im)
    assert back.mode == "RGBA" and back.size == im.size
    np.testing.assert_array_equal(np.asarray(back), np.asarray(im.convert("RGBA")))


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([[1, 2, 3]], "numpy array or a PIL image, not list"),
        (np.zeros((4, 4, 3), np.int64), "int64"),
        (np.zeros((4, 4, 3), bool), "bool"),
        (np.zeros((4, 4, 5), np.uint8), "got shape (4, 4, 5)"),
        (np.zeros((1, 4, 4, 3), np.uint8), "got shape (1, 4, 4, 3)"),
        (np.zeros(4, np.uint8), "got shape (4,)"),
        (np.zeros((0, 10, 3), np.uint8), "at least 1 x 1 pixels, got shape (0, 10, 3)"),
        (np.zeros((10, 0), np.float32), "at least 1 x 1 pixels, got shape (10, 0)"),
        (np.array([[[0.5, np.nan, 0.2]]], np.float32), "finite: 1 NaN or infinite value in the RGB channels"),
        (np.full((3, 3), np.inf), "finite: 9 NaN or infinite values in the gray channels"),
    ],
)
def test_refusals(obj: object, message: str) -> None:
    with pytest.raises(UsageError) as e:
        from_user(obj)
    assert message in str(e.value)


def test_a_nan_alpha_passes_through() -> None:
    """Only the channels the network sees must be finite: the alpha channel is handed back as it came."""
    arr = np.full((2, 3, 4), 0.5, np.float32)
    arr[0, 0, 3] = np.nan
    u, back = _round_trip(arr)
    assert np.isnan(back[0, 0, 3]) and np.isfinite(back[..., :3]).all()
