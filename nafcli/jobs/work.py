"""The job function: read a job's inputs, restore them with a model, write its outputs atomically.

One function serves every command: the model says how many views it takes (its descriptor), so a photo
goes in alone, a stereo pair goes in together, and a single image given to a stereo model is fed as both
views (the authors' suggestion for mono input), its left output written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..archs import LoadedModel
from ..imaging.image import Image
from ..imaging.read import read_image
from ..imaging.write import write_image
from ..inference.restorer import Progress, Restoration
from .plan import Job
from .runner import Events, JobFunction, JobOutcome


class RestorerLike(Protocol):
    """What the runner needs of a restorer (:class:`~nafcli.inference.restorer.Restorer` is one)."""

    model: LoadedModel

    def restore_views(self, views: Sequence[Image], progress: Progress | None = None) -> Restoration: ...


def restore_job(restorer: RestorerLike, *, max_pixels: int | None = None, quality: int | None = None) -> JobFunction:
    """The job function for a restorer: read, restore (tiles reported), write every output atomically."""

    def work(job: Job, events: Events) -> JobOutcome:
        warnings: list[str] = []

        def warn(message: str) -> None:
            warnings.append(message)
            events.warning(job, message)

        images = [read_image(src, max_pixels=max_pixels) for src in job.inputs]
        for image in images:
            for w in image.info.pop("warnings", []):
                warn(w)
        views = images * restorer.model.views if len(images) == 1 else images
        done = restorer.restore_views(views, events.tiles)
        for w in done.info.warnings:
            warn(w)
        for dst, result in zip(job.outputs, done.images, strict=False):
            for w in write_image(dst, result, quality=quality):
                warn(w)
        first = images[0]
        details = {**done.info.details(), "size": [first.width, first.height]}
        megapixels = first.width * first.height * len(images) / 1e6
        return JobOutcome(megapixels=megapixels, warnings=warnings, details=details, run=done.info)

    return work
