"""The weights cache: find, download (through :mod:`.hub_client`, the only importer of huggingface_hub),
verify, import and remove.

* Downloads go through ``hf_hub_download`` with the entry's repo type and pinned revision and our library
  name/version, into the standard Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE`` honoured), so files are
  shared with every other tool that uses that cache (timm's ``_hub.py`` does the same).
* Every file is hashed (SHA-256) before its first use. A verified file gets a small marker (path, size,
  mtime, hash) in nafcli's own cache folder, so later runs do not re-hash hundreds of MB; a file whose
  size or mtime changed is hashed again. A mismatch raises :class:`HashMismatchError` naming both hashes and
  the file is not used (a downloaded one is deleted, so the next run fetches it afresh).
* The cache is shared: several registry entries may name one hub file (a mirror's registry, an entry with a
  stale hash), and the hub stores a content once for every revision and name that has it (one blob, many
  snapshot links). A refused file is therefore deleted only when it is nobody's: not when another entry on
  the same file has its hash (the refusing entry is the wrong one), and its blob not while another
  snapshot link still points to it. ``models remove`` keeps a file another entry uses, for the same reason.
* nafcli's own folder (``NAFCLI_CACHE``, default ``$HF_HOME/nafcli``) holds the markers, imported files
  (``imported/<id>/<file>``) and the safetensors copies written after the first verified load
  (``safetensors/<id>-<sha>.safetensors``), so later loads read no pickle.
* Offline (``offline=True`` or ``HF_HUB_OFFLINE=1``): cache only, with an error that says what to do.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CacheError, HashMismatchError, NafcliError, WeightsNotAvailableError
from .hub_client import Progress, download
from .registry import ModelEntry, load_registry

_TRUE = ("1", "true", "yes", "on")


# --- where things are ------------------------------------------------------------------------------


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder, as huggingface_hub resolves it (HF_HUB_CACHE, HF_HOME, …)."""
    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if env:
        return Path(os.path.expandvars(env)).expanduser()
    return hf_home() / "hub"


def hf_home() -> Path:
    env = os.environ.get("HF_HOME")
    if env:
        return Path(os.path.expandvars(env)).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(xdg).expanduser() / "huggingface"


def nafcli_cache() -> Path:
    """nafcli's own folder: markers, imported files, safetensors copies."""
    env = os.environ.get("NAFCLI_CACHE")
    return Path(env).expanduser() if env else hf_home() / "nafcli"


def offline_mode(offline: bool = False) -> bool:
    return offline or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def hub_cache_path(entry: ModelEntry) -> Path | None:
    """Where ``hf_hub_download`` puts the entry's file (its snapshot link), whether present or not."""
    if not entry.on_hub:
        return None
    folder = f"{entry.repo_type}s--{entry.repo_id.replace('/', '--')}"  # type: ignore[union-attr]
    return hf_hub_cache() / folder / "snapshots" / str(entry.revision) / entry.file


def imported_path(entry: ModelEntry) -> Path:
    return nafcli_cache() / "imported" / entry.id / Path(entry.file).name


def _marker_path(entry: ModelEntry) -> Path:
    return nafcli_cache() / "verified" / f"{entry.id}.json"


def safetensors_path(entry: ModelEntry, sha256: str) -> Path:
    return nafcli_cache() / "safetensors" / f"{entry.id}-{sha256[:16]}.safetensors"


def present_file(entry: ModelEntry) -> Path | None:
    """The entry's file if it is in the cache (hub download or import), without hashing it."""
    for p in (hub_cache_path(entry), imported_path(entry)):
        if p is not None and p.is_file():
            return p
    return None


# --- hashing and markers ---------------------------------------------------------------------------


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    """Hex SHA-256 of a file, read in 4 MiB chunks."""
    h = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as f:
        while chunk := f.read(4 << 20):
            h.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    return h.hexdigest()


def _stamp(path: Path) -> dict[str, object]:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _read_marker(entry: ModelEntry, path: Path) -> str | None:
    """The recorded hash if ``path`` is unchanged since it was verified, else None."""
    try:
        data = json.loads(_marker_path(entry).read_text())
        stamp = _stamp(path)
    except (OSError, ValueError):
        return None
    if all(data.get(k) == v for k, v in stamp.items()):
        sha = data.get("sha256")
        if isinstance(sha, str) and (entry.sha256 is None or sha == entry.sha256):
            return sha
    return None


