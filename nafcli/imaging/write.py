""":class:`Image` -> files, atomically (see :mod:`nafcli.imaging.files`).

Pixels are encoded by OpenCV (PNG output then matches the authors' pipeline byte for byte in its pixels);
the metadata read with the image (ICC profile, EXIF, resolution in DPI, XMP) is spliced into PNG, JPEG and
BMP files; WebP goes through Pillow, which carries ICC, EXIF and XMP (WebP has no resolution field).
TIFF, 8- and 16-bit, is written by tifffile: Pillow writes no 16-bit RGB TIFF and OpenCV no TIFF
metadata, while tifffile (a maintained TIFF reader/writer) writes any depth with the ICC profile,
resolution and XMP tags; the EXIF sub-IFDs, which it leaves to the caller, are serialised by Pillow and
linked in (:func:`_encode_tiff`).
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np

from ..errors import ImageWriteError
from .files import atomic_write_bytes
from .formats import CAPABILITIES, WRITABLE
from .image import Image


def to_cv2(image: Image) -> np.ndarray:
    """The OpenCV layout of an :class:`Image` (BGR, BGRA, gray)."""
    px = image.pixels
    if image.is_gray:
        out = px[:, :, 0]
        if image.alpha is not None:
            out = np.dstack([out, out, out, image.alpha])
        return out
    bgr = px[:, :, ::-1]
    if image.alpha is not None:
        return np.ascontiguousarray(np.dstack([bgr, image.alpha]))
    return np.ascontiguousarray(bgr)


def write_image(path: str | os.PathLike[str], image: Image, *, quality: int | None = None) -> list[str]:
    """Encode ``image`` by the extension of ``path`` and put it there atomically.

    The metadata in ``image.info`` (``icc_profile``, ``exif``, ``dpi``, ``xmp``) goes wherever the format
    has room for it (see the module's docstring). Returns warnings about what the format could not keep
    (alpha in a JPEG, 16-bit in a WebP, an XMP packet too large for a JPEG segment) so the caller can
    report them.
    """
    import cv2

    p = Path(path)
    name = str(p)
    ext = p.suffix.lower()
    if ext not in WRITABLE:
        raise ImageWriteError(
            f"{name}: cannot write {ext or 'files without an extension'}; use .png, .jpg, .webp, .tif"
        )
    fmt = WRITABLE[ext]
    warnings: list[str] = []
    sixteen = image.pixels.dtype == np.uint16
    if image.alpha is not None and not CAPABILITIES[fmt][1]:
        warnings.append(f"{name}: {fmt.upper()} has no alpha channel; transparency dropped")
        image = Image(pixels=image.pixels, alpha=None, source=image.source, info=image.info)
    if sixteen and not CAPABILITIES[fmt][0]:
        warnings.append(f"{name}: {fmt.upper()} holds 8 bits per sample; 16-bit result reduced")
    if fmt == "webp":
        atomic_write_bytes(p, _encode_webp(image, quality))
        return warnings
    if fmt == "tiff":
        data, more = _encode_tiff(image)
        atomic_write_bytes(p, data)
        return warnings + [f"{name}: {w}" for w in more]
    info = image.info
    if fmt == "png" and image.is_gray and image.alpha is not None:
        # OpenCV writes no gray+alpha PNG (it would make it RGBA): gray must stay gray
        atomic_write_bytes(p, _png_with_metadata(_encode_png_gray_alpha(image), info))
        return warnings
    arr = to_cv2(image)
    params: list[int] = []
    if sixteen and not CAPABILITIES[fmt][0]:
        arr = (arr.astype(np.float32) / 257.0).round().astype(np.uint8)
    if fmt == "jpg":
        params = [cv2.IMWRITE_JPEG_QUALITY, quality if quality is not None else 95]
    ok, buf = cv2.imencode(ext, arr, params)
    if not ok:
        raise ImageWriteError(f"{name}: could not encode the image as {ext}")
    data = buf.tobytes()
    if fmt == "png":
        data = _png_with_metadata(data, info)
    elif fmt == "jpg":
        data, more = _jpeg_with_metadata(data, info)
        warnings += [f"{name}: {w}" for w in more]
    elif fmt == "bmp":
        data = _bmp_with_dpi(data, info.get("dpi"))
    atomic_write_bytes(p, data)
    return warnings


def _encode_webp(image: Image, quality: int | None) -> bytes:
    from PIL import Image as PILImage

    px = image.pixels
    if px.dtype == np.uint16:
        px = (px.astype(np.float32) / 257.0).round().astype(np.uint8)
    rgb = np.repeat(px, 3, axis=2) if px.shape[2] == 1 else px
    im = PILImage.fromarray(np.ascontiguousarray(rgb))
    if image.alpha is not None:
        a = image.alpha
        if a.dtype == np.uint16:
            a = (a.astype(np.float32) / 257.0).round().astype(np.uint8)
        im.putalpha(PILImage.fromarray(np.ascontiguousarray(a)))
    kwargs: dict = {"quality": quality if quality is not None else 95}
    if image.info.get("icc_profile"):
        kwargs["icc_profile"] = image.info["icc_profile"]
    if image.info.get("exif"):
        kwargs["exif"] = image.info["exif"]
    if image.info.get("xmp"):
        kwargs["xmp"] = image.info["xmp"]
    out = io.BytesIO()
    im.save(out, "WEBP", **kwargs)
    return out.getvalue()


def _encode_png_gray_alpha(image: Image) -> bytes:
    """A gray+alpha PNG (colour type 4, 8 or 16 bits), which neither OpenCV nor (at 16 bits) Pillow
    writes. Filter type 0 on every row; zlib does the rest."""
    import zlib

    assert image.alpha is not None
    big = ">u2" if image.pixels.dtype == np.uint16 else "u1"
    la = np.dstack([image.pixels[:, :, 0], image.alpha]).astype(big)
    rows = la.reshape(image.height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    depth = 16 if big == ">u2" else 8
    ihdr = struct.pack(">IIBBBBB", image.width, image.height, depth, 4, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(raw, 6))
            + _png_chunk(b"IEND", b""))


#: descriptive tags of EXIF's IFD0 that a TIFF holds in its own IFD0 (the structural ones, such as the
#: resolution, are the file's own)
_TIFF_TEXT_TAGS = (270, 271, 272, 305, 306, 315, 316, 33432)
#: EXIF's sub-IFD pointers (Exif, GPS) -> tags that tifffile writes in the same place in IFD0's sorted
#: entries, to be renamed once the sub-IFD is appended (tifffile refuses the pointer tags themselves)
_SUB_IFDS = {0x8769: 0x8768, 0x8825: 0x8824}
_INTEROP_IFD = 0xA005


def _encode_tiff(image: Image) -> tuple[bytes, list[str]]:
    """A TIFF of the image's depth (zlib, horizontal predictor) with its ICC profile, resolution, XMP and
    EXIF. Returns the file and what could not be kept."""
    import tifffile

    px, alpha = image.pixels, image.alpha
    if image.is_gray and alpha is None:
        arr, photometric = px[:, :, 0], "minisblack"
    else:
        # gray+alpha as RGBA, as OpenCV writes it: common readers (OpenCV among them) misread a 16-bit
        # gray+alpha TIFF
        rgb = np.repeat(px, 3, axis=2) if image.is_gray else px
        arr, photometric = (rgb if alpha is None else np.dstack([rgb, alpha])), "rgb"
    info = image.info
    exif = _load_exif(info.get("exif"))
    software: str | bool = False  # tifffile would sign the file itself
    tags: list[tuple] = []
    for code in _TIFF_TEXT_TAGS:
        value = exif.get(code) if exif is not None else None
        if isinstance(value, str) and value.strip("\x00"):
            if code == 305 and value.isascii():
                software = value
            else:
                raw = value.encode("utf-8")
                tags.append((code, "s", len(raw) + 1, raw, True))
    pointers = {tag: stand_in for tag, stand_in in _SUB_IFDS.items() if exif is not None and exif.get_ifd(tag)}
    lost: list[str] = []
    for tag in list(pointers):
        try:
            _sub_ifd(exif, tag).tobytes(0)
        except Exception:  # noqa: BLE001 - a value Pillow cannot serialise costs that sub-IFD, not the image
            del pointers[tag]
            lost.append(f"EXIF {'GPS' if tag == 0x8825 else 'Exif'} tags not kept (unreadable values)")
    tags += [(stand_in, "I", 1, 0, True) for stand_in in pointers.values()]
    if info.get("xmp"):
        tags.append((700, "B", len(info["xmp"]), info["xmp"], True))
    kwargs: dict = {}
    if info.get("dpi"):
        kwargs.update(resolution=tuple(float(d) for d in info["dpi"]), resolutionunit="INCH")
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.ascontiguousarray(arr), photometric=photometric, byteorder="<",
                     compression="zlib", predictor=True, metadata=None, software=software,
                     iccprofile=info.get("icc_profile") or None, extrasamples=[2] if alpha is not None else None,
                     extratags=tags, **kwargs)
    data = bytearray(buf.getvalue())
    if not pointers:
        return bytes(data), lost
    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:
        if tif.is_bigtiff:
            return bytes(data), [*lost, "EXIF not kept (a BigTIFF)"]  # Pillow serialises classic IFDs only
        entries = {tag: (tif.pages[0].tags[stand_in].offset, tif.pages[0].tags[stand_in].valueoffset)
                   for tag, stand_in in pointers.items()}
    assert exif is not None
    for tag, (entry, value_at) in entries.items():
        data += b"\x00" * (len(data) % 2)  # IFDs start on a word boundary
        start = len(data)
        data += _sub_ifd(exif, tag).tobytes(start)
        data[entry:entry + 2] = struct.pack("<H", tag)  # the stand-in becomes the pointer...
        data[value_at:value_at + 4] = struct.pack("<I", start)  # ...to the sub-IFD just appended
    return bytes(data), lost


def _load_exif(blob: bytes | None):  # noqa: ANN202 - a PIL.Image.Exif, imported lazily
    if not blob:
        return None
    from PIL import Image as PILImage

    exif = PILImage.Exif()
    try:
        exif.load(blob)
    except Exception:  # noqa: BLE001 - damaged EXIF must not cost the image
        return None
    return exif


def _sub_ifd(exif, tag: int):  # noqa: ANN001, ANN202 - PIL types, imported lazily
    """EXIF's Exif or GPS sub-IFD as a little-endian IFD Pillow can place anywhere in a file (with the
    Interoperability IFD nested in the Exif one, as Pillow's own EXIF writer does)."""
    from PIL import TiffImagePlugin

    ifd = TiffImagePlugin.ImageFileDirectory_v2(ifh=b"II*\x00\x08\x00\x00\x00")
    values = dict(exif.get_ifd(tag))
    if tag == 0x8769 and _INTEROP_IFD in values:
        interop = exif.get_ifd(_INTEROP_IFD)
        if interop:
            values[_INTEROP_IFD] = dict(interop)
        else:
            del values[_INTEROP_IFD]
    for key, value in values.items():
        ifd[key] = value
    return ifd


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    import zlib

    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _png_with_metadata(data: bytes, info: dict) -> bytes:
    """Insert pHYs (resolution), iCCP, eXIf and an iTXt XMP packet right after IHDR (where the PNG spec
    wants pHYs and iCCP: before IDAT)."""
    import zlib

    icc, exif, dpi, xmp = info.get("icc_profile"), info.get("exif"), info.get("dpi"), info.get("xmp")
    if not (icc or exif or dpi or xmp):
        return data
    ihdr_end = 8 + 8 + 13 + 4  # signature, IHDR length+type, IHDR body, CRC
    extra = b""
    if dpi:
        per_metre = [max(1, round(d / 0.0254)) for d in dpi]
        extra += _png_chunk(b"pHYs", struct.pack(">IIB", per_metre[0], per_metre[1], 1))
    if icc:
        extra += _png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(icc))
    if exif:
        body = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
        extra += _png_chunk(b"eXIf", body)
    if xmp:
        # keyword, no compression, no language, no translated keyword: how Adobe's XMP spec puts it in PNG
        extra += _png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp)
    return data[:ihdr_end] + extra + data[ihdr_end:]


