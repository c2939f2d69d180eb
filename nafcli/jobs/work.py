"""The work on image jobs: read a job's inputs, restore them with a model, write its outputs atomically.

One kind serves every command: the model says how many views it takes (its descriptor), so a photo goes
in alone, a stereo pair goes in together, and a single image given to a stereo model is fed as both views
(the authors' suggestion for mono input), its left output written. The three stages run on different
threads of :func:`~nafcli.jobs.runner.run_jobs`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..archs import LoadedModel
from ..imaging.image import Image
from ..imaging.read import read_image
from ..imaging.write import write_image
from ..inference.restorer import Progress, Restoration
from .plan import Job
from .runner import JobEvents, JobOutcome, Work


class RestorerLike(Protocol):
    """What the runner needs of a restorer (:class:`~nafcli.inference.restorer.Restorer` is one)."""

    model: LoadedModel

    def restore_views(self, views: Sequence[Image], progress: Progress | None = None) -> Restoration: ...


class ImageWork:
    """Images in, images out: decode (OpenCV pixels, Pillow metadata), restore, encode atomically."""

    def __init__(self, restorer: RestorerLike, *, max_pixels: int | None = None, quality: int | None = None) -> None:
        self.restorer = restorer
        self.max_pixels = max_pixels
        self.quality = quality

    def read(self, job: Job, events: JobEvents) -> list[Image]:
        images = [read_image(src, max_pixels=self.max_pixels) for src in job.inputs]
        for image in images:
            for w in image.info.pop("warnings", []):
                events.warning(job, w)
        return images

    def compute(self, job: Job, images: list[Image], events: JobEvents) -> Restoration:
        views = images * self.restorer.model.views if len(images) == 1 else images
        done = self.restorer.restore_views(views, events.tiles)
        for w in done.info.warnings:
            events.warning(job, w)
        return done

    def write(self, job: Job, images: list[Image], done: Restoration, events: JobEvents) -> JobOutcome:
        for dst, result in zip(job.outputs, done.images, strict=False):
            for w in write_image(dst, result, quality=self.quality):
                events.warning(job, w)
        first, out = images[0], done.images[0]
        details = {**done.info.details(), "input_size": [first.width, first.height],
                   "output_size": [out.width, out.height]}
        megapixels = first.width * first.height * len(images) / 1e6
        return JobOutcome(megapixels=megapixels, details=details, run=done.info)

    def __call__(self, job: Job, events: JobEvents) -> JobOutcome:
        """All three stages in one call (a :class:`~nafcli.jobs.runner.JobFunction`, e.g. on a Ray worker)."""
        images = self.read(job, events)
        return self.write(job, images, self.compute(job, images, events), events)


def restore_job(restorer: RestorerLike, *, max_pixels: int | None = None, quality: int | None = None) -> ImageWork:
    """The work of image jobs for ``restorer``."""
    return ImageWork(restorer, max_pixels=max_pixels, quality=quality)


class ByKind:
    """Several job kinds in one batch (photos and videos from one folder): each stage of a job goes to
    the :class:`~nafcli.jobs.runner.Work` of its ``kind``. The runner sees one job kind, so its reader,
    writer and ordering serve them all."""

    def __init__(self, kinds: Mapping[str, Work]) -> None:
        self.kinds = dict(kinds)

    def _work(self, job: Job) -> Any:
        try:
            return self.kinds[job.kind]
        except KeyError:
            raise AssertionError(f"{job.name}: no work for {job.kind!r} jobs in this batch") from None

    def read(self, job: Job, events: JobEvents) -> Any:
        return self._work(job).read(job, events)

    def compute(self, job: Job, data: Any, events: JobEvents) -> Any:
        return self._work(job).compute(job, data, events)

    def write(self, job: Job, data: Any, result: Any, events: JobEvents) -> JobOutcome:
        return self._work(job).write(job, data, result, events)

    def __call__(self, job: Job, events: JobEvents) -> JobOutcome:
        """All three stages in one call, as :meth:`ImageWork.__call__`."""
        return self._work(job)(job, events)
