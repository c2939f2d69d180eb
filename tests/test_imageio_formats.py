"""Formats real photos come in: bit depth, gray, alpha, orientation, ICC/EXIF, CMYK, palette, animation."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.images import icc_profile, photo, write_broken, write_variants
from PIL import Image as PILImage
from PIL import ImageOps

from nafcli.errors import ImageReadError, ImageTooLargeError
from nafcli.imaging.formats import sniff_format
from nafcli.imaging.metadata import apply_orientation
from nafcli.imaging.read import read_image
from nafcli.imaging.write import write_image


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_variants(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_broken(tmp_path_factory.mktemp("broken"))


@pytest.mark.parametrize("name, ext", [("rgb16", ".png"), ("rgb16_tif", ".tif")])
def test_16bit_keeps_depth(zoo: dict[str, Path], tmp_path: Path, name: str, ext: str) -> None:
    src = zoo[name]
    img = read_image(src)
    assert img.pixels.dtype == np.uint16 and img.pixels.shape[2] == 3
    ref = cv2.imread(str(src), cv2.IMREAD_UNCHANGED)[:, :, ::-1]
    np.testing.assert_array_equal(img.pixels, ref)
    out = tmp_path / f"out{ext}"
    write_image(out, img)
    back = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back[:, :, ::-1], img.pixels)


def test_gray_stays_gray(zoo: dict[str, Path], tmp_path: Path) -> None:
    img = read_image(zoo["gray"])
    assert img.is_gray and img.alpha is None
    write_image(tmp_path / "g.png", img)
    assert PILImage.open(tmp_path / "g.png").mode == "L"


def test_alpha_passes_through(zoo: dict[str, Path], tmp_path: Path) -> None:
    img = read_image(zoo["rgba"])
    expected = np.asarray(PILImage.open(zoo["rgba"]))
    np.testing.assert_array_equal(img.alpha, expected[:, :, 3])
    np.testing.assert_array_equal(img.pixels, expected[:, :, :3])
    write_image(tmp_path / "a.png", img)
    np.testing.assert_array_equal(np.asarray(PILImage.open(tmp_path / "a.png"))[:, :, 3], expected[:, :, 3])


def test_la_is_gray_with_alpha(zoo: dict[str, Path]) -> None:
    img = read_image(zoo["la"])
    la = np.asarray(PILImage.open(zoo["la"]))
    assert img.is_gray
    np.testing.assert_array_equal(img.pixels[:, :, 0], la[:, :, 0])
    np.testing.assert_array_equal(img.alpha, la[:, :, 1])


def test_palette_with_transparency(zoo: dict[str, Path]) -> None:
    img = read_image(zoo["palette"])
    rgba = np.asarray(PILImage.open(zoo["palette"]).convert("RGBA"))
    assert not img.is_gray and img.alpha is not None
    np.testing.assert_array_equal(img.pixels, rgba[:, :, :3])
    np.testing.assert_array_equal(img.alpha, rgba[:, :, 3])
    assert (img.alpha == 0).any()  # index 0 really is transparent


def test_cmyk_jpeg_becomes_rgb(zoo: dict[str, Path]) -> None:
    img = read_image(zoo["cmyk"])
    assert img.pixels.shape[2] == 3 and img.alpha is None
    ref = np.asarray(PILImage.open(zoo["cmyk"]).convert("RGB")).astype(int)
    # two CMYK->RGB conversions (libjpeg's and Pillow's) may differ a little; not a colour inversion
    assert np.abs(img.pixels.astype(int) - ref).mean() < 8
    assert any("CMYK" in w for w in img.info["warnings"])
    assert "icc_profile" not in img.info


def test_exif_orientation_applied_and_reset(zoo: dict[str, Path], tmp_path: Path) -> None:
    src = zoo["rotated"]
    img = read_image(src)
    upright = np.asarray(ImageOps.exif_transpose(PILImage.open(src)))
    assert img.pixels.shape == upright.shape  # 6 = rotated: width and height swap
    np.testing.assert_array_equal(img.pixels, upright)
    icc = PILImage.open(src).info["icc_profile"]  # generated profiles carry a timestamp: compare to the file
    for ext in (".jpg", ".png", ".webp"):
        out = tmp_path / f"r{ext}"
        write_image(out, img)
        with PILImage.open(out) as back:
            assert back.info.get("icc_profile") == icc, ext
            exif = back.getexif()
            assert exif.get(0x0112) == 1, ext
            assert exif.get(0x010F) == "nafcli-test-camera", ext
            assert back.size == (img.width, img.height)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow(orientation: int) -> None:
    arr = photo(h=6, w=9)
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    PILImage.fromarray(arr).save(buf, "PNG", exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(PILImage.open(io.BytesIO(buf.getvalue()))))
    np.testing.assert_array_equal(apply_orientation(arr, orientation), expected)


def test_animated_uses_first_frame_with_warning(zoo: dict[str, Path]) -> None:
    img = read_image(zoo["anim"])
    first = np.asarray(PILImage.open(zoo["anim"]).convert("RGB"))
    np.testing.assert_array_equal(img.pixels, first)
    assert img.alpha is None  # GIF without transparency: no made-up alpha
    assert any("first frame" in w for w in img.info["warnings"])


@pytest.mark.parametrize("name", ["photo", "really_png", "rgb8"])
def test_formats_read_by_content(zoo: dict[str, Path], name: str) -> None:
    img = read_image(zoo[name])
    assert img.pixels.shape == photo().shape
    assert img.info["format"] == ("jpeg" if name == "photo" else "png")


@pytest.mark.parametrize("ext", [".webp", ".bmp"])
def test_webp_and_bmp(zoo: dict[str, Path], ext: str) -> None:
    img = read_image(zoo["photo_" + ext[1:]])
    ref = photo().astype(int)
    tol = 0 if ext == ".bmp" else 20
    assert np.abs(img.pixels.astype(int) - ref).mean() <= tol


@pytest.mark.parametrize("key, words", [
    ("truncated_png", "truncated PNG"), ("truncated_jpg", "truncated JPEG"),
    ("empty", "empty file"), ("text", "not an image"),
])
def test_broken_files_fail_in_one_line(broken: dict[str, Path], key: str, words: str) -> None:
    with pytest.raises(ImageReadError) as e:
        read_image(broken[key])
    msg = str(e.value)
    assert words in msg and str(broken[key]) in msg and "\n" not in msg


def test_max_pixels_names_the_flag(zoo: dict[str, Path]) -> None:
    with pytest.raises(ImageTooLargeError, match="--max-pixels"):
        read_image(zoo["rgb8"], max_pixels=100)
    assert read_image(zoo["rgb8"], max_pixels=10_000).width == photo().shape[1]


def test_sniff() -> None:
    assert sniff_format(b"\x89PNG\r\n\x1a\n....") == "png"
    assert sniff_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    assert sniff_format(b"BMx") is None
    assert sniff_format(b"hello world") is None


def test_jpeg_output_drops_alpha_with_warning(zoo: dict[str, Path], tmp_path: Path) -> None:
    img = read_image(zoo["rgba"])
    warnings = write_image(tmp_path / "x.jpg", img)
    assert any("alpha" in w for w in warnings)
    assert PILImage.open(tmp_path / "x.jpg").mode == "RGB"


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gray_alpha_png_stays_gray_alpha(tmp_path: Path, dtype: type) -> None:
    from nafcli.imaging.image import Image

    icc = icc_profile()
    gray = photo("camera").astype(dtype) * (257 if dtype == np.uint16 else 1)
    alpha = np.linspace(0, np.iinfo(dtype).max, gray.size).reshape(gray.shape).astype(dtype)
    write_image(tmp_path / "la.png", Image(pixels=gray[:, :, None], alpha=alpha, info={"icc_profile": icc}))
    assert PILImage.open(tmp_path / "la.png").info["icc_profile"] == icc
    back = read_image(tmp_path / "la.png")
    assert back.is_gray and back.pixels.dtype == dtype
    np.testing.assert_array_equal(back.pixels[:, :, 0], gray)
    np.testing.assert_array_equal(back.alpha, alpha)
    if dtype == np.uint8:
        assert PILImage.open(tmp_path / "la.png").mode == "LA"


def test_tiff_keeps_icc_and_exif(zoo: dict[str, Path], tmp_path: Path) -> None:
    img = read_image(zoo["rotated"])
    write_image(tmp_path / "r.tif", img)
    back = PILImage.open(tmp_path / "r.tif")
    assert back.info.get("icc_profile") == img.info["icc_profile"]
    assert back.getexif().get(0x010F) == "nafcli-test-camera"
    np.testing.assert_array_equal(np.asarray(back), img.pixels)


@pytest.mark.skipif(not hasattr(__import__("os"), "fchmod"), reason="POSIX file modes")
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_get_the_mode_a_plain_write_would(tmp_path: Path, umask: int) -> None:
    import os

    from nafcli.imaging.files import atomic_write_bytes

    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "out.png", b"data")
        (tmp_path / "plain.png").write_bytes(b"data")
    finally:
        os.umask(old)
    mode = (tmp_path / "out.png").stat().st_mode & 0o777
    assert mode == (tmp_path / "plain.png").stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []
