"""Read weights files and turn their tensors into a network.

* ``.pth`` (pickle, zip or legacy) is read with ``torch.load(weights_only=True)`` only; the wrappers seen
  in the wild are unwrapped (``params_ema``, ``params``, ``state_dict``) and a ``module.`` prefix
  (DataParallel) is stripped.
* ``.safetensors`` is read with safetensors.
* The file type is recognised by content, not by extension.
* The architecture and its hyperparameters are detected from the key names and tensor shapes by the
  architecture packages (:func:`nafcli.archs.detect`, after spandrel), then the whole state dict is checked
  against the model they describe and the network is built with it (:func:`build_model`).

Each failure raises its own :class:`~nafcli.errors.CheckpointError` subclass with a one-line message.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..archs import ArchSpec, LoadedModel, detect
from ..archs.state_dict import check_state_dict, describe
from ..errors import (
    CheckpointError,
    InconsistentShapesError,
    NotACheckpointError,
    TruncatedCheckpointError,
    os_reason,
)

StateDict = dict[str, torch.Tensor]

#: wrapper keys, in order of preference (EMA weights first, as BasicSR-style tools do)
WRAPPER_KEYS = ("params_ema", "params", "state_dict")

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80


def read_state_dict(path: str | os.PathLike[str]) -> StateDict:
    """Read a ``.pth`` or ``.safetensors`` file and return a plain ``{key: tensor}`` state dict."""
    p = Path(path)
    kind, size, head = _sniff(p)
    raw = _read_torch(p, head) if kind == "torch" else _read_safetensors(p, size)
    return unwrap_state_dict(raw, source=str(p))


def check_weights_file(path: str | os.PathLike[str]) -> None:
    """Refuse at once, from its first bytes only, a weights file that is missing, empty or not a checkpoint:
    the workflows check ``--weights`` before any input is skipped, without loading it."""
    _sniff(Path(path))


def peek_state_dict(path: str | os.PathLike[str]) -> StateDict | None:
    """The file's keys and tensor shapes without reading its tensors, for checks before any work (which
    architecture, which task): a zip ``.pth`` is memory-mapped (only its small pickle is read), a
    safetensors file gives shapes in its header (as tensors on the meta device). None when that cannot be
    done cheaply (a legacy pickle) or the file is damaged: the full read reports the real problem."""
    p = Path(path)
    try:
        kind, _size, head = _sniff(p)
        if kind == "safetensors":
            from safetensors import safe_open

            with safe_open(str(p), framework="pt") as f:
                raw: Any = {k: torch.empty(f.get_slice(k).get_shape(), device="meta") for k in f.keys()}
        elif head.startswith(_ZIP_MAGIC):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                raw = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
        else:
            return None
        return unwrap_state_dict(raw, source=str(p))
    except Exception:  # noqa: BLE001 - a cheap look only: whatever fails here fails again, reported, on load
        return None


def _sniff(p: Path) -> tuple[str, int, bytes]:
    """``("torch" | "safetensors", size, first bytes)``; :class:`CheckpointError` for anything else."""
    name = str(p)
    try:
        size = p.stat().st_size
        with p.open("rb") as f:
            head = f.read(16)
    except OSError as e:
        raise CheckpointError(f"{name}: {os_reason(e, directory='is a directory, not a weights file')}") from None
    if size == 0:
        raise NotACheckpointError(f"{name}: empty file, not a checkpoint")
    if head.startswith(_ZIP_MAGIC) or head[0] == _PICKLE_PROTO:
        return "torch", size, head
    if _looks_like_safetensors(head, size):
        return "safetensors", size, head
    raise NotACheckpointError(f"{name}: not a PyTorch or safetensors checkpoint")


def _read_torch(p: Path, head: bytes) -> Any:
    name = str(p)
    if head.startswith(_ZIP_MAGIC) and not zipfile.is_zipfile(p):
        # A zip whose central directory (at the very end) is gone: the file was cut short.
        raise TruncatedCheckpointError(f"{name}: truncated checkpoint (incomplete download or copy?)")
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols it may not support; the outcome is handled below.
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "Weights only load failed" in msg or "weights_only" in msg:
            raise NotACheckpointError(
                f"{name}: holds Python objects, not only tensors; nafcli loads plain state dicts only"
            ) from None
        raise NotACheckpointError(f"{name}: not a readable PyTorch checkpoint") from None
    except (EOFError, struct.error):
        raise TruncatedCheckpointError(
            f"{name}: truncated checkpoint (incomplete download or copy?)"
        ) from None
    except RuntimeError as e:
        msg = str(e)
        if "central directory" in msg or "unexpected EOF" in msg or "file_size" in msg:
            raise TruncatedCheckpointError(
                f"{name}: truncated checkpoint (incomplete download or copy?)"
            ) from None
        raise NotACheckpointError(f"{name}: not a readable PyTorch checkpoint ({msg.splitlines()[0]})") from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for garbage; all mean "not a checkpoint"
        raise NotACheckpointError(f"{name}: not a readable PyTorch checkpoint ({type(e).__name__})") from None


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 0 < n < 100_000_000


def _read_safetensors(p: Path, size: int) -> StateDict:
    from safetensors.torch import load_file

    name = str(p)
    with p.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if 8 + n > size:
            raise TruncatedCheckpointError(f"{name}: truncated safetensors file (header cut short)")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise NotACheckpointError(f"{name}: not a safetensors file (bad header)") from None
    if not isinstance(header, dict):
        raise NotACheckpointError(f"{name}: not a safetensors file (bad header)")
    end = max(
        (int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)),
        default=0,
    )
    if 8 + n + end > size:
        raise TruncatedCheckpointError(f"{name}: truncated safetensors file (incomplete download or copy?)")
    try:
        return load_file(str(p), device="cpu")
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error type for every defect
        raise NotACheckpointError(f"{name}: not a readable safetensors file ({e})") from None


def unwrap_state_dict(obj: Any, *, source: str = "state dict") -> StateDict:
    """Unwrap ``{"params_ema"|"params"|"state_dict": sd}`` and strip ``module.`` prefixes."""
    if not isinstance(obj, Mapping):
        raise NotACheckpointError(f"{source}: holds a {type(obj).__name__}, not a state dict")
    for key in WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping):
            obj = inner
            break
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise NotACheckpointError(f"{source}: holds no tensors, not a state dict")
    if len(tensors) != len(obj):
        odd = next(k for k, v in obj.items() if not isinstance(v, torch.Tensor))
        raise NotACheckpointError(f"{source}: entry {odd!r} is not a tensor; not a plain state dict")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


def build_model(
    state_dict: Mapping[str, torch.Tensor],
    *,
    source: str,
    tlc: bool,
    expected: ArchSpec | None = None,
    model_id: str | None = None,
    task: str | None = None,
) -> LoadedModel:
    """Detect the architecture of ``state_dict``, check every tensor, and build the network with it.

    With ``expected`` (a registry entry's spec), a state dict holding another configuration is refused.
    """
    spec = detect(state_dict, source=source)
    if expected is not None and spec != expected:
        raise InconsistentShapesError(f"{source}: holds {spec.describe()}, expected {expected.describe()}")
    check_state_dict(spec, state_dict, source=source)
    # Build on the meta device and adopt the loaded tensors (assign=True): no random initialisation of
    # weights that are overwritten at once, which costs more than reading the file for the big models.
    # Safe because the networks hold no buffers, and strict=True means every tensor is replaced.
    with torch.device("meta"):
        module = spec.build(tlc=tlc)
    tensors = {k: v.float().contiguous() for k, v in state_dict.items()}
    module.load_state_dict(tensors, strict=True, assign=True)
    return describe(module, spec, tlc=tlc, source=source, model_id=model_id, task=task)


def save_safetensors(state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> None:
    """Write a state dict as safetensors (contiguous CPU tensors), atomically."""
    from safetensors.torch import save_file

    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, str(tmp))
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
