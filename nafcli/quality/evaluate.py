"""Score restorations against ground truth, the way the authors' benchmarks do. Files in, numbers out.

Two entry points:

* :func:`evaluate_restored` scores images that already exist (any tool's output) against targets;
* :func:`evaluate_model` runs a :class:`~nafcli.inference.restorer.Restorer` on every input first (the whole image
  at once, as the authors' benchmark does: no tiling), then scores; it also scores the input itself
  against the target (bicubic-upscaled for super-resolution), the baseline that says what the model
  added.

Files are paired by name: ``restored/0001.png`` with ``target/0001.png`` (the extension may differ; a
``_denoised`` / ``_deblurred`` / ``_sr`` suffix left by nafcli is ignored when there is no exact match).
Stereo pairs are found as ``nafcli sr DIR`` finds them (:mod:`nafcli.jobs.pairing`): flat files named
``NAME_L`` / ``NAME_R`` (also ``_left``/``_right``, case-insensitive), or one folder per scene holding two
views (``lr0``/``lr1``, ``hr0``/``hr1`` as in the authors' Flickr1024 layout, or ``*_L``/``*_R``). A pair is
scored as the authors' stereo benchmark does: each view alone, then the mean
(:func:`nafcli.quality.metrics.score_stereo`).

Every input must find its target: a benchmark mean over a silently smaller set would be wrong, so a
missing target is an error. Extra targets are reported, not fatal (test sets are often scored in parts).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..imaging.image import Image
from ..imaging.read import read_image
from ..inference.restorer import Restorer
from ..inference.settings import resolve_device
from ..inference.tensors import split_views, tensor_to_floats, views_to_tensor
from ..jobs.names import TOOL_SUFFIXES
from ..jobs.pairing import list_images, pair_folder
from ..weights.hub import Progress
from ..weights.loader import load
from .metrics import Scores, SSIMMode, mean_scores, score, score_stereo


@dataclass(frozen=True)
class Sample:
    """One unit of a benchmark: a mono image, or a stereo pair (two paths, left first)."""

    name: str
    paths: tuple[Path, ...]


@dataclass
class ItemResult:
    """The scores of one sample, and of its input as it is (the baseline; None when outputs were scored)."""

    name: str
    source: tuple[Path, ...]
    target: tuple[Path, ...]
    psnr: float
    ssim: float
    baseline: Scores | None = None


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
    #: the mean score of the inputs themselves against the targets (a model run only)
    baseline: Scores | None = None
    #: how the baseline was made: ``input`` (as it is) or ``bicubic`` (upscaled to the target's size)
    baseline_method: str | None = None


#: progress callback: (done, total, the item just scored)
EvalProgress = Callable[[int, int, ItemResult], None]


# -- discovery and pairing --------------------------------------------------------------------------


def _folder(folder: Path) -> Path:
    if not folder.is_dir():
        raise UsageError(f"{folder}: not a folder")
    return folder


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
    return [Sample(p.stem, (p,)) for p in list_images(_folder(folder))]


def stereo_samples(folder: Path) -> list[Sample]:
    """Stereo pairs in ``folder``, paired as ``nafcli sr DIR`` pairs them (:func:`nafcli.jobs.pairing.
    pair_folder`: ``NAME_L``/``NAME_R`` files, or a folder per scene); a file that pairs with nothing is
    an error here, since a benchmark mean over a silently smaller set would be wrong."""
    pairing = pair_folder(_folder(folder))
    if pairing.unmatched:
        u = pairing.unmatched[0]
        raise UsageError(f"{u.path}: {u.reason}")
    return [Sample(p.key, (p.left, p.right)) for p in pairing.pairs]


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
            for suffix in TOOL_SUFFIXES:
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


def _score_views(restored: list[np.ndarray], targets: list[np.ndarray], *, stereo: bool,
                 ssim_mode: SSIMMode) -> Scores:
    if stereo:
        return score_stereo((restored[0], restored[1]), (targets[0], targets[1]), ssim_mode=ssim_mode)
    return score(restored[0], targets[0], ssim_mode=ssim_mode)


def _score(
    restored: list[np.ndarray], src: Sample, tgt: Sample, *, stereo: bool, ssim_mode: SSIMMode,
    inputs: list[np.ndarray] | None = None,
) -> ItemResult:
    """Score ``restored`` against the sample's targets; with ``inputs``, the inputs too (resized to the
    target's size when the model changes it, bicubic as the SR literature's baseline)."""
    targets = [to_metric_array(read_image(p)) for p in tgt.paths]
    for r, t, p, q in zip(restored, targets, src.paths, tgt.paths, strict=True):
        _check_same(r, t, p, q)
    s = _score_views(restored, targets, stereo=stereo, ssim_mode=ssim_mode)
    baseline = None
    if inputs is not None:
        sized = [_resize_to(i, t) for i, t in zip(inputs, targets, strict=True)]
        baseline = _score_views(sized, targets, stereo=stereo, ssim_mode=ssim_mode)
    return ItemResult(name=tgt.name, source=src.paths, target=tgt.paths, psnr=s.psnr, ssim=s.ssim,
                      baseline=baseline)


def _resize_to(image: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``image`` at ``like``'s size: itself when it already is, else bicubic (OpenCV, as the SR benchmarks'
    bicubic baseline), clamped to the [0, 255] scale."""
    if image.shape[:2] == like.shape[:2]:
        return image
    import cv2

    out = cv2.resize(image, (like.shape[1], like.shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.clip(out.reshape(like.shape[0], like.shape[1], -1), 0.0, 255.0)


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


def model_for_eval(*, model: str | None = None, weights: str | os.PathLike[str] | None = None,
                   task: str | None = None, tlc: bool | None = None, device: str = "auto",
                   progress: Progress | None = None) -> Restorer:
    """The :class:`Restorer` for ``--model`` / ``--weights``, whole-image (no tiling) as the authors'
    benchmark runs. The device is checked before anything is read or downloaded; what the user should
    know about the weights (trained for another task) is in ``restorer.model.warnings``."""
    resolve_device(device)
    loaded = load(task=task, model=model, weights=weights, tlc=tlc, progress=progress)
    return Restorer(loaded, device=device, tile=0)


def restore_for_eval(restorer: Restorer, images: list[Image], *, quantize: bool) -> list[np.ndarray]:
    """Run the model on one image or one stereo pair; the outputs on the [0, 255] scale.

    ``quantize=True`` gives exactly what ``nafcli denoise/deblur/sr`` would write (rounded to the
    image's bit depth); ``False`` scores the network's float output, as the authors' SIDD benchmark does.
    """
    if restorer.model.views != len(images):
        raise UsageError("a stereo model needs stereo pairs (use --task sr), a mono model single images")
    if quantize:
        return [to_metric_array(o) for o in restorer.restore_views(images).images]
    y, _info = restorer.run(views_to_tensor(images))
    return [tensor_to_floats(part, im) for part, im in zip(split_views(y, len(images)), images, strict=True)]


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
    stereo = restorer.model.views == 2
    pairs, unused = pair_samples(
        samples(input_dir, stereo=stereo), samples(target_dir, stereo=stereo), input_dir, target_dir
    )
    items: list[ItemResult] = []
    for i, (src, tgt) in enumerate(pairs, 1):
        images = [read_image(p) for p in src.paths]
        restored = restore_for_eval(restorer, images, quantize=quantize)
        items.append(_score(restored, src, tgt, stereo=stereo, ssim_mode=ssim_mode,
                            inputs=[to_metric_array(im) for im in images]))
        if progress is not None:
            progress(i, len(pairs), items[-1])
    baseline = mean_scores([it.baseline for it in items if it.baseline is not None])
    return EvalResult(items=items, mean=mean_scores([Scores(it.psnr, it.ssim) for it in items]), stereo=stereo,
                      ssim_mode=ssim_mode, quantized=quantize, model=model_name, unused_targets=unused,
                      baseline=baseline, baseline_method="bicubic" if restorer.model.scale != 1 else "input")


def result_dict(result: EvalResult) -> dict:
    """A JSON-ready view (``docs/json.md``): ``inf`` PSNR of identical images becomes the string ``"inf"``;
    ``source`` and ``target`` are a path for a mono image, a list of two for a stereo pair."""

    def num(x: float) -> float | str:
        return "inf" if x == float("inf") else round(x, 6)

    def scores(s: Scores | None) -> dict | None:
        return None if s is None else {"psnr": num(s.psnr), "ssim": num(s.ssim)}

    def paths(ps: tuple[Path, ...]) -> str | list[str]:
        return [str(p) for p in ps] if result.stereo else str(ps[0])

    baseline = scores(result.baseline)
    if baseline is not None:
        baseline["method"] = result.baseline_method
    return {
        "model": result.model,
        "stereo": result.stereo,
        "ssim_mode": result.ssim_mode,
        "quantized": result.quantized,
        "count": len(result.items),
        "mean": scores(result.mean),
        "baseline": baseline,
        "images": [
            {"name": it.name, "source": paths(it.source), "target": paths(it.target), "psnr": num(it.psnr),
             "ssim": num(it.ssim), "baseline": scores(it.baseline)}
            for it in result.items
        ],
        "unused_targets": result.unused_targets,
    }


__all__ = [
    "EvalResult", "ItemResult", "Sample", "evaluate_model", "evaluate_restored", "model_for_eval", "pair_samples",
    "restore_for_eval", "result_dict", "samples",
]
