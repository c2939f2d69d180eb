"""``nafcli check``: prove that weights, networks and pipeline together give the authors' results.

For each registry model that is downloaded and has a published output, run it on the authors' demo input
exactly as their demo does (whole image, no tiling, fp32, rounded to 8 bits) and compare with the output
their own code wrote: a faithful pipeline reproduces it to within rounding, far above :data:`PASS_DB`.
The demo inputs and outputs ship inside the package (``nafcli/data/samples``, MIT, megvii-model).

Nothing here downloads: a model that is not in the cache is reported as such (``nafcli`` fetches weights
on first use elsewhere). Nothing here prints; the CLI renders :class:`CheckResult`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import NafcliError
from ..imaging.read import read_image
from ..inference.restorer import Restorer
from ..weights import hub
from ..weights.loader import load_entry
from ..weights.registry import ModelEntry, data_dir, load_registry
from .metrics import psnr

#: a reproduction of the authors' output must reach this PSNR (dB) on every view
PASS_DB = 40.0

Status = Literal["pass", "fail", "error", "not-downloaded", "not-checkable"]

#: progress callback: called with a model id before it is run
CheckProgress = Callable[[str], None]


@dataclass
class CheckResult:
    """The outcome for one model. ``ok`` is False only for ``fail`` and ``error``."""

    model_id: str
    status: Status
    #: PSNR (dB) against the published output; the mean of the two views for stereo models
    psnr: float | None = None
    #: PSNR of each view (one for mono models)
    views: list[float] = field(default_factory=list)
    message: str = ""
    inputs: tuple[Path, ...] = ()
    outputs: tuple[Path, ...] = ()
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status not in ("fail", "error")

    def as_dict(self) -> dict[str, Any]:
        def num(x: float | None) -> float | str | None:
            if x is None:
                return None
            return "inf" if x == float("inf") else round(x, 4)

        return {
            "id": self.model_id,
            "status": self.status,
            "ok": self.ok,
            "psnr": num(self.psnr),
            "views": [num(v) for v in self.views],
            "threshold": PASS_DB,
            "message": self.message,
            "inputs": [str(p) for p in self.inputs],
            "outputs": [str(p) for p in self.outputs],
            "seconds": round(self.seconds, 3),
        }


def samples_dir() -> Path:
    """The folder of the authors' demo images shipped in the package."""
    return data_dir() / "samples"


def run_check(
    restorer: Restorer,
    inputs: Sequence[Path],
    outputs: Sequence[Path],
    *,
    model_id: str = "",
    threshold: float = PASS_DB,
) -> CheckResult:
    """Run ``restorer`` on the demo input(s) and compare with the published output(s).

    Mono models take one input and one output, stereo models two of each (left, right).
    """
    t0 = time.perf_counter()
    images = [read_image(p) for p in inputs]
    views = restorer.model.views
    if len(images) != views or len(outputs) != views:
        raise NafcliError(f"{model_id}: the model takes {views} view(s): it needs {views} demo input(s) and "
                          f"{views} output(s), not {len(images)} and {len(outputs)}")
    restored = restorer.restore_views(images).images
    views: list[float] = []
    for got, out_path in zip(restored, outputs, strict=True):
        want = read_image(out_path)
        if got.pixels.shape != want.pixels.shape:
            g, w = got.pixels.shape, want.pixels.shape
            return CheckResult(
                model_id, "fail", message=f"output is {g[1]}x{g[0]}x{g[2]} but {out_path.name} is {w[1]}x{w[0]}x{w[2]}",
                inputs=tuple(inputs), outputs=tuple(outputs), seconds=time.perf_counter() - t0,
            )
        views.append(psnr(got.pixels, want.pixels))
    mean = sum(views) / len(views)
    passed = min(views) >= threshold
    message = (
        "matches the authors' output" if passed else f"below {threshold:g} dB: not the authors' result"
    )
    return CheckResult(
        model_id, "pass" if passed else "fail", psnr=mean, views=views, message=message,
        inputs=tuple(inputs), outputs=tuple(outputs), seconds=time.perf_counter() - t0,
    )


# -- the registry side ------------------------------------------------------------------------------


def check_entry(
    entry: ModelEntry,
    *,
    device: str = "auto",
    threshold: float = PASS_DB,
    progress: CheckProgress | None = None,
) -> CheckResult:
    """Check one registry entry (see the module docstring for the outcomes)."""
    inputs, outputs = tuple(entry.demo_inputs), tuple(entry.demo_outputs)
    if not inputs or not outputs:
        return CheckResult(entry.id, "not-checkable", message="the authors published no output for this model")
    t0 = time.perf_counter()
    try:
        if hub.cached_file(entry) is None:
            return CheckResult(entry.id, "not-downloaded", message=f"not downloaded ('nafcli models download "
                               f"{entry.id}')", inputs=inputs, outputs=outputs)
        if progress is not None:
            progress(entry.id)

        for p in (*inputs, *outputs):
            if not Path(p).is_file():
                raise NafcliError(f"{p}: demo file missing from the installation")
        # the same loading path as `nafcli denoise --model ID` (safetensors copy, spec checked), offline
        restorer = Restorer(load_entry(entry, offline=True), device=device, tile=0)
        result = run_check(restorer, inputs, outputs, model_id=entry.id, threshold=threshold)
    except NafcliError as e:
        return CheckResult(entry.id, "error", message=str(e), inputs=inputs, outputs=outputs,
                           seconds=time.perf_counter() - t0)
    return result


def check_models(
    ids: Sequence[str] | None = None,
    *,
    device: str = "auto",
    threshold: float = PASS_DB,
    registry_path: str | os.PathLike[str] | None = None,
    progress: CheckProgress | None = None,
) -> list[CheckResult]:
    """Check the given model ids (default: every registry entry), in order.

    An unknown id raises :class:`~nafcli.errors.UnknownModelError` before anything runs.
    """
    registry = load_registry(registry_path)
    entries = [registry.get(i) for i in ids] if ids else list(registry.entries)
    results = []
    for entry in entries:
        results.append(check_entry(entry, device=device, threshold=threshold, progress=progress))
    return results