def _write_marker(entry: ModelEntry, path: Path, sha: str) -> None:
    """Best effort: a cache we cannot write only costs a re-hash next time."""
    marker = _marker_path(entry)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        tmp = marker.with_name(f".{marker.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**_stamp(path), "sha256": sha, "id": entry.id}))
        os.replace(tmp, marker)
    except OSError:
        pass


def verify_file(
    entry: ModelEntry, path: Path, *, force: bool = False, progress: Progress | None = None
) -> str:
    """Check ``path`` against the entry's SHA-256 (skipped when a marker says it was checked and the file is
    unchanged, unless ``force``). Returns the file's hash; :class:`HashMismatchError` on a mismatch."""
    if not force:
        known = _read_marker(entry, path)
        if known is not None:
            return known
    sha = sha256_file(path, progress)
    if entry.sha256 is not None and sha != entry.sha256:
        raise HashMismatchError(
            f"{path}: SHA-256 {sha} but {entry.id} must have {entry.sha256}; the file was not used", actual=sha
        )
    _write_marker(entry, path, sha)
    return sha


def cached_file(entry: ModelEntry, *, progress: Progress | None = None) -> Path | None:
    """A verified copy of the entry's file in the cache, or None when there is none.

    A cached download that fails the check is deleted (the next :func:`fetch` downloads it again) and the
    :class:`HashMismatchError` is raised, so a bad file is never used silently.
    """
    path = present_file(entry)
    if path is None:
        return None
    try:
        verify_file(entry, path, progress=progress)
    except HashMismatchError as e:
        raise HashMismatchError(f"{e} ({_refuse(entry, path, e.actual)})", actual=e.actual) from None
    return path


def verified_sha(entry: ModelEntry) -> str | None:
    """The hash of the cached, verified file (from its marker), without hashing anything."""
    path = present_file(entry)
    return None if path is None else _read_marker(entry, path)


def sharing_entries(entry: ModelEntry) -> list[ModelEntry]:
    """The other registry entries whose file is the same cached file (same repo, revision and file name)."""
    here = hub_cache_path(entry)
    if here is None:
        return []
    try:
        entries = list(load_registry())
    except NafcliError:
        return []
    return [e for e in entries if e.id != entry.id and hub_cache_path(e) == here]


def _refuse(entry: ModelEntry, path: Path, sha: str | None) -> str:
    """A file that failed ``entry``'s check: delete it unless another entry on the same file has exactly
    its hash (then that entry's verified file stays, and this entry is the wrong one). Returns what was
    done, for the message."""
    owners = [e.id for e in sharing_entries(entry) if sha is not None and e.sha256 == sha]
    if owners:
        return (f"kept it: it is the verified file of {', '.join(owners)}; the registry's SHA-256 for {entry.id} "
                "is wrong or stale")
    _discard(path)
    return "deleted it; run again to download it afresh"


def _discard(path: Path) -> None:
    """Remove a cached file: the snapshot link, and the blob it points to unless another snapshot link
    (another revision or file name with the same content) still needs it."""
    try:
        target = path.resolve()
        path.unlink(missing_ok=True)
        if target != path and target.is_file() and not _linked_elsewhere(target):
            target.unlink(missing_ok=True)
    except OSError:
        pass


def _linked_elsewhere(blob: Path) -> bool:
    """Whether a snapshot link of the blob's repository folder (``<repo>/blobs/<etag>`` is linked from
    ``<repo>/snapshots/<revision>/...``) resolves to ``blob``."""
    snapshots = blob.parent.parent / "snapshots"
    for folder, _dirs, files in os.walk(snapshots):
        for name in files:
            link = Path(folder, name)
            try:
                if link.is_symlink() and link.resolve() == blob:
                    return True
            except OSError:
                continue
    return False


# --- download --------------------------------------------------------------------------------------


def fetch(entry: ModelEntry, *, offline: bool = False, progress: Progress | None = None) -> Path:
    """The entry's file, verified: from the cache, else downloaded from the hub (unless offline)."""
    path = cached_file(entry)
    if path is not None:
        return path
    check_obtainable(entry, offline=offline)
    cache = hf_hub_cache()
    _check_writable(cache, entry)
    try:
        downloaded = download(entry, cache, progress)
    except OSError as e:  # the cache's own trouble (disk full, read-only): the client leaves it to us
        raise _cache_error(cache, entry, e) from None
    try:
        verify_file(entry, downloaded)
    except HashMismatchError as e:
        raise HashMismatchError(f"{entry.id}: downloaded {e}; {_refuse(entry, downloaded, e.actual)}",
                                actual=e.actual) from None
    return downloaded


def check_obtainable(entry: ModelEntry, *, offline: bool = False) -> None:
    """Raise :class:`WeightsNotAvailableError` at once when the entry's file is not in the cache and
    cannot be downloaded (not on the hub, or offline), without hashing or downloading anything: the
    workflows call it before any input is skipped or run, so a finished batch still checks it."""
    if present_file(entry) is not None:
        return
    if not entry.on_hub:
        raise WeightsNotAvailableError(
            f"{entry.id}: {entry.file} is not on the Hugging Face hub; download it from the authors' page "
            f"{entry.url} and run 'nafcli models import {entry.file} --as {entry.id}'"
        )
    if offline_mode(offline):
        raise WeightsNotAvailableError(
            f"{entry.id} is not in the cache and offline mode is on (HF_HUB_OFFLINE or --offline): run "
            f"'nafcli models download {entry.id}' when online, or fetch {entry.hub_url} by hand and run "
            f"'nafcli models import FILE --as {entry.id}'"
        )


def _check_writable(cache: Path, entry: ModelEntry) -> None:
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _cache_error(cache, entry, e) from None
    if not os.access(cache, os.W_OK | os.X_OK):
        raise CacheError(
            f"{cache}: the Hugging Face cache is read-only; set HF_HUB_CACHE (or HF_HOME) to a writable "
            f"folder"
        )
    if entry.size is not None:
        free = shutil.disk_usage(cache).free
        if free < entry.size:
            raise CacheError(
                f"{cache}: {_mb(free)} free but {entry.id} needs {_mb(entry.size)}; free some space or set "
                f"HF_HUB_CACHE to another disk"
            )


def _cache_error(cache: Path, entry: ModelEntry, e: OSError) -> CacheError:
    if e.errno == errno.ENOSPC:
        return CacheError(
            f"{cache}: disk full while storing {entry.id}; free some space or set HF_HUB_CACHE to "
            "another disk"
        )
    if e.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return CacheError(
            f"{cache}: the Hugging Face cache is read-only; set HF_HUB_CACHE (or HF_HOME) to a writable "
            f"folder"
        )
    return CacheError(f"{cache}: cannot write the cache ({e.strerror or e})")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


# --- import and remove -----------------------------------------------------------------------------


def import_file(entry: ModelEntry, source: Path, *, sha256: str | None = None) -> Path:
    """Copy a local file into the cache as ``entry``'s weights.

    The caller has checked it (the SHA-256 when the registry knows it, else the architecture); ``sha256``
    is its hash when already computed. The copy is written atomically and marked verified.
    """
    dest = imported_path(entry)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    except OSError as e:
        raise _cache_error(dest.parent, entry, e) from None
    finally:
        tmp.unlink(missing_ok=True)
    if sha256 is None:
        verify_file(entry, dest, force=True)
    else:
        _write_marker(entry, dest, sha256)
    return dest


def already_imported(entry: ModelEntry, sha256: str) -> Path | None:
    """The entry's imported copy when it already has exactly this hash (an import of the same file again),
    else None."""
    dest = imported_path(entry)
    if not dest.is_file():
        return None
    known = _read_marker(entry, dest) or sha256_file(dest)
    return dest if known == sha256 else None


@dataclass
class Removal:
    """What ``remove`` deleted, and the files it kept because another registry entry uses them."""

    removed: list[Path] = field(default_factory=list)
    #: (path, the ids of the entries that still use it)
    kept: list[tuple[Path, list[str]]] = field(default_factory=list)


def remove(entry: ModelEntry) -> Removal:
    """Delete the entry's cached file(s), its marker and its safetensors copies. A hub file that another
    registry entry names too (same repo, revision and file) is kept: removing one model must not break
    another."""
    result = Removal()
    removed = result.removed
    for p in (hub_cache_path(entry), imported_path(entry)):
        if p is not None and (p.is_file() or p.is_symlink()):
            users = [e.id for e in sharing_entries(entry)] if p == hub_cache_path(entry) else []
            if users:
                result.kept.append((p, users))
                continue
            _discard(p)
            removed.append(p)
    _marker_path(entry).unlink(missing_ok=True)
    folder = nafcli_cache() / "safetensors"
    if folder.is_dir():
        for p in folder.glob(f"{entry.id}-*.safetensors"):
            p.unlink(missing_ok=True)
            removed.append(p)
    return result


def reverify(entry: ModelEntry, progress: Progress | None = None) -> tuple[Path, str] | None:
    """Re-hash the cached file (``models verify``): against the registry's SHA-256, or, for a model the
    registry has no hash for, against the hash recorded when it was imported. None when not cached;
    :class:`HashMismatchError` when the file changed (the file is left for the user to inspect)."""
    path = present_file(entry)
    if path is None:
        return None
    expected = entry.sha256
    if expected is None:
        try:
            expected = json.loads(_marker_path(entry).read_text()).get("sha256")
        except (OSError, ValueError):
            expected = None
    sha = sha256_file(path, progress)
    if expected is not None and sha != expected:
        raise HashMismatchError(f"{path}: SHA-256 {sha} but {entry.id} must have {expected}")
    _write_marker(entry, path, sha)
    return path, sha
