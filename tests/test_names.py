"""nafcli.jobs.names, the one home for names: what is an image, what is skipped, side markers, scene
views, output names and which outputs collide."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from nafcli.errors import UsageError
from nafcli.jobs.discover import Source
from nafcli.jobs.names import (
    IMAGE_EXTENSIONS,
    SUFFIXES,
    TOOL_SUFFIXES,
    OutputClaims,
    OutputNames,
    Side,
    has_image_extension,
    is_hidden_or_system,
    is_output,
    is_system_dir,
    looks_like_image,
    mirrored,
    order_scene_views,
    output_name,
    same_file,
    side_of,
)
from nafcli.jobs.plan import OutputSpec, plan
from nafcli.weights.registry import TASKS


def _save(path: Path, fmt: str, mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((6, 8, len(mode)), 100, np.uint8)
    PILImage.fromarray(arr[:, :, 0] if mode == "L" else arr, mode).save(path, fmt)
    return path


# -- what is an image --------------------------------------------------------------------------------


def test_image_extensions_any_case() -> None:
    assert {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"} <= IMAGE_EXTENSIONS
    for name in ("a.png", "a.PNG", "b.Jpg", "c.tiff", "d.JPEG", "e.webp"):
        assert has_image_extension(Path(name)), name
    for name in ("notes.txt", "raw.cr2", "archive.png.zip", "png", "a.pth"):
        assert not has_image_extension(Path(name)), name


def test_content_decides_when_the_name_does_not(tmp_path: Path) -> None:
    scan = _save(tmp_path / "scan0001", "PNG")  # no extension, PNG content
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    named = tmp_path / "broken.png"
    named.write_text("not an image either")
    assert looks_like_image(scan)
    assert not looks_like_image(text)
    assert looks_like_image(named)  # tried because of its name, then fails cleanly when read


@pytest.mark.parametrize(
    ("name", "skipped"),
    [(".DS_Store", True), ("._photo.jpg", True), (".hidden.png", True), ("Thumbs.db", True),
     ("THUMBS.DB", True), ("desktop.ini", True), ("ehthumbs.db", True), ("photo.jpg", False),
     ("thumbs.png", False), ("a.DS_Store.png", False)],
)
def test_hidden_and_system_files(name: str, skipped: bool) -> None:
    assert is_hidden_or_system(Path("folder") / name) is skipped


def test_system_folders() -> None:
    for name in ("__MACOSX", "$RECYCLE.BIN", "System Volume Information", "@eaDir"):
        assert is_system_dir(Path(name)), name
    assert not is_system_dir(Path("photos"))


def test_earlier_outputs_by_suffix() -> None:
    assert SUFFIXES == {"denoise": "_denoised", "deblur": "_deblurred", "stereo-sr": "_sr"}
    assert set(SUFFIXES) == set(TASKS)  # keyed by registry task: every task has its suffix
    assert TOOL_SUFFIXES == tuple(SUFFIXES.values())
    assert is_output(Path("a_denoised.png"), "_denoised")
    assert is_output(Path("dir/a_L_sr.jpg"), "_sr")
    assert not is_output(Path("a_denoised_x.png"), "_denoised")
    assert not is_output(Path("a_denoised.png"), None)
    assert not is_output(Path("a_denoised.png"), "")  # --suffix "": nothing is an output by name


# -- stereo views ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("0001_L.png", Side("0001", "left", "short")),
        ("0001_l.png", Side("0001", "left", "short")),
        ("0001_R.jpg", Side("0001", "right", "short")),
        ("x.r.png", Side("x", "right", "short")),
        ("scene-LEFT.tif", Side("scene", "left", "long")),
        ("scene_Right.png", Side("scene", "right", "long")),
        ("a_b_left.png", Side("a_b", "left", "long")),
        ("x_left_R.png", Side("x_left", "right", "short")),  # only the last marker counts
        ("L.png", None),  # a marker needs a key before it
        ("photo_r2.png", None),
        ("photo_lr.png", None),
        ("photoL.png", None),  # a marker needs a separator
        ("ball.png", None),
    ],
)
def test_side_of(name: str, expected: Side | None) -> None:
    assert side_of(Path(name)) == expected


def test_short_and_long_forms_differ() -> None:
    short, long = side_of(Path("a_L.png")), side_of(Path("a_right.png"))
    assert short is not None and long is not None
    assert short.key == long.key and short.form != long.form  # so _L never pairs with _right


@pytest.mark.parametrize(
    ("a", "b", "left", "right"),
    [
        ("lr0.png", "lr1.png", "lr0.png", "lr1.png"),
        ("lr1.png", "lr0.png", "lr0.png", "lr1.png"),  # given in either order
        ("hr0.png", "hr1.png", "hr0.png", "hr1.png"),
        ("view_R.png", "view_L.png", "view_L.png", "view_R.png"),
        ("Left.jpg", "Right.jpg", "Left.jpg", "Right.jpg"),
        ("img_left.png", "img_right.png", "img_left.png", "img_right.png"),
    ],
)
def test_order_scene_views(a: str, b: str, left: str, right: str) -> None:
    assert order_scene_views(Path(a), Path(b)) == (Path(left), Path(right))


@pytest.mark.parametrize(("a", "b"), [("a.png", "b.png"), ("lr0.png", "hr0.png"), ("0010.png", "0011.png"),
                                      ("x_L.png", "y_L.png")])
def test_scene_views_that_cannot_be_told_apart(a: str, b: str) -> None:
    assert order_scene_views(Path(a), Path(b)) is None


# -- output names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt", "mode", "fmt_arg", "expected"),
    [
        ("photo.jpg", "JPEG", "RGB", None, "photo_denoised.jpg"),  # the input's own format
        ("photo.jpg", "JPEG", "RGB", "png", "photo_denoised.png"),  # --format wins
        ("photo.jpg", "JPEG", "RGB", "tiff", "photo_denoised.tif"),
        ("photo.png", "PNG", "RGB", "jpeg", "photo_denoised.jpg"),  # aliases
        ("scan.tif", "TIFF", "RGB", None, "scan_denoised.tif"),
        ("web.webp", "WEBP", "RGB", None, "web_denoised.webp"),
        ("old.bmp", "BMP", "RGB", None, "old_denoised.bmp"),
        ("clip.gif", "GIF", "RGB", None, "clip_denoised.png"),  # not writable: PNG
        ("really_png.jpg", "PNG", "RGB", None, "really_png_denoised.png"),  # content, not extension
        ("noext", "PNG", "RGB", None, "noext_denoised.png"),
        # the input's extension keeps its spelling when the output is in the input's own format
        ("IMG.JPG", "JPEG", "RGB", None, "IMG_denoised.JPG"),
        ("chelsea.tiff", "TIFF", "RGB", None, "chelsea_denoised.tiff"),
        ("shot.jpeg", "JPEG", "RGB", None, "shot_denoised.jpeg"),
        ("SCAN.TIF", "TIFF", "RGB", "tif", "SCAN_denoised.TIF"),  # --format naming the input's own format
        ("Pic.Png", "PNG", "RGB", None, "Pic_denoised.Png"),
        ("IMG.JPG", "JPEG", "RGB", "png", "IMG_denoised.png"),  # another format: its own extension
        ("chelsea.tiff", "TIFF", "RGB", "jpg", "chelsea_denoised.jpg"),
        ("REALLY.JPG", "PNG", "RGB", None, "REALLY_denoised.png"),  # a PNG named .JPG is not kept .JPG
    ],
)
def test_output_name(tmp_path: Path, name: str, fmt: str, mode: str, fmt_arg: str | None, expected: str) -> None:
    src = _save(tmp_path / name, fmt, mode)
    assert output_name(src, "_denoised", fmt_arg) == expected


def test_output_name_of_a_bmp_with_alpha_is_png(tmp_path: Path) -> None:
    import cv2

    src = tmp_path / "alpha.bmp"
    cv2.imwrite(str(src), np.full((6, 8, 4), 100, np.uint8))  # 32-bit BMP
    assert output_name(src, "_x", None) == "alpha_x.png"
    assert output_name(src, "_x", "webp") == "alpha_x.webp"


def test_output_name_of_a_missing_file_is_png(tmp_path: Path) -> None:
    assert output_name(tmp_path / "gone.jpg", "_sr", None) == "gone_sr.png"
    assert output_name(tmp_path / "gone.jpg", "", "jpg") == "gone.jpg"


@pytest.mark.parametrize(
    ("template", "name", "expected"),
    [
        ("{stem}{suffix}", "img.png", "img_denoised.png"),
        ("{stem}_{ext}{suffix}", "img.png", "img_png_denoised.png"),
        ("{stem}_{ext}{suffix}", "IMG.JPG", "IMG_JPG_denoised.png"),
        ("{stem}-{model}", "img.jpg", "img-nafnet-sidd-width32.png"),
        ("clean_{stem}", "img.jpg", "clean_img.png"),
        ("{stem}{{1}}", "img.png", "img{1}.png"),  # a literal brace
        ("{stem}_{ext}", "noext", "noext_.png"),
    ],
)
def test_name_templates(tmp_path: Path, template: str, name: str, expected: str) -> None:
    src = _save(tmp_path / name, "PNG" if name.endswith("png") or "." not in name else "JPEG")
    names = OutputNames(template, suffix="_denoised", model="nafnet-sidd-width32")
    assert output_name(src, "_denoised", "png", names=names) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{stem}{size}", "unknown field {size}"),
        ("{}", "unknown field {}"),
        ("{stem:>10}", "no format spec"),
        ("{stem!r}", "no format spec"),
        ("out/{stem}", "a name, not a path"),
        ("{suffix}", "without {stem}"),
        ("{stem", "brace"),
    ],
)
def test_bad_name_templates_are_usage_errors(template: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        OutputNames(template, suffix="_x")
    with pytest.raises(UsageError):
        OutputSpec(task="denoise", name=template)  # refused before any input is looked at


def test_earlier_outputs_of_a_template_are_recognised() -> None:
    names = OutputNames("{stem}_{ext}{suffix}", suffix="_denoised")
    assert names.made(Path("img_png_denoised.png"))
    assert names.made(Path("img_denoised.JPG"))  # an earlier run's default name, same suffix
    assert not names.made(Path("img.png")) and not names.made(Path("img_deblurred.png"))
    model = OutputNames("{stem}-{model}", suffix="_denoised", model="nafnet-sidd-width32")
    assert model.made(Path("a-nafnet-sidd-width32.jpg")) and not model.made(Path("a-other.jpg"))
    # a template that only repeats the input's name recognises nothing (every input would match)
    assert not OutputNames("{stem}", suffix="").made(Path("anything.png"))
    assert is_output(Path("img_png_denoised.png"), names)
    assert is_output(Path("a_sr.png"), "_sr") and not is_output(Path("a.png"), "")


def test_a_name_template_resolves_a_collision_the_default_cannot(tmp_path: Path) -> None:
    png, jpg = _save(tmp_path / "img.png", "PNG"), _save(tmp_path / "img.jpg", "JPEG")
    groups = [[Source(png, tmp_path)], [Source(jpg, tmp_path)]]
    clash = plan(groups, OutputSpec(task="denoise", fmt="png"))
    assert clash[0].runnable and clash[0].outputs == (tmp_path / "img_denoised.png",)
    assert clash[1].problem is not None and "is also the output of" in clash[1].problem
    assert "--name '{stem}_{ext}{suffix}'" in clash[1].problem  # advice that works
    apart = plan(groups, OutputSpec(task="denoise", fmt="png", name="{stem}_{ext}{suffix}"))
    assert all(j.runnable for j in apart)
    assert [j.outputs[0].name for j in apart] == ["img_png_denoised.png", "img_jpg_denoised.png"]


def test_mirrored(tmp_path: Path) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    assert mirrored(root / "a" / "b" / "x.png", root, out, "x_sr.png") == out / "a" / "b" / "x_sr.png"
    assert mirrored(root / "x.png", root, out, "x_sr.png") == out / "x_sr.png"
    assert mirrored(tmp_path / "elsewhere" / "x.png", root, out, "y.png") == out / "y.png"  # not under root


# -- collisions --------------------------------------------------------------------------------------


def test_output_claims_refuse_an_input_and_a_double_claim(tmp_path: Path) -> None:
    a, b, c = (_save(tmp_path / n, "PNG") for n in ("a.png", "b.png", "c.jpg"))
    claims = OutputClaims({p.resolve() for p in (a, b, c)})
    # writing over an input, its own or another job's
    assert "would overwrite an input" in (claims.problem(a, a) or "")
    assert "would overwrite an input" in (claims.problem(c, b) or "")
    # a free output: fine, and asking does not claim it
    out = tmp_path / "c_denoised.png"
    assert claims.problem(c, out) is None
    assert claims.problem(a, out) is None
    claims.claim(c, out)
    problem = claims.problem(a, tmp_path / "." / "c_denoised.png")  # the same file, spelled otherwise
    assert problem is not None and "also the output of" in problem and str(c) in problem
    assert claims.problem(b, tmp_path / "b_denoised.png") is None


def test_output_claims_see_links_to_an_input(tmp_path: Path) -> None:
    src = _save(tmp_path / "a.png", "PNG")
    claims = OutputClaims(set())  # even when the input set does not list it
    hard = tmp_path / "hard.png"
    os.link(src, hard)
    assert "would overwrite an input" in (claims.problem(src, hard) or "")
    soft = tmp_path / "soft.png"
    soft.symlink_to(src)
    assert "would overwrite an input" in (claims.problem(src, soft) or "")
    assert claims.problem(src, tmp_path / "other.png") is None


def test_same_file(tmp_path: Path) -> None:
    a = _save(tmp_path / "a.png", "PNG")
    b = tmp_path / "b.png"
    b.write_bytes(a.read_bytes())  # equal content, another file
    link = tmp_path / "link.png"
    link.symlink_to(a)
    assert same_file(a, a) and same_file(a, link) and same_file(a, tmp_path / "sub" / ".." / "a.png")
    assert not same_file(a, b)
    assert not same_file(a, tmp_path / "missing.png")

