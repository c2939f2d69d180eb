"""Files <-> arrays. Knows nothing of models.

Pixels are decoded with OpenCV, as the authors' demo does, so that nafcli sees exactly the values their
pipeline sees (JPEG decoders differ by a level here and there). An image is returned as an
:class:`Image`: RGB (or gray) pixels as a numpy array of their native bit depth, the alpha channel kept
apart so it can pass through unchanged.

Writing is atomic: the encoded bytes go to a temporary file in the target folder, which is then renamed
over the target, so an interrupted run never leaves a half-written image.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ImageReadError, ImageTooLargeError, ImageWriteError

#: formats nafcli writes, by the extension of the output path
WRITABLE = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp", ".tif": "tiff", ".tiff": "tiff",
            ".bmp": "bmp"}


@dataclass
class Image:
    """Decoded pixels and what must survive the round trip."""

    #: H x W x 3 RGB, or H x W x 1 gray; uint8 or uint16
    pixels: np.ndarray
    #: H x W alpha of the same dtype, or None
    alpha: np.ndarray | None = None
    #: the file it came from, for messages
    source: str = ""
    #: extra data the writer may use (ICC profile, EXIF, ...)
    info: dict = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def max_value(self) -> int:
        return 65535 if self.pixels.dtype == np.uint16 else 255

    @property
    def is_gray(self) -> bool:
        return self.pixels.shape[2] == 1


def read_image(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> Image:
    """Decode an image file. Raises :class:`ImageReadError` with a one-line reason.

    Pixels come from OpenCV (parity with the authors' pipeline); Pillow reads only the header and
    metadata: the real format (by content, whatever the extension says), EXIF orientation, ICC profile,
    EXIF, the colour mode (to keep gray gray) and the frame count. Anything worth telling the user
    (an animation reduced to its first frame, a CMYK conversion) goes to ``info["warnings"]``: the
    library does not print.
    """
    import cv2

    p = Path(path)
    name = str(p)
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except FileNotFoundError:
        raise ImageReadError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{name}: is a directory") from None
    except OSError as e:
        raise ImageReadError(f"{name}: cannot read ({e.strerror or e})") from None
    if data.size == 0:
        raise ImageReadError(f"{name}: empty file")
    fmt = sniff_format(data[:64].tobytes())
    if fmt is None:
        raise ImageReadError(f"{name}: not an image (unrecognised content)")
    _check_complete(name, fmt, data)
    meta = _read_metadata(name, data)
    if max_pixels is not None and meta.get("size"):
        w, h = meta["size"]
        check_pixels(name, w, h, max_pixels)
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if arr is None or arr.size == 0:
        raise ImageReadError(f"{name}: not an image, or a damaged one ({fmt})")
    image = from_cv2(arr, source=name)
    if max_pixels is not None:
        check_pixels(name, image.width, image.height, max_pixels)
    return _apply_metadata(image, meta, fmt)


def check_pixels(name: str, width: int, height: int, max_pixels: int) -> None:
    """Refuse images above the pixel limit before spending memory on them."""
    if max_pixels > 0 and width * height > max_pixels:
        raise ImageTooLargeError(
            f"{name}: {width}x{height} is {width * height / 1e6:.1f} MP, above the limit of "
            f"{max_pixels / 1e6:.1f} MP (raise it with --max-pixels)"
        )


#: magic numbers, by format; enough to recognise images whatever their extension
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),
    (b"MM\x00+", "tiff"),
    (b"BM", "bmp"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)


def sniff_format(head: bytes) -> str | None:
    """The image format of a file from its first bytes, or None. Content, not extension, decides."""
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            if fmt == "bmp" and head[14:18] not in (
                b"\x0c\x00\x00\x00", b"(\x00\x00\x00", b"@\x00\x00\x00", b"l\x00\x00\x00",
                b"|\x00\x00\x00",
            ):
                return None  # "BM" alone is too weak: require a known DIB header size
            return fmt
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def sniff_file(path: str | os.PathLike[str]) -> str | None:
    """:func:`sniff_format` on a file; None when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return sniff_format(f.read(64))
    except OSError:
        return None


def _check_complete(name: str, fmt: str, data: np.ndarray) -> None:
    """Catch truncated PNG/JPEG files before decoding: OpenCV would decode them partially (grey
    bottom rows) and libjpeg would print a warning of its own on stderr."""
    raw = data.tobytes()
    if fmt == "png" and raw.rfind(b"IEND") < 0:
        raise ImageReadError(f"{name}: truncated PNG (no end chunk); the file is incomplete")
    if fmt == "jpeg":
        # 0xFFD9 cannot occur inside entropy-coded data, so the last start-of-scan must be followed
        # by an end-of-image marker (an EXIF thumbnail has its own pair earlier in the file)
        if raw.rfind(b"\xff\xd9") < raw.rfind(b"\xff\xda"):
            raise ImageReadError(f"{name}: truncated JPEG (no end-of-image marker); the file is incomplete")


def _read_metadata(name: str, data: np.ndarray) -> dict:
    """Header-level facts via Pillow (lazy: no pixel decoding)."""
    import io

    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    meta: dict = {}
    head = data[:26].tobytes()
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        meta["png_color_type"] = head[25]
    try:
        with warnings.catch_warnings():
            # our own --max-pixels limit applies; Pillow's bomb warning would print on stderr
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            im = PILImage.open(io.BytesIO(data.tobytes()))
        with im:
            meta["size"] = im.size
            meta["mode"] = im.mode
            meta["format"] = (im.format or "").lower()
            meta["frames"] = int(getattr(im, "n_frames", 1) or 1)
            meta["transparency"] = "transparency" in im.info
            icc = im.info.get("icc_profile")
            if icc:
                meta["icc_profile"] = icc
            try:
                exif = im.getexif()
            except Exception:  # noqa: BLE001 - damaged EXIF must not cost the pixels
                exif = None
            if exif:
                meta["orientation"] = int(exif.get(0x0112, 1) or 1)
                if 0x0112 in exif:
                    exif[0x0112] = 1
                try:
                    meta["exif"] = exif.tobytes()
                except Exception:  # noqa: BLE001
                    pass
    except UnidentifiedImageError:
        pass  # OpenCV may still know it; it decides
    except PILImage.DecompressionBombError:
        meta["warnings"] = [f"{name}: too large for Pillow to read its metadata; orientation and ICC ignored"]
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageReadError(f"{name}: damaged image header ({e})") from None
    return meta


_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def _apply_metadata(image: Image, meta: dict, fmt: str) -> Image:
    """Orientation, gray/alpha clean-up and metadata on top of OpenCV's pixels."""
    warnings: list[str] = list(meta.get("warnings", []))
    mode = meta.get("mode", "")
    name = image.source
    if meta.get("png_color_type") in (0, 4):
        mode = "LA" if meta["png_color_type"] == 4 else "L"  # Pillow calls 16-bit gray+alpha "RGBA"
    if mode in _GRAY_MODES and not image.is_gray:
        # OpenCV expands gray+alpha to BGRA; gray must stay gray
        image = Image(pixels=np.ascontiguousarray(image.pixels[:, :, :1]), alpha=image.alpha,
                      source=name)
    if image.alpha is not None and "A" not in mode and not meta.get("transparency", False) and mode:
        if bool((image.alpha == image.max_value).all()):
            image.alpha = None  # GIF frames come back BGRA with an opaque alpha: nothing to keep
    if mode == "CMYK":
        warnings.append(f"{name}: CMYK image converted to RGB")
    if meta.get("frames", 1) > 1:
        warnings.append(f"{name}: animated image ({meta['frames']} frames); only the first frame is used")
    orientation = meta.get("orientation", 1)
    if orientation not in (1, 0):
        image.pixels = apply_orientation(image.pixels, orientation)
        if image.alpha is not None:
            image.alpha = apply_orientation(image.alpha, orientation)
    info = image.info
    info["format"] = fmt
    info["mode"] = mode
    info["orientation"] = orientation
    if meta.get("icc_profile") and mode != "CMYK":  # a CMYK profile does not describe RGB pixels
        info["icc_profile"] = meta["icc_profile"]
    if meta.get("exif"):
        info["exif"] = meta["exif"]
    if warnings:
        info["warnings"] = warnings
    return image


def apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Turn pixels stored with EXIF ``orientation`` (2..8) upright."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1],
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(arr)) if op else arr


