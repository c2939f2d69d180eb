"""Score restorations against ground truth, the way the authors' benchmarks do. Files in, numbers out.

Two entry points:

* :func:`evaluate_restored` scores images that already exist (any tool's output) against targets;
* :func:`evaluate_model` runs a :class:`~nafcli.pipeline.Restorer` on every input first (the whole image
  at once, as the authors' benchmark does: no tiling), then scores.

Files are paired by name: ``restored/0001.png`` with ``target/0001.png`` (the extension may differ; a
``_denoised`` / ``_deblurred`` / ``_sr`` suffix left by nafcli is ignored when there is no exact match).
Stereo pairs are found either as flat files named ``NAME_L`` / ``NAME_R`` (also ``_left``/``_right``,
``-l``/``-r``, case-insensitive) or as one folder per scene holding two views (``lr0``/``lr1``,
``hr0``/``hr1`` as in the authors' Flickr1024 layout, or ``*_L``/``*_R``). A pair is scored as the authors'
stereo benchmark does: each view alone, then the mean (:func:`nafcli.metrics.score_stereo`).

Every input must find its target: a benchmark mean over a silently smaller set would be wrong, so a
missing target is an error. Extra targets are reported, not fatal (test sets are often scored in parts).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import UsageError
from .imageio import Image, read_image
from .metrics import Scores, SSIMMode, mean_scores, score, score_stereo

if TYPE_CHECKING:
    from .pipeline import Restorer

#: image files considered in a folder
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
#: suffixes nafcli's own commands add to output names
_TOOL_SUFFIXES = ("_denoised", "_deblurred", "_sr")

_FLAT_VIEW = re.compile(r"^(?P<scene>.+?)[_\-.](?P<view>l|r|left|right)$", re.IGNORECASE)
_LEFT = re.compile(r"(?:^|[_\-.a-z])(?:l|left|0)$", re.IGNORECASE)
_RIGHT = re.compile(r"(?:^|[_\-.a-z])(?:r|right|1)$", re.IGNORECASE)


@dataclass(frozen=True)
class Sample:
    """One unit of a benchmark: a mono image, or a stereo pair (two paths, left first)."""

    name: str
    paths: tuple[Path, ...]


@dataclass
class ItemResult:
    """The scores of one sample."""

    name: str
    source: tuple[Path, ...]
    target: tuple[Path, ...]
    psnr: float
    ssim: float


@dataclass
class EvalResult:
    """Per-sample scores and their mean (the figure papers report)."""

    items: list[ItemResult]
    mean: Scores
    stereo: bool
    ssim_mode: str
    quantized: bool
    model: str | None = None
    unused_targets: list[str] = field(default_factory=list)


#: progress callback: (done, total, the item just scored)
EvalProgress = Callable[[int, int, ItemResult], None]


# -- discovery and pairing --------------------------------------------------------------------------


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UsageError(f"{folder}: not a folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _by_name(samples: list[Sample], folder: Path) -> dict[str, Sample]:
    out: dict[str, Sample] = {}
    for s in samples:
        if s.name in out:
            raise UsageError(
                f"{folder}: two files for {s.name!r} ({out[s.name].paths[0].name}, {s.paths[0].name}); "
                "pairing by name needs one"
            )
        out[s.name] = s
    return out


def mono_samples(folder: Path) -> list[Sample]:
    """Every image in ``folder`` (not recursive), named by its stem."""
    return [Sample(p.stem, (p,)) for p in _images(folder)]


def _order_views(paths: list[Path], where: Path) -> tuple[Path, Path]:
    if len(paths) != 2:
        raise UsageError(f"{where}: a stereo scene folder needs exactly two images, found {len(paths)}")
    a, b = paths
    if _LEFT.search(a.stem) and _RIGHT.search(b.stem):
        return a, b
    if _LEFT.search(b.stem) and _RIGHT.search(a.stem):
        return b, a
    raise UsageError(f"{where}: cannot tell the left view from the right ({a.name}, {b.name})")


def stereo_samples(folder: Path) -> list[Sample]:
    """Stereo pairs in ``folder``: flat ``NAME_L``/``NAME_R`` files, or one sub-folder per scene."""
    if not folder.is_dir():
        raise UsageError(f"{folder}: not a folder")
    scenes = sorted(p for p in folder.iterdir() if p.is_dir())
    samples = [Sample(d.name, _order_views(_images(d), d)) for d in scenes if _images(d)]
    views: dict[str, dict[str, Path]] = {}
    for p in _images(folder):
        m = _FLAT_VIEW.match(p.stem)
        if m is None:
            raise UsageError(f"{p}: not a stereo view (expected NAME_L / NAME_R, or a folder per scene)")
        side = "L" if m["view"].lower() in ("l", "left") else "R"
        if side in views.setdefault(m["scene"], {}):
            raise UsageError(f"{p}: a second {side} view for {m['scene']!r}")
        views[m["scene"]][side] = p
    for scene, pair in sorted(views.items()):
        if set(pair) != {"L", "R"}:
            missing = "right" if "L" in pair else "left"
            raise UsageError(f"{folder}: {scene!r} has no {missing} view")
        samples.append(Sample(scene, (pair["L"], pair["R"])))
    return samples


def samples(folder: Path, *, stereo: bool) -> list[Sample]:
    return stereo_samples(folder) if stereo else mono_samples(folder)


def pair_samples(
    sources: list[Sample], targets: list[Sample], source_dir: Path, target_dir: Path
) -> tuple[list[tuple[Sample, Sample]], list[str]]:
    """Match sources with targets by name; returns the pairs and the names of unused targets."""
    by_target = _by_name(targets, target_dir)
    _by_name(sources, source_dir)
    pairs: list[tuple[Sample, Sample]] = []
    missing: list[str] = []
    for s in sources:
        t = by_target.get(s.name)
        if t is None:
            for suffix in _TOOL_SUFFIXES:
                if s.name.endswith(suffix) and s.name[: -len(suffix)] in by_target:
                    t = by_target[s.name[: -len(suffix)]]
                    break
        if t is None:
            missing.append(s.name)
        else:
            pairs.append((s, t))
    if missing:
        raise UsageError(
            f"{target_dir}: no target for {missing[0]!r}"
            + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
            + " (files are paired by name)"
        )
    if not pairs:
        raise UsageError(f"{source_dir}: no images to evaluate")
    used = {t.name for _, t in pairs}
    return pairs, sorted(set(by_target) - used)


# -- scoring ----------------------------------------------------------------------------------------


def to_metric_array(image: Image) -> np.ndarray:
    """Pixels on the [0, 255] scale as float64 (16-bit images are rescaled); alpha is not scored."""
    px = image.pixels.astype(np.float64)
    if image.max_value != 255:
        px *= 255.0 / image.max_value
    return px


def _check_same(restored: np.ndarray, target: np.ndarray, src: Path, tgt: Path) -> None:
    if restored.shape != target.shape:
        h, w, c = restored.shape
        th, tw, tc = target.shape
        raise UsageError(f"{src}: is {w}x{h}x{c} but its target {tgt} is {tw}x{th}x{tc}")


def _score(
    restored: list[np.ndarray], src: Sample, tgt: Sample, *, stereo: bool, ssim_mode: SSIMMode
) -> ItemResult:
    targets = [to_metric_array(read_image(p)) for p in tgt.paths]
    for r, t, p, q in zip(restored, targets, src.paths, tgt.paths, strict=True):
        _check_same(r, t, p, q)
    if stereo:
        s = score_stereo((restored[0], restored[1]), (targets[0], targets[1]), ssim_mode=ssim_mode)
    else:
        s = score(restored[0], targets[0], ssim_mode=ssim_mode)
    return ItemResult(name=tgt.name, source=src.paths, target=tgt.paths, psnr=s.psnr, ssim=s.ssim)


def evaluate_restored(
    restored_dir: Path,
    target_dir: Path,
    *,
    stereo: bool = False,
    ssim_mode: SSIMMode = "wang",
    progress: EvalProgress | None = None,
) -> EvalResult:
    """Score the images in ``restored_dir`` against the same-named ones in ``target_dir``."""
    pairs, unused = pair_samples(
        samples(restored_dir, stereo=stereo), samples(target_dir, stereo=stereo), restored_dir, target_dir
    )
    items: list[ItemResult] = []
    for i, (src, tgt) in enumerate(pairs, 1):
        restored = [to_metric_array(read_image(p)) for p in src.paths]
        items.append(_score(restored, src, tgt, stereo=stereo, ssim_mode=ssim_mode))
        if progress is not None:
            progress(i, len(pairs), items[-1])
    return EvalResult(items=items, mean=mean_scores([Scores(it.psnr, it.ssim) for it in items]), stereo=stereo,
                      ssim_mode=ssim_mode, quantized=True, unused_targets=unused)


def _tensor(image: Image):
    """RGB float32 in [0, 1], 1 x 3 x H x W (gray repeated), as the pipeline feeds the network."""
    import torch

    px = image.pixels.astype(np.float32) / float(image.max_value)
    t = torch.from_numpy(np.ascontiguousarray(px.transpose(2, 0, 1)))[None]
    return t.expand(-1, 3, -1, -1).contiguous() if t.shape[1] == 1 else t


def _float_output(y, like: Image) -> np.ndarray:
    """Network output (1 x 3 x H x W in [0, 1]) on the [0, 255] scale, not rounded."""
    arr = y[0].double().numpy().transpose(1, 2, 0) * 255.0
    return arr.mean(axis=2, keepdims=True) if like.is_gray else arr


def restore_for_eval(restorer: Restorer, images: list[Image], *, quantize: bool) -> list[np.ndarray]:
    """Run the model on one image or one stereo pair; the outputs on the [0, 255] scale.

    ``quantize=True`` gives exactly what ``nafcli denoise/deblur/sr`` would write (rounded to the
    image's bit depth); ``False`` scores the network's float output, as the authors' SIDD benchmark does.
    """
    import torch

    stereo = restorer.model.stereo
    if stereo != (len(images) == 2):
        raise UsageError("a stereo model needs stereo pairs (use --task sr), a mono model single images")
    if quantize:
        if stereo:
            out = list(restorer.restore_image_pair(images[0], images[1]))
        else:
            out = [restorer.restore_image(images[0])]
        return [to_metric_array(o) for o in out]
    x = torch.cat([_tensor(im) for im in images], dim=1)
    y = restorer.run_tensor(x)
    return [_float_output(y[:, 3 * i: 3 * i + 3], im) for i, im in enumerate(images)]


def evaluate_model(
    restorer: Restorer,
    input_dir: Path,
    target_dir: Path,
    *,
    ssim_mode: SSIMMode = "wang",
    quantize: bool = True,
    model_name: str | None = None,
    progress: EvalProgress | None = None,
) -> EvalResult:
    """Restore every input of ``input_dir`` with ``restorer`` and score it against ``target_dir``."""
    stereo = bool(restorer.model.stereo)
    pairs, unused = pair_samples(
        samples(input_dir, stereo=stereo), samples(target_dir, stereo=stereo), input_dir, target_dir
    )
    items: list[ItemResult] = []
    for i, (src, tgt) in enumerate(pairs, 1):
        images = [read_image(p) for p in src.paths]
        restored = restore_for_eval(restorer, images, quantize=quantize)
        items.append(_score(restored, src, tgt, stereo=stereo, ssim_mode=ssim_mode))
        if progress is not None:
            progress(i, len(pairs), items[-1])
    return EvalResult(items=items, mean=mean_scores([Scores(it.psnr, it.ssim) for it in items]), stereo=stereo,
                      ssim_mode=ssim_mode, quantized=quantize, model=model_name, unused_targets=unused)


def result_dict(result: EvalResult) -> dict:
    """A JSON-ready view (``inf`` PSNR of identical images becomes the string ``"inf"``)."""

    def num(x: float) -> float | str:
        return "inf" if x == float("inf") else round(x, 6)

    return {
        "model": result.model,
        "stereo": result.stereo,
        "ssim_mode": result.ssim_mode,
        "quantized": result.quantized,
        "count": len(result.items),
        "mean": {"psnr": num(result.mean.psnr), "ssim": num(result.mean.ssim)},
        "images": [
            {"name": it.name, "source": [str(p) for p in it.source], "target": [str(p) for p in it.target],
             "psnr": num(it.psnr), "ssim": num(it.ssim)}
            for it in result.items
        ],
        "unused_targets": result.unused_targets,
    }


__all__ = [
    "EvalResult", "ItemResult", "Sample", "evaluate_model", "evaluate_restored", "pair_samples",
    "restore_for_eval", "result_dict", "samples",
]
