"""Metadata kept through nafcli: ICC profile, EXIF (with its Exif and GPS sub-IFDs), resolution (DPI) and
XMP, in every format that has room for them, read back by Pillow and tifffile (independent readers), the
16-bit TIFF included; orientation applied to DPI and XMP as to the pixels."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from helpers.images import TINY_WEIGHTS, icc_profile, photo
from helpers.models import PIPELINE
from PIL import Image as PILImage
from PIL import TiffImagePlugin
from typer.testing import CliRunner

from nafcli.cli.main import app
from nafcli.imaging.image import Image
from nafcli.imaging.read import read_image
from nafcli.imaging.write import write_image

XMP = (b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
       b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
       b'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
       b'tiff:Orientation="1"><dc:creator><rdf:Seq><rdf:li>nafcli test</rdf:li></rdf:Seq></dc:creator>'
       b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')
#: one profile for the module: each new one carries the time it was made
ICC = icc_profile()


def _exif(orientation: int = 1) -> PILImage.Exif:
    """EXIF as a camera writes it: IFD0 (make, model), the Exif sub-IFD (exposure, ISO, date) and GPS."""
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "nafcli-test-camera"
    exif[0x0110] = "model-1"
    sub = exif.get_ifd(0x8769)
    sub[0x829A] = TiffImagePlugin.IFDRational(1, 250)  # ExposureTime
    sub[0x8827] = 400  # ISO
    sub[0x9003] = "2024:05:06 07:08:09"  # DateTimeOriginal
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (TiffImagePlugin.IFDRational(48), TiffImagePlugin.IFDRational(51), TiffImagePlugin.IFDRational(0))
    return exif


def _check_exif(exif: PILImage.Exif) -> None:
    assert exif.get(0x010F) == "nafcli-test-camera" and exif.get(0x0110) == "model-1"
    sub = exif.get_ifd(0x8769)
    assert sub.get(0x8827) == 400 and sub.get(0x9003) == "2024:05:06 07:08:09"
    assert float(sub.get(0x829A)) == pytest.approx(1 / 250)
    assert exif.get_ifd(0x8825).get(1) == "N"


def _source(tmp_path: Path, fmt: str, *, orientation: int = 1) -> Path:
    """A photo as another program writes it (Pillow), with ICC, EXIF, 300x150 DPI and XMP."""
    from PIL import PngImagePlugin

    path = tmp_path / f"src.{fmt.lower()}"
    im = PILImage.fromarray(photo(h=24, w=32))
    kwargs: dict = {"icc_profile": ICC, "exif": _exif(orientation).tobytes(), "dpi": (300, 150)}
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", XMP.decode("utf-8"))
        kwargs["pnginfo"] = info
    elif fmt == "TIFF":  # Pillow's TIFF writer takes EXIF and XMP as tags of the image's own IFD
        exif = _exif(orientation)
        ifd = TiffImagePlugin.ImageFileDirectory_v2()
        for tag in exif:
            ifd[tag] = exif[tag]
        for tag in (0x8769, 0x8825):  # the sub-IFDs, as nested dicts
            ifd[tag] = dict(exif.get_ifd(tag))
        ifd[700] = XMP
        kwargs["tiffinfo"] = ifd
        del kwargs["exif"]
    else:
        kwargs["xmp"] = XMP
    im.save(path, fmt, **kwargs)
    return path


def _xmp_of(im: PILImage.Image) -> bytes | None:
    xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if xmp is None and hasattr(im, "tag_v2"):
        xmp = im.tag_v2.get(700)
    return xmp.encode() if isinstance(xmp, str) else xmp


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "WEBP"])
@pytest.mark.parametrize("out_ext", [".png", ".jpg", ".tif", ".webp", ".bmp"])
def test_metadata_survives_any_format_to_any_format(tmp_path: Path, fmt: str, out_ext: str) -> None:
    img = read_image(_source(tmp_path, fmt))
    assert img.info["icc_profile"] == ICC and XMP in img.info["xmp"]
    if fmt != "WEBP":  # WebP has no resolution field
        assert img.info["dpi"] == pytest.approx((300, 150), rel=1e-3)
    out = tmp_path / f"out{out_ext}"
    assert write_image(out, img) == []
    with PILImage.open(out) as back:
        if out_ext == ".bmp":  # BMP holds a resolution, nothing else
            assert fmt == "WEBP" or back.info["dpi"] == pytest.approx((300, 150), rel=1e-3)
            return
        assert back.info.get("icc_profile") == ICC
        _check_exif(back.getexif())
        assert XMP in (_xmp_of(back) or b"")
        if out_ext != ".webp" and fmt != "WEBP":
            assert back.info["dpi"] == pytest.approx((300, 150), rel=1e-3)


def _tiff16(path: Path, *, alpha: bool = False) -> np.ndarray:
    """A 16-bit RGB TIFF as a raw converter writes it (tifffile): ICC, make and model, resolution, XMP."""
    rgb = photo(h=24, w=32).astype(np.uint16) * 257 + 3
    arr = np.dstack([rgb, np.full(rgb.shape[:2], 40000, np.uint16)]) if alpha else rgb
    tifffile.imwrite(path, arr, photometric="rgb", iccprofile=ICC, resolution=(300, 150),
                     resolutionunit="INCH", metadata=None, extrasamples=[2] if alpha else None,
                     extratags=[(271, "s", 0, "nafcli-test-camera", True), (272, "s", 0, "model-1", True),
                                (700, "B", len(XMP), XMP, True)])
    return arr


def test_16bit_tiff_keeps_icc_exif_dpi_and_xmp_through_denoise(tmp_path: Path) -> None:
    if not TINY_WEIGHTS.exists():
        pytest.skip("../shared/reference/pipeline is not here")
    src = tmp_path / "scan.tiff"
    _tiff16(src)
    result = CliRunner().invoke(app, ["denoise", str(src), "-w", str(TINY_WEIGHTS), "-d", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    out = Path(json.loads(result.stdout)["output"])
    assert out == tmp_path / "scan_denoised.tiff"
    with tifffile.TiffFile(out) as tif:
        page = tif.pages[0]
        assert page.dtype == np.uint16 and page.shape == (24, 32, 3)
        tags = page.tags
        assert tags["InterColorProfile"].value == ICC
        assert tags["Make"].value == "nafcli-test-camera" and tags["Model"].value == "model-1"
        assert tags["XResolution"].value == (300, 1) and tags["YResolution"].value == (150, 1)
        assert int(tags["ResolutionUnit"].value) == 2  # inch
        assert XMP in bytes(tags["XMP"].value)
    with PILImage.open(out) as back:
        assert back.info["icc_profile"] == ICC and back.getexif()[0x010F] == "nafcli-test-camera"


@pytest.mark.parametrize("alpha", [False, True])
def test_16bit_tiff_writes_exif_sub_ifds_both_readers_see(tmp_path: Path, alpha: bool) -> None:
    rgb = photo(h=24, w=32).astype(np.uint16) * 257
    a = np.linspace(0, 65535, rgb.shape[0] * rgb.shape[1]).reshape(rgb.shape[:2]).astype(np.uint16)
    info = {"icc_profile": ICC, "exif": _exif().tobytes(), "dpi": (300.0, 150.0), "xmp": XMP}
    out = tmp_path / "o.tif"
    assert write_image(out, Image(pixels=rgb, alpha=a if alpha else None, info=info)) == []
    with tifffile.TiffFile(out) as tif:
        page = tif.pages[0]
        np.testing.assert_array_equal(page.asarray()[:, :, :3], rgb)
        exif_ifd = page.tags["ExifTag"].value  # tifffile follows the pointer nafcli wrote
        assert exif_ifd["ISOSpeedRatings"] == 400 and exif_ifd["DateTimeOriginal"] == "2024:05:06 07:08:09"
        assert page.tags["GPSTag"].value["GPSLatitudeRef"] == "N"
        assert "Software" not in page.tags  # no writer's signature added
    with PILImage.open(out) as back:
        _check_exif(back.getexif())
    again = read_image(out)  # nafcli reads its own output back exactly
    np.testing.assert_array_equal(again.pixels, rgb)
    if alpha:
        np.testing.assert_array_equal(again.alpha, a)


def test_8bit_rgba_tiff_reads_back_exactly(tmp_path: Path) -> None:
    """OpenCV decodes an 8-bit TIFF with straight alpha premultiplied; nafcli takes Pillow's colours."""
    rgb = photo(h=24, w=32)
    a = np.linspace(0, 255, rgb.shape[0] * rgb.shape[1]).reshape(rgb.shape[:2]).astype(np.uint8)
    write_image(tmp_path / "a.tif", Image(pixels=rgb, alpha=a))
    back = read_image(tmp_path / "a.tif")
    np.testing.assert_array_equal(back.pixels, rgb)
    np.testing.assert_array_equal(back.alpha, a)
    with PILImage.open(tmp_path / "a.tif") as im:
        assert im.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(im)[:, :, :3], rgb)


