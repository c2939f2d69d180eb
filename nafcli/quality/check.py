"""``nafcli check``: prove that weights, networks and pipeline together give the authors' results.

For each registry model that is downloaded and has a published output, run it on the authors' demo input
exactly as their demo does (whole image, no tiling, fp32, rounded to 8 bits) and compare with the output
their own code wrote: a faithful pipeline reproduces it to within rounding, far above :data:`PASS_DB`.
The demo inputs and outputs ship inside the package (``nafcli/data/samples``, MIT, megvii-model).

Nothing here downloads: a model that is not in the cache is reported as such (``nafcli`` fetches weights
on first use elsewhere). A file obtained by hand is checked with :func:`check_file`, as the model it is
named (``-m ID``) or found to be (hash, then architecture, then file name). Nothing here prints; the CLI
renders :class:`CheckResult` and takes its exit code from :func:`exit_code`: a check that checked nothing
proves nothing, so it is not a success.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..archs import ArchSpec, detect
from ..errors import InconsistentShapesError, NafcliError, UnrecognisedWeightsError
from ..imaging.read import read_image
from ..inference.restorer import Restorer
from ..inference.settings import resolve_device
from ..weights import hub
from ..weights.checkpoint import read_state_dict
from ..weights.loader import load, load_entry
from ..weights.registry import ModelEntry, Registry, data_dir, load_registry
from .metrics import psnr

#: a reproduction of the authors' output must reach this PSNR (dB) on every view
PASS_DB = 40.0

Status = Literal["pass", "fail", "error", "not-downloaded", "not-checkable"]

#: progress callback: called with a model id before it is run
CheckProgress = Callable[[str], None]


@dataclass
class CheckResult:
    """The outcome for one model. ``ok`` is False for ``fail`` and ``error``, and for a model the user
    named (``requested``) that could not be checked (not downloaded, or no published output)."""

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
    #: named by the user (an id, or a file with --weights): then it must be checked, not just listed
    requested: bool = False

    @property
    def ok(self) -> bool:
        if self.requested:
            return self.status == "pass"
        return self.status not in ("fail", "error")

    @property
    def checked(self) -> bool:
        """Whether the model ran on the demo input (passed, failed, or failed to run)."""
        return self.status in ("pass", "fail", "error")

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

    An unknown id (:class:`~nafcli.errors.UnknownModelError`) or a device this machine lacks
    (:class:`~nafcli.errors.DeviceError`) raises before anything runs. Named ids are ``requested``.
    """
    resolve_device(device)
    registry = load_registry(registry_path)
    entries = [registry.get(i) for i in ids] if ids else list(registry.entries)
    results = []
    for entry in entries:
        result = check_entry(entry, device=device, threshold=threshold, progress=progress)
        result.requested = bool(ids)
        results.append(result)
    return results


def check_file(
    path: str | os.PathLike[str],
    *,
    model: str | None = None,
    device: str = "auto",
    threshold: float = PASS_DB,
    registry_path: str | os.PathLike[str] | None = None,
    progress: CheckProgress | None = None,
) -> CheckResult:
    """Check a weights file obtained by hand as the registry model ``model``, or the one it is found to be
    (:func:`identify`): its architecture must be the entry's, then it runs on the entry's demo input.

    An unknown ``model`` or device raises first (exit code 2); a file that cannot be read, holds another
    architecture or matches no model raises :class:`~nafcli.errors.NafcliError` with exit code 1.
    """
    resolve_device(device)
    registry = load_registry(registry_path)
    src = Path(path)
    named = registry.get(model) if model is not None else None
    state_dict = read_state_dict(src)
    spec = detect(state_dict, source=str(src))
    entry = named if named is not None else identify(registry, src, spec)
    if spec != entry.spec:
        raise InconsistentShapesError(f"{src}: holds {spec.describe()}, but {entry.id} is {entry.spec.describe()}")
    inputs, outputs = tuple(entry.demo_inputs), tuple(entry.demo_outputs)
    if not inputs or not outputs:
        return CheckResult(entry.id, "not-checkable", requested=True,
                           message=f"{src}: the authors published no output for {entry.id}; "
                           f"{checkable_note(registry, for_file=True)}")
    if progress is not None:
        progress(f"{entry.id} ({src})")
    t0 = time.perf_counter()
    try:
        loaded = load(weights=state_dict, tlc=entry.tlc, task=entry.task)  # the architecture was checked above
        result = run_check(Restorer(loaded, device=device, tile=0), inputs, outputs, model_id=entry.id,
                           threshold=threshold)
    except NafcliError as e:
        return CheckResult(entry.id, "error", message=str(e), inputs=inputs, outputs=outputs, requested=True,
                           seconds=time.perf_counter() - t0)
    result.requested = True
    result.message = f"{src}: {result.message}"
    return result


def identify(registry: Registry, path: Path, spec: ArchSpec) -> ModelEntry:
    """The registry model a file is: by SHA-256 (exact), else the one model of its architecture, else, when
    several share it (the GoPro and REDS width-64 NAFNets), the one of its file name; never a guess between
    models that would then be compared with the wrong output. :class:`~nafcli.errors.
    UnrecognisedWeightsError` when none or several fit."""
    sha = hub.sha256_file(path)
    by_hash = [e for e in registry if e.sha256 == sha]
    if len(by_hash) == 1:
        return by_hash[0]
    same = [e for e in registry if e.spec == spec]
    if len(same) == 1:
        return same[0]
    by_name = [e for e in same if e.file.lower() == path.name.lower()]
    if len(by_name) == 1:
        return by_name[0]
    fits = ", ".join(e.id for e in same)
    raise UnrecognisedWeightsError(
        f"{path}: cannot tell which model this is" + (f" ({fits} fit)" if fits else " (no registry model has "
                                                       "its architecture)") + "; name it with -m ID"
    )


def checkable_note(registry: Registry | None = None, *, for_file: bool = False) -> str:
    """Which models ``nafcli check`` can check, and why only those: the one line said when it checked none.
    ``for_file``: a ``--weights FILE`` was given, so the way out is not to give one."""
    registry = registry if registry is not None else load_registry()
    ids = [e.id for e in registry if e.demo_inputs and e.demo_outputs]
    if not ids:
        return "no model of this registry has a published demo output to compare with"
    only = f"only {', '.join(ids)} can be checked (the authors published demo outputs for these alone)"
    if for_file:
        return f"{only}, so a file of another model cannot be"
    return f"{only}: download one ('nafcli models download {ids[0]}'), or check a file with --weights FILE"


def exit_code(results: Sequence[CheckResult]) -> int:
    """0 when every result is ok and at least one model ran; 1 otherwise (a check of nothing proves
    nothing)."""
    return 0 if results and all(r.ok for r in results) and any(r.checked for r in results) else 1
