"""``Restorer.restore`` / ``restore_pair`` on numpy arrays and PIL images, and the README example."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers.images import SHARED, TINY_WEIGHTS, photo
from helpers.models import REPO
from PIL import Image as PILImage

pytestmark = pytest.mark.skipif(not TINY_WEIGHTS.exists(), reason="../shared/reference/pipeline is not here")


@pytest.fixture(scope="module")
def restorer():  # noqa: ANN201
    from nafcli import Restorer

    return Restorer.from_file(TINY_WEIGHTS, device="cpu")


def test_uint8_matches_the_file_pipeline(restorer) -> None:  # noqa: ANN001
    from nafcli.imaging import Image

    rgb = photo()
    out = restorer.restore(rgb)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, restorer.restore_image(Image(pixels=rgb)).image.pixels)
    assert not np.array_equal(out, rgb)  # the network did something


def test_uint16_and_float_agree_with_uint8(restorer) -> None:  # noqa: ANN001
    rgb = photo()
    ref = restorer.restore(rgb).astype(np.float64) / 255
    out16 = restorer.restore(rgb.astype(np.uint16) * 257)
    assert out16.dtype == np.uint16
    assert np.abs(out16 / 65535 - ref).max() <= 1 / 255
    for dtype in (np.float32, np.float64):
        f = restorer.restore((rgb / 255).astype(dtype))
        assert f.dtype == dtype and f.shape == rgb.shape
        assert np.abs(f - ref).max() <= 0.5 / 255 + 1e-6  # floats are not quantised


def test_gray_and_alpha_arrays(restorer) -> None:  # noqa: ANN001
    gray = photo("camera")
    assert gray.ndim == 2
    out = restorer.restore(gray)
    assert out.shape == gray.shape and out.dtype == np.uint8
    rgba = np.dstack([photo(), np.arange(photo().shape[1], dtype=np.uint8)[None].repeat(photo().shape[0], 0)])
    out = restorer.restore(rgba)
    assert out.shape == rgba.shape
    np.testing.assert_array_equal(out[:, :, 3], rgba[:, :, 3])
    np.testing.assert_array_equal(out[:, :, :3], restorer.restore(rgba[:, :, :3]))


@pytest.mark.parametrize("mode, expected", [("RGB", "RGB"), ("L", "L"), ("RGBA", "RGBA"), ("LA", "LA"),
                                            ("P", "RGB"), ("CMYK", "RGB"), ("I;16", "I;16")])
def test_pil_in_pil_out(restorer, mode: str, expected: str) -> None:  # noqa: ANN001
    base = PILImage.fromarray(photo())
    im = base.convert("I;16") if mode == "I;16" else base.convert(mode)
    out = restorer.restore(im)
    assert isinstance(out, PILImage.Image) and out.mode == expected and out.size == im.size


def test_refuses_other_types(restorer) -> None:  # noqa: ANN001
    from nafcli.errors import UsageError

    with pytest.raises(UsageError, match="numpy array or a PIL image"):
        restorer.restore([[1, 2, 3]])
    with pytest.raises(UsageError, match="int64"):
        restorer.restore(np.zeros((8, 8, 3), np.int64))


def test_restore_pair_needs_a_stereo_model(restorer) -> None:  # noqa: ANN001
    from nafcli.errors import UsageError

    with pytest.raises(UsageError, match="stereo"):
        restorer.restore_pair(photo(), photo())


def test_restore_pair_with_stereo_weights() -> None:
    weights = SHARED / "reference" / "pipeline" / "sr-nafssr-x4.pth"
    if not weights.exists():
        pytest.skip("no stereo weights in ../shared")
    from nafcli import Restorer

    sr = Restorer.from_file(weights, device="cpu")
    left, right = photo(h=12, w=16), photo("coffee", h=12, w=16)
    a, b = sr.restore_pair(left, PILImage.fromarray(right))
    assert isinstance(a, np.ndarray) and a.shape == (48, 64, 3)
    assert isinstance(b, PILImage.Image) and b.size == (64, 48)


def test_readme_python_example_runs(tmp_path: Path) -> None:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    shutil.copy(TINY_WEIGHTS, tmp_path / "NAFNet-SIDD-width32.pth")
    PILImage.fromarray(photo()).save(tmp_path / "noisy.png")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for code in blocks:
            exec(compile(code, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    assert PILImage.open(tmp_path / "clean.png").size == PILImage.open(tmp_path / "noisy.png").size
