""":class:`Image` -> files, atomically (see :mod:`nafcli.imaging.files`).

Pixels are encoded by OpenCV (PNG output then matches the authors' pipeline byte for byte in its pixels);
the ICC profile and EXIF are spliced into PNG and JPEG files, WebP and 8-bit TIFF go through Pillow, which
carries both.
"""

from __future__ import annotations

import os
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

    Pixels are encoded by OpenCV (PNG output then matches the authors' pipeline byte for byte in its
    pixels); the ICC profile and EXIF from ``image.info`` are spliced into PNG and JPEG files, and WebP
    is written through Pillow, which carries both. Returns warnings about what the format could not
    keep (alpha in a JPEG, 16-bit in a WebP) so the caller can report them.
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
    icc, exif = image.info.get("icc_profile"), image.info.get("exif")
    if fmt == "png" and image.is_gray and image.alpha is not None:
        # OpenCV writes no gray+alpha PNG (it would make it RGBA): gray must stay gray
        atomic_write_bytes(p, _png_with_metadata(_encode_png_gray_alpha(image), icc, exif))
        return warnings
    if fmt == "tiff" and not sixteen and (icc or exif):
        atomic_write_bytes(p, _encode_tiff_pil(image, icc, exif))
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
        data = _png_with_metadata(data, icc, exif)
    elif fmt == "jpg":
        data = _jpeg_with_metadata(data, icc, exif)
    atomic_write_bytes(p, data)
    return warnings


def _encode_webp(image: Image, quality: int | None) -> bytes:
    import io

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
    out = io.BytesIO()
    im.save(out, "WEBP", **kwargs)
    return out.getvalue()


def _encode_png_gray_alpha(image: Image) -> bytes:
    """A gray+alpha PNG (colour type 4, 8 or 16 bits), which neither OpenCV nor (at 16 bits) Pillow
    writes. Filter type 0 on every row; zlib does the rest."""
    import struct
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


def _encode_tiff_pil(image: Image, icc: bytes | None, exif: bytes | None) -> bytes:
    """8-bit TIFF through Pillow, which can carry the ICC profile and EXIF (OpenCV cannot)."""
    import io

    from PIL import Image as PILImage

    px = image.pixels[:, :, 0] if image.is_gray else image.pixels
    parts = [px] if image.alpha is None else [px if px.ndim == 3 else px[:, :, None], image.alpha[:, :, None]]
    arr = np.ascontiguousarray(np.concatenate(parts, axis=2) if len(parts) > 1 else parts[0])
    kwargs: dict = {"compression": "tiff_lzw"}
    if icc:
        kwargs["icc_profile"] = icc
    if exif:
        kwargs["exif"] = exif
    out = io.BytesIO()
    PILImage.fromarray(arr).save(out, "TIFF", **kwargs)
    return out.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    import struct
    import zlib

    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _png_with_metadata(data: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    """Insert iCCP and eXIf chunks right after IHDR (where the PNG spec wants iCCP: before IDAT)."""
    import zlib

    if not icc and not exif:
        return data
    ihdr_end = 8 + 8 + 13 + 4  # signature, IHDR length+type, IHDR body, CRC
    extra = b""
    if icc:
        extra += _png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(icc))
    if exif:
        body = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
        extra += _png_chunk(b"eXIf", body)
    return data[:ihdr_end] + extra + data[ihdr_end:]


def _jpeg_with_metadata(data: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    """Insert APP1 (Exif) and APP2 (ICC_PROFILE, split in 64 KB pieces) after the JFIF header."""
    import struct

    segments = b""
    if exif:
        body = exif if exif.startswith(b"Exif\x00\x00") else b"Exif\x00\x00" + exif
        if len(body) + 2 <= 0xFFFF:
            segments += b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    if icc:
        step = 0xFFFF - 2 - 14
        pieces = [icc[i:i + step] for i in range(0, len(icc), step)]
        for n, piece in enumerate(pieces, 1):
            body = b"ICC_PROFILE\x00" + bytes([n, len(pieces)]) + piece
            segments += b"\xff\xe2" + struct.pack(">H", len(body) + 2) + body
    if not segments:
        return data
    pos = 2
    if data[2:4] == b"\xff\xe0":  # keep APP0 (JFIF) first, as readers expect
        pos = 4 + struct.unpack(">H", data[4:6])[0]
    return data[:pos] + segments + data[pos:]
