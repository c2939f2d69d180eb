"""Test images for the batch/format tests: crops of real photographs and the variants photos come in.

Real photographs come from scikit-image's bundled data (and ../shared/samples where present); the
variants are generated from them with Pillow/OpenCV, so each test writes only what it needs, small.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .models import SHARED

__all__ = ["SHARED", "TINY_WEIGHTS", "exif_with_orientation", "icc_profile", "photo", "write_broken",
           "write_variants"]

TINY_WEIGHTS = SHARED / "reference" / "pipeline" / "denoise-nafnet.pth"


def photo(name: str = "astronaut", h: int = 40, w: int = 56) -> np.ndarray:
    """A small RGB (or gray, for 'camera') crop of a real photograph from scikit-image."""
    import skimage.data

    img = getattr(skimage.data, name)()
    y0, x0 = img.shape[0] // 3, img.shape[1] // 3
    return np.ascontiguousarray(img[y0:y0 + h, x0:x0 + w])


def icc_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif_with_orientation(orientation: int) -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "nafcli-test-camera"  # Make: must survive the round trip
    return exif.tobytes()


def write_variants(folder: Path) -> dict[str, Path]:
    """Write the format zoo into ``folder``; returns name -> path."""
    import cv2
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rgb = photo()
    out: dict[str, Path] = {}

    def p(name: str) -> Path:
        out[name.split(".")[0]] = folder / name
        return folder / name

    Image.fromarray(rgb).save(p("rgb8.png"))
    Image.fromarray(rgb).save(p("photo.jpg"), quality=92)
    cv2.imwrite(str(p("rgb16.png")), (rgb[:, :, ::-1].astype(np.uint16) * 257 + 3))
    cv2.imwrite(str(p("rgb16_tif.tif")), (rgb[:, :, ::-1].astype(np.uint16) * 257))
    Image.fromarray(photo("camera")).save(p("gray.png"))
    rgba = np.dstack([rgb, np.linspace(0, 255, rgb.shape[1], dtype=np.uint8)[None].repeat(rgb.shape[0], 0)])
    Image.fromarray(rgba, "RGBA").save(p("rgba.png"))
    Image.fromarray(rgb).convert("CMYK").save(p("cmyk.jpg"), quality=95)
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    pal.save(p("palette.png"), transparency=0)
    Image.fromarray(rgb).convert("LA").save(p("la.png"))
    Image.fromarray(rgb).save(p("rotated.jpg"), exif=exif_with_orientation(6), icc_profile=icc_profile())
    Image.fromarray(rgb).save(p("photo_webp.webp"), quality=90)
    Image.fromarray(rgb).save(p("photo_bmp.bmp"))
    frames = [Image.fromarray(np.roll(rgb, 5 * i, axis=1)) for i in range(3)]
    frames[0].save(p("anim.gif"), save_all=True, append_images=frames[1:])
    # content decides, not the extension: a PNG named .jpg
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    p("really_png.jpg").write_bytes(buf.getvalue())
    return out


def write_broken(folder: Path) -> dict[str, Path]:
    """Files that must fail cleanly, one line each."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rgb = photo()
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    png = buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG")
    jpg = buf.getvalue()
    files = {
        "truncated_png": folder / "truncated.png",
        "truncated_jpg": folder / "truncated.jpg",
        "empty": folder / "empty.png",
        "text": folder / "text.png",
    }
    files["truncated_png"].write_bytes(png[: len(png) // 2])
    files["truncated_jpg"].write_bytes(jpg[: len(jpg) * 2 // 3])
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not an image\n")
    return files