def from_cv2(arr: np.ndarray, *, source: str = "") -> Image:
    """Turn an OpenCV array (BGR/BGRA/gray, any bit depth) into an :class:`Image`."""
    if arr.dtype not in (np.uint8, np.uint16):
        if np.issubdtype(arr.dtype, np.floating):
            arr = (np.clip(arr, 0.0, 1.0) * 65535.0).round().astype(np.uint16)
        else:
            raise ImageReadError(f"{source}: unsupported sample type {arr.dtype}")
    if arr.ndim == 2:
        return Image(pixels=arr[:, :, None], source=source)
    channels = arr.shape[2]
    if channels == 1:
        return Image(pixels=arr, source=source)
    if channels == 2:  # gray + alpha
        return Image(pixels=arr[:, :, :1].copy(), alpha=arr[:, :, 1].copy(), source=source)
    if channels == 3:
        return Image(pixels=np.ascontiguousarray(arr[:, :, ::-1]), source=source)
    if channels == 4:
        return Image(
            pixels=np.ascontiguousarray(arr[:, :, 2::-1]), alpha=arr[:, :, 3].copy(), source=source
        )
    raise ImageReadError(f"{source}: unsupported number of channels ({channels})")


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


#: what each output format can hold: (16-bit samples, alpha)
CAPABILITIES = {"png": (True, True), "tiff": (True, True), "webp": (False, True), "jpg": (False, False),
                "bmp": (False, False)}
#: the extension written for each format
EXTENSIONS = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "tiff": ".tif", "bmp": ".bmp"}


def can_hold(fmt: str, *, sixteen_bit: bool, alpha: bool) -> bool:
    """Whether ``fmt`` stores an image with these properties without loss of depth or alpha."""
    deep, transparent = CAPABILITIES.get(fmt, (False, False))
    return (deep or not sixteen_bit) and (transparent or not alpha)


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


def _umask() -> int:
    """The process umask: from /proc on Linux (no change to process state, safe beside other threads),
    else by setting it and putting it back (POSIX has no getter)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    name = str(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as e:
        raise ImageWriteError(f"{name}: cannot write ({e.strerror or e})") from None
    try:
        # mkstemp creates the file 0600; give it the mode a plain open() would (0666 less the umask),
        # or every output would be unreadable to the user's group and other tools' service accounts.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise ImageWriteError(f"{name}: cannot write ({e.strerror or e})") from None
        raise
