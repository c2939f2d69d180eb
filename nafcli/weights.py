"""From "what the user asked for" to a loaded model: a file, a registry id, or a task's default.

Used by the CLI (``--weights`` / ``--model`` / the task default) and by
:meth:`nafcli.pipeline.Restorer.from_pretrained`. The first load of a registry model reads the verified
``.pth`` and writes a safetensors copy beside nafcli's cache; later loads read that copy (no pickle).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CheckpointError, UsageError

if TYPE_CHECKING:
    from .hub import Progress
    from .model import LoadedModel
    from .registry import ModelEntry


def load_entry(
    entry: ModelEntry,
    *,
    tlc: bool | None = None,
    offline: bool = False,
    progress: Progress | None = None,
) -> LoadedModel:
    """Load a registry model: its safetensors copy when there is one, else the verified file (downloaded
    if needed), whose safetensors copy is then written (best effort: a read-only cache only costs speed)."""
    from . import hub
    from .checkpoint import load_model, save_safetensors

    use_tlc = entry.tlc if tlc is None else tlc
    sha = hub.verified_sha(entry)
    if sha is not None:
        copy = hub.safetensors_path(entry, sha)
        if copy.is_file():
            try:
                return load_model(copy, tlc=use_tlc, expected=entry.spec, model_id=entry.id)
            except CheckpointError:
                copy.unlink(missing_ok=True)  # a damaged copy: fall back to the original
    path = hub.fetch(entry, offline=offline, progress=progress)
    model = load_model(path, tlc=use_tlc, expected=entry.spec, model_id=entry.id)
    sha = hub.verified_sha(entry)
    if sha is not None:
        copy = hub.safetensors_path(entry, sha)
        try:
            copy.parent.mkdir(parents=True, exist_ok=True)
            save_safetensors(model.module.state_dict(), copy)
        except OSError:
            pass
    return model


def resolve(
    *,
    task: str | None = None,
    model: str | None = None,
    weights: str | os.PathLike[str] | None = None,
    tlc: bool | None = None,
    offline: bool = False,
    progress: Progress | None = None,
) -> LoadedModel:
    """The model for a command: ``weights`` (a file) wins, then ``model`` (a registry id), then the task's
    default. A registry model of another task than ``task`` is refused."""
    from .checkpoint import load_model
    from .registry import load_registry

    if weights is not None:
        return load_model(Path(weights), tlc=tlc)
    reg = load_registry()
    if model is not None:
        entry = reg.get(model)
    elif task is not None:
        entry = reg.default_for(task)
    else:
        raise UsageError("name a model (a registry id) or a weights file")
    if task is not None and entry.task != task:
        raise UsageError(f"model {entry.id} is for {entry.task}, not {task} (see 'nafcli models list')")
    return load_entry(entry, tlc=tlc, offline=offline, progress=progress)


def resolve_id_or_path(
    id_or_path: str | os.PathLike[str],
    *,
    task: str | None = None,
    tlc: bool | None = None,
    offline: bool = False,
    progress: Progress | None = None,
) -> LoadedModel:
    """A registry id or a path to a weights file (an existing file wins over an id of the same name)."""
    p = Path(id_or_path)
    if p.exists() or os.sep in str(id_or_path) or p.suffix in (".pth", ".safetensors", ".pt"):
        return resolve(weights=p, tlc=tlc)
    return resolve(task=task, model=str(id_or_path), tlc=tlc, offline=offline, progress=progress)


def import_weights(source: str | os.PathLike[str], *, as_id: str | None = None) -> tuple[ModelEntry, Path]:
    """Copy a local file (e.g. from the authors' Google Drive) into the cache as a registry model.

    The entry is ``as_id``, else the one whose SHA-256 or file name matches. The file must have the
    entry's SHA-256 when the registry knows it; otherwise its tensors must describe the entry's
    architecture and hyperparameters. Returns the entry and the cached copy.
    """
    from . import hub
    from .checkpoint import detect, read_state_dict
    from .errors import HashMismatchError, InconsistentShapesError
    from .registry import load_registry

    src = Path(source)
    if not src.is_file():
        raise CheckpointError(f"{src}: no such file")
    reg = load_registry()
    sha = hub.sha256_file(src)
    if as_id is not None:
        entry = reg.get(as_id)
    else:
        by_hash = [e for e in reg if e.sha256 == sha]
        by_name = [e for e in reg if e.file.lower() == src.name.lower()]
        matches = by_hash or by_name
        if len(matches) != 1:
            raise UsageError(f"{src}: cannot tell which model this is; name it with --as ID")
        entry = matches[0]
    if entry.sha256 is not None:
        if sha != entry.sha256:
            raise HashMismatchError(
                f"{src}: SHA-256 {sha} but {entry.id} must have {entry.sha256}; not imported"
            )
    else:
        spec = detect(read_state_dict(src), source=str(src))
        if spec != entry.spec:
            raise InconsistentShapesError(
                f"{src}: holds {spec.describe()}, but {entry.id} is {entry.spec.describe()}; not imported"
            )
    return entry, hub.import_file(entry, src, sha256=sha)
