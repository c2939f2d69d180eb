"""The only module that talks to the Hugging Face hub: one download of one registry file.

huggingface_hub reads ``HF_ENDPOINT``, ``HF_HOME``… when it is imported; it is imported lazily here, so
reading the registry (``nafcli models list``) never imports it.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .._version import __version__
from ..errors import WeightsNotAvailableError
from .registry import ModelEntry

#: download progress: (bytes done, bytes total or None)
Progress = Callable[[int, "int | None"], None]


def download(entry: ModelEntry, cache: Path, progress: Progress | None) -> Path:
    """Download the entry's file into the hub cache ``cache`` (pinned revision, our library name and
    version); :class:`WeightsNotAvailableError` in one line for every network or hub failure. An
    :class:`OSError` of the cache itself (disk full, read-only) is raised as it is, for the caller to name."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import (
        EntryNotFoundError,
        FileMetadataError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    no_net = (
        f"{entry.id}: cannot download {entry.hub_url}"
        " ({why}); check the network, or fetch the file by hand and run "
        f"'nafcli models import FILE --as {entry.id}'"
    )
    try:
        with _quiet_hub_logs():
            # One quick metadata request first: without a network, hf_hub_download would retry with
            # back-off for ~25 s before failing; this fails at once with the same errors.
            get_hf_file_metadata(
                hf_hub_url(entry.repo_id, entry.file, repo_type=entry.repo_type, revision=entry.revision),  # type: ignore[arg-type]
                library_name="nafcli",
                library_version=__version__,
            )
            path = hf_hub_download(
                entry.repo_id,  # type: ignore[arg-type]
                entry.file,
                repo_type=entry.repo_type,
                revision=entry.revision,
                library_name="nafcli",
                library_version=__version__,
                cache_dir=cache,
                tqdm_class=_tqdm_class(progress) if progress is not None else None,
            )
    except (OfflineModeIsEnabled, LocalEntryNotFoundError, FileMetadataError) as e:
        cause = e.__cause__ or e.__context__
        why = "no connection" if cause is None else _short(cause)
        raise WeightsNotAvailableError(no_net.format(why=why)) from None
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        raise WeightsNotAvailableError(
            f"{entry.id}: {entry.hub_url} is not on the hub (HTTP {status or 404}); the registry may be "
            f"stale: fetch the file by hand and run 'nafcli models import FILE --as {entry.id}'"
        ) from None
    except HfHubHTTPError as e:
        raise WeightsNotAvailableError(no_net.format(why=_short(e))) from None
    except (*_network_errors(), ConnectionError, TimeoutError) as e:
        raise WeightsNotAvailableError(no_net.format(why=_short(e))) from None
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EPERM):
            raise
        raise WeightsNotAvailableError(no_net.format(why=_short(e))) from None
    return Path(path)


@contextmanager
def _quiet_hub_logs() -> Iterator[None]:
    """huggingface_hub logs each retry as a warning on stderr; our one-line error says it all."""
    import logging

    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR + 10)
    try:
        yield
    finally:
        logger.setLevel(level)


def _network_errors() -> tuple[type[BaseException], ...]:
    """The HTTP client's base error: httpx2 (huggingface_hub 2.x), httpx (1.x) or requests (older)."""
    import importlib

    for name, attr in (("httpx2", "HTTPError"), ("httpx", "HTTPError"), ("requests", "RequestException")):
        try:
            return (getattr(importlib.import_module(name), attr),)
        except (ImportError, AttributeError):
            continue
    return ()


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(e).__name__}: {first}"[:200] if first else type(e).__name__


def _tqdm_class(progress: Progress) -> type:
    """A silent tqdm that forwards byte counts to ``progress`` (the library never prints)."""
    from huggingface_hub.utils import tqdm as hf_tqdm

    class _Forward(hf_tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):  # noqa: ANN002, ANN003 - tqdm's signature
            kwargs["disable"] = True
            kwargs.pop("name", None)
            self._done = int(kwargs.get("initial", 0) or 0)
            self._total = kwargs.get("total")
            super().__init__(*args, **kwargs)

        def update(self, n=1):  # noqa: ANN001
            self._done += int(n or 0)
            progress(self._done, self._total)

    return _Forward