def test_orientation_turns_dpi_and_xmp_too(tmp_path: Path) -> None:
    src = tmp_path / "turned.jpg"
    PILImage.fromarray(photo(h=24, w=32)).save(src, exif=_exif(6).tobytes(), dpi=(300, 150),
                                               xmp=XMP.replace(b'tiff:Orientation="1"', b'tiff:Orientation="6"'))
    img = read_image(src)
    assert (img.height, img.width) == (32, 24)
    assert img.info["dpi"] == (150, 300)  # a quarter turn swaps the axes
    assert b'tiff:Orientation="1"' in img.info["xmp"] and b'tiff:Orientation="6"' not in img.info["xmp"]
    write_image(tmp_path / "up.jpg", img)
    with PILImage.open(tmp_path / "up.jpg") as back:
        assert back.getexif().get(0x0112) == 1 and back.info["dpi"] == (150, 300)


def test_an_xmp_packet_too_large_for_jpeg_is_reported(tmp_path: Path) -> None:
    big = XMP.replace(b"nafcli test", b"x" * 70_000)
    warnings = write_image(tmp_path / "x.jpg", Image(pixels=photo(h=8, w=8), info={"xmp": big}))
    assert len(warnings) == 1 and "XMP" in warnings[0] and "not kept" in warnings[0]
    with PILImage.open(tmp_path / "x.jpg") as back:
        assert back.info.get("xmp") is None


def test_png_resolution_round_trips_stably(tmp_path: Path) -> None:
    img = Image(pixels=photo(h=8, w=8), info={"dpi": (72.0, 72.0)})
    write_image(tmp_path / "a.png", img)
    first = read_image(tmp_path / "a.png")
    write_image(tmp_path / "b.png", first)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert first.info["dpi"] == pytest.approx((72, 72), abs=0.01)


@pytest.mark.skipif(not (PIPELINE / "sr-nafssr-x4.pth").is_file(), reason="../shared/reference/pipeline is absent")
def test_super_resolution_keeps_the_print_size(tmp_path: Path) -> None:
    src = tmp_path / "lr.png"
    buf = io.BytesIO()
    PILImage.fromarray(photo(h=16, w=20)).save(buf, "PNG", dpi=(72, 72))
    src.write_bytes(buf.getvalue())
    result = CliRunner().invoke(app, ["sr", str(src), "-w", str(PIPELINE / "sr-nafssr-x4.pth"), "-d", "cpu"])
    assert result.exit_code == 0, result.output
    with PILImage.open(tmp_path / "lr_sr.png") as out:
        assert out.size == (80, 64) and out.info["dpi"] == pytest.approx((288, 288), abs=0.05)
