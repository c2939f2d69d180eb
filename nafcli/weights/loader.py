"""The one way to get a model: :func:`load`, used by every command, the Python API, eval, check and bench.

From "what the user asked for" to a loaded model: a weights file (``weights``), a registry id (``model``),
the task's default, or random weights of an official architecture (``pretrained=False``, for benchmarks).
The first load of a registry model reads the verified ``.pth`` and writes a safetensors copy in nafcli's
cache; later loads read that copy (no pickle).

The TLC setting is decided here and nowhere else (:func:`resolve_tlc`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import archs
from ..archs import ArchSpec, LoadedModel, detect
from ..errors import (
    CacheError,
    CheckpointError,
    HashMismatchError,
    InconsistentShapesError,
    NafcliError,
    UnrecognisedWeightsError,
    UsageError,
    WeightsNotAvailableError,
)
from . import hub
from .checkpoint import (
    build_model,
    check_weights_file,
    peek_state_dict,
    read_state_dict,
    save_safetensors,
    unwrap_state_dict,
)
from .hub import Progress
from .registry import TASK_TLC, ModelEntry, load_registry

#: the command that runs each task, for messages that point the user to the right one
_COMMANDS = {"denoise": "nafcli denoise", "deblur": "nafcli deblur", "stereo-sr": "nafcli sr"}


def resolve_tlc(tlc: bool | None, *, spec: ArchSpec, entry: ModelEntry | None = None, task: str | None = None) -> bool:
    """Whether TLC is on: the caller's choice, else the registry entry's (the authors' test setting), else
    the task's (:data:`~nafcli.weights.registry.TASK_TLC`), else that of the architecture's first task."""
    if tlc is not None:
        return tlc
    if entry is not None:
        return entry.tlc
    return TASK_TLC[task or archs.architecture_of(spec).tasks[0]]


def load(
    *,
    task: str | None = None,
    model: str | None = None,
    weights: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    config: tuple[str, Mapping[str, Any]] | None = None,
    tlc: bool | None = None,
    scale: int | None = None,
    offline: bool = False,
    pretrained: bool = True,
    seed: int = 0,
    progress: Progress | None = None,
) -> LoadedModel:
    """The model for a command or an API call.

    Exactly one source, or none for the task's default: ``weights`` (a file, or a state dict already in
    memory; the architecture is detected),
    ``model`` (a registry id) or ``config`` (``(arch, hyperparameters)``, random weights). ``task`` refuses a
    model trained for another task; ``scale`` picks the default of that scale and refuses a model of
    another. ``pretrained=False`` gives random weights of the registry model's architecture (benchmarks,
    like timm's ``create_model(name, pretrained=False)``). Downloads report through ``progress``.
    """
    given = [name for name, v in (("--model", model), ("--weights", weights), ("--arch-config", config))
             if v is not None]
    if len(given) > 1:
        raise UsageError(f"give only one of {', '.join(given)}")
    if weights is not None:
        if isinstance(weights, Mapping):
            source, state_dict = "state dict", unwrap_state_dict(weights, source="state dict")
        else:
            source, state_dict = str(weights), read_state_dict(weights)
        spec = detect(state_dict, source=source)
        _check_task(spec, task, source)
        _check_scale(spec.scale, scale, source)
        use_tlc = resolve_tlc(tlc, spec=spec, task=task)
        loaded = build_model(state_dict, source=source, tlc=use_tlc, task=task)
        fit = task_fit_warning(spec, task, source)
        if fit is not None:
            loaded.warnings.append(fit)
        return loaded
    if config is not None:
        arch, hyper = config
        try:
            spec = archs.spec_from_config(arch, hyper)
        except ValueError as e:
            raise UsageError(f"--arch-config: {e}") from None
        _check_task(spec, task, spec.describe())
        return _random(spec, tlc=resolve_tlc(tlc, spec=spec, task=task), source=spec.describe(), seed=seed, task=task)
    entry = resolve_entry(task=task, model=model, scale=scale)
    if not pretrained:
        use_tlc = resolve_tlc(tlc, spec=entry.spec, entry=entry)
        return _random(entry.spec, tlc=use_tlc, source=entry.id, seed=seed, task=entry.task, model_id=entry.id)
    return load_entry(entry, tlc=tlc, offline=offline, progress=progress)


def resolve_entry(*, task: str | None = None, model: str | None = None, scale: int | None = None) -> ModelEntry:
    """The registry entry for ``model`` (or the task's default of that scale), checked against the task
    and the scale, without loading anything."""
    reg = load_registry()
    if model is not None:
        entry = reg.get(model)
    elif task is not None:
        entry = reg.default_for(task, scale=scale)
    else:
        raise UsageError("name a model (a registry id) or a weights file")
    if task is not None and entry.task != task:
        raise UsageError(f"model {entry.id} is for {entry.task}, not {task} (see 'nafcli models list')")
    _check_scale(entry.scale, scale, entry.id)
    return entry


def describe_choice(*, task: str | None = None, model: str | None = None,
                    weights: str | os.PathLike[str] | Mapping[str, Any] | None = None, scale: int | None = None) -> str:
    """The name of the model :func:`load` would give (the weights file, or the registry id), checked
    without loading: an unknown id, or a model of another task or scale, fails here, before any work."""
    if weights is not None:
        if model is not None:
            raise UsageError("give only one of --model, --weights")
        return "state dict" if isinstance(weights, Mapping) else str(weights)
    return resolve_entry(task=task, model=model, scale=scale).id


@dataclass(frozen=True)
class Choice:
    """What :func:`check_choice` found: the model's name, its registry entry (None for a weights file or a
    state dict) and its architecture (None when it could not be seen without loading the file)."""

    label: str
    entry: ModelEntry | None = None
    spec: ArchSpec | None = None


def check_choice(*, task: str | None = None, model: str | None = None,
                 weights: str | os.PathLike[str] | Mapping[str, Any] | None = None, scale: int | None = None,
                 offline: bool = False) -> Choice:
    """Everything about the model that can be known without loading it, checked before any work: one
    source, the registry id, its task and scale (:func:`describe_choice`), and that the weights can be had:
    a registry model is cached, or can be downloaded (on the hub, and not offline); a weights file exists
    and starts like a checkpoint, and the architecture its key names and shapes describe
    (:func:`~nafcli.weights.checkpoint.peek_state_dict`: no tensor is read) serves the task at that scale.
    Nothing is hashed and no tensor is loaded."""
    label = describe_choice(task=task, model=model, weights=weights, scale=scale)
    if weights is not None:
        if isinstance(weights, Mapping):
            state_dict: Mapping[str, Any] | None = unwrap_state_dict(weights, source="state dict")
        else:
            check_weights_file(weights)
            state_dict = peek_state_dict(weights)
        if state_dict is None:
            return Choice(label)
        spec = detect(state_dict, source=label)
        _check_task(spec, task, label)
        _check_scale(spec.scale, scale, label)
        return Choice(label, spec=spec)
    entry = resolve_entry(task=task, model=model, scale=scale)
    hub.check_obtainable(entry, offline=offline)
    return Choice(label, entry, entry.spec)


def _layout(spec: ArchSpec) -> dict[str, Any]:
    """The hyperparameters but the width: what a training recipe fixes (the depth per level), so that a
    file of another width still shows which official model it was made like."""
    return {k: v for k, v in spec.config().items() if k != "width"}


def task_fit_warning(spec: ArchSpec, task: str | None, source: str) -> str | None:
    """One line when the registry says that weights of this architecture were trained for another task
    (NAFNet's SIDD layout for deblurring, its GoPro/REDS layout for denoising), else None.

    The file's spec is compared with the registry entries' specs, then with their layouts (all but the
    width): when every match serves other tasks, the weights fit the task only by architecture. The file
    is not hashed: the layout already tells every official model's task, and hashing hundreds of MB for a
    warning would slow every ``--weights`` run.
    """
    if task is None:
        return None
    try:
        entries = list(load_registry())
    except NafcliError:
        return None  # a broken registry is reported where it is needed, not by a warning
    same = [e for e in entries if e.spec == spec] or [
        e for e in entries if e.arch == spec.arch and _layout(e.spec) == _layout(spec)
    ]
    tasks = sorted({e.task for e in same})
    if not same or task in tasks:
        return None
    hint = _COMMANDS.get(tasks[0])
    return (f"{source}: {spec.describe()} is laid out as {same[0].id}, trained for {' / '.join(tasks)}, not "
            f"{task}; expect a poor result" + (f" (for {tasks[0]}: '{hint}')" if hint else ""))


def _check_task(spec: ArchSpec, task: str | None, source: str) -> None:
    tasks = archs.architecture_of(spec).tasks
    if task is not None and task not in tasks:
        hint = _COMMANDS.get(tasks[0], "")
        raise UsageError(f"{source}: holds {spec.describe()}, a {' / '.join(tasks)} model, not for {task}"
                         + (f"; use '{hint}'" if hint else ""))


def _check_scale(have: int, want: int | None, source: str) -> None:
    if want is not None and have != want:
        raise UsageError(f"{source} is a x{have} model but --scale {want} was given")


def _random(spec: ArchSpec, *, tlc: bool, source: str, seed: int, task: str | None,
            model_id: str | None = None) -> LoadedModel:
    from ..archs.state_dict import describe, random_weights

    return describe(random_weights(spec, tlc=tlc, seed=seed), spec, tlc=tlc, source=f"{source} (random weights)",
                    model_id=model_id, task=task)


def load_entry(
    entry: ModelEntry,
    *,
    tlc: bool | None = None,
    offline: bool = False,
    progress: Progress | None = None,
) -> LoadedModel:
    """Load a registry model: its safetensors copy when there is one, else the verified file (downloaded
    if needed), whose safetensors copy is then written (best effort: a read-only cache only costs speed)."""
    use_tlc = resolve_tlc(tlc, spec=entry.spec, entry=entry)
    sha = hub.verified_sha(entry)
    if sha is not None:
        copy = hub.safetensors_path(entry, sha)
        if copy.is_file():
            try:
                return _from_file(copy, entry, use_tlc)
            except CheckpointError:
                copy.unlink(missing_ok=True)  # a damaged copy: fall back to the original
    try:
        path = hub.fetch(entry, offline=offline, progress=progress)
    except (WeightsNotAvailableError, CacheError) as e:
        # the hub's ways out hold for every command; this one for those that take a weights file
        raise type(e)(f"{e}, or pass --weights FILE") from None
    model = _from_file(path, entry, use_tlc)
    sha = hub.verified_sha(entry)
    if sha is not None:
        copy = hub.safetensors_path(entry, sha)
        try:
            copy.parent.mkdir(parents=True, exist_ok=True)
            save_safetensors(model.module.state_dict(), copy)
        except OSError:
            pass
    return model


def _from_file(path: Path, entry: ModelEntry, tlc: bool) -> LoadedModel:
    return build_model(read_state_dict(path), source=str(path), tlc=tlc, expected=entry.spec,
                       model_id=entry.id, task=entry.task)


def looks_like_path(text: str | os.PathLike[str]) -> bool:
    """Whether ``text`` names a weights file rather than a registry id (an existing file wins)."""
    p = Path(text)
    return p.exists() or os.sep in str(text) or p.suffix in (".pth", ".safetensors", ".pt")


def _by_architecture(src: Path, spec: ArchSpec, reg: Any) -> list[ModelEntry]:
    """The entries a file of architecture ``spec`` can be: those of that architecture whose hash is not
    known (a file with a known hash was matched by it). :class:`UnrecognisedWeightsError` (exit 1) saying what the file holds
    when none or several are, with the ids to choose from."""
    same = [e for e in reg if e.spec == spec]
    candidates = [e for e in same if e.sha256 is None]
    if len(candidates) == 1:
        return candidates
    what = f"{src}: holds {spec.describe()}"
    if len(candidates) > 1:
        ids = ", ".join(e.id for e in candidates)
        raise UnrecognisedWeightsError(f"{what}, the architecture of {ids}; name it with --as ID")
    use = "pass the file itself with --weights to denoise, deblur or sr"
    if same:
        ids = ", ".join(e.id for e in same)
        raise UnrecognisedWeightsError(f"{what}, the architecture of {ids}, but its SHA-256 is that of none of their files; "
                         f"not imported ({use})")
    raise UnrecognisedWeightsError(f"{what}, which is no registry model ('nafcli models list'); not imported ({use})")


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_weights` did: the entry, its cached copy, and ``status``: ``imported``,
    ``unchanged`` (the same file was imported before; nothing was rewritten) or ``replaced`` (another file
    had been imported as this model)."""

    entry: ModelEntry
    path: Path
    status: str

    def describe(self, source: str | os.PathLike[str]) -> str:
        if self.status == "unchanged":
            return f"{source} is already imported as {self.entry.id} ({self.path}); nothing rewritten"
        if self.status == "replaced":
            return f"imported {source} as {self.entry.id}, replacing the file imported before"
        return f"imported {source} as {self.entry.id}"


def import_weights(source: str | os.PathLike[str], *, as_id: str | None = None) -> ImportResult:
    """Copy a local file (e.g. from the authors' Google Drive) into the cache as a registry model.

    The entry is ``as_id``, else the one the file is, whatever its name: the entry with its SHA-256, else
    the entry of its file name, else the one entry without a known hash whose architecture and
    hyperparameters its tensors describe (``nafssr-t-x4.pth`` as much as ``NAFSSR-T_4x.pth``). The file
    must have the entry's SHA-256 when the registry knows it; otherwise its tensors must describe the
    entry's architecture. Importing the same file again rewrites nothing and says so.
    A refused file is exit code 1 (the file failed); an unknown ``as_id`` is 2.
    """
    src = Path(source)
    if not src.is_file():
        raise CheckpointError(f"{src}: no such file")
    reg = load_registry()
    sha = hub.sha256_file(src)
    spec = None
    if as_id is not None:
        entry = reg.get(as_id)
    else:
        matches = [e for e in reg if e.sha256 == sha] or [e for e in reg if e.file.lower() == src.name.lower()]
        if not matches:
            spec = detect(read_state_dict(src), source=str(src))
            matches = _by_architecture(src, spec, reg)
        if len(matches) != 1:
            raise UnrecognisedWeightsError(f"{src}: cannot tell which model this is; name it with --as ID")
        entry = matches[0]
    if entry.sha256 is not None:
        if sha != entry.sha256:
            raise HashMismatchError(
                f"{src}: SHA-256 {sha} but {entry.id} must have {entry.sha256}; not imported"
            )
    else:
        spec = spec or detect(read_state_dict(src), source=str(src))
        if spec != entry.spec:
            raise InconsistentShapesError(
                f"{src}: holds {spec.describe()}, but {entry.id} is {entry.spec.describe()}; not imported"
            )
    same = hub.already_imported(entry, sha)
    if same is not None:
        return ImportResult(entry, same, "unchanged")
    before = hub.imported_path(entry).is_file()
    return ImportResult(entry, hub.import_file(entry, src, sha256=sha), "replaced" if before else "imported")