#: the namespace that opens a JPEG's XMP segment (Adobe XMP specification, part 3)
_XMP_JPEG_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"


def _jpeg_with_metadata(data: bytes, info: dict) -> tuple[bytes, list[str]]:
    """Set the JFIF density to the resolution; insert APP1 (Exif), APP1 (XMP) and APP2 (ICC_PROFILE, split
    in 64 KB pieces) after the JFIF header. Returns the file and what could not be kept."""
    icc, exif, dpi, xmp = info.get("icc_profile"), info.get("exif"), info.get("dpi"), info.get("xmp")
    warnings: list[str] = []
    if dpi and data[2:4] == b"\xff\xe0" and data[6:11] == b"JFIF\x00":
        # APP0: length, "JFIF\0", version (2), units (1: dots per inch), X and Y density
        density = [min(65535, max(1, round(d))) for d in dpi]
        data = data[:13] + struct.pack(">BHH", 1, *density) + data[18:]
    segments = b""
    if exif:
        body = exif if exif.startswith(b"Exif\x00\x00") else b"Exif\x00\x00" + exif
        if len(body) + 2 <= 0xFFFF:
            segments += b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    if xmp:
        body = _XMP_JPEG_HEADER + xmp
        if len(body) + 2 <= 0xFFFF:
            segments += b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
        else:
            warnings.append(f"XMP of {len(xmp)} bytes is too large for a JPEG segment; not kept")
    if icc:
        step = 0xFFFF - 2 - 14
        pieces = [icc[i:i + step] for i in range(0, len(icc), step)]
        for n, piece in enumerate(pieces, 1):
            body = b"ICC_PROFILE\x00" + bytes([n, len(pieces)]) + piece
            segments += b"\xff\xe2" + struct.pack(">H", len(body) + 2) + body
    if not segments:
        return data, warnings
    pos = 2
    if data[2:4] == b"\xff\xe0":  # keep APP0 (JFIF) first, as readers expect
        pos = 4 + struct.unpack(">H", data[4:6])[0]
    return data[:pos] + segments + data[pos:], warnings


def _bmp_with_dpi(data: bytes, dpi: tuple[float, float] | None) -> bytes:
    """Set a BMP's pixels per metre (the BITMAPINFOHEADER fields at bytes 38 and 42) to the resolution."""
    if not dpi or len(data) < 46 or struct.unpack("<I", data[14:18])[0] < 40:
        return data
    per_metre = [max(1, round(d / 0.0254)) for d in dpi]
    return data[:38] + struct.pack("<ii", *per_metre) + data[46:]
