"""The registry of pretrained models: ``weights.toml`` → frozen :class:`ModelEntry` objects.

The data is declarative and lives apart from the architecture code (timm's pretrained_cfg): one
``[models.<id>]`` table per model. The built-in file ships inside the package (``nafcli/weights.toml``,
found with importlib.resources) and falls back to the repository root for a source checkout;
``NAFCLI_WEIGHTS_TOML`` replaces it entirely (mirrors, tests). The file is validated when loaded so that a
typo fails at once with one line naming the file and the entry, not later in a download.

Nothing here imports torch: ``nafcli models list`` must start fast. The hyperparameters are turned into an
:class:`~nafcli.archs.ArchSpec` by the architecture package (a plain dataclass; torch is only needed to
*build* it).
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import archs
from ..archs import ArchSpec
from ..errors import RegistryError, UnknownModelError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ENV_VAR = "NAFCLI_WEIGHTS_TOML"
#: every task some architecture serves, in the architectures' order
TASKS: tuple[str, ...] = tuple(t for a in archs.ARCHITECTURES for t in a.tasks)
#: TLC as the authors test each task: on for deblurring (NAFNetLocal) and stereo SR (every NAFSSR), off for
#: denoising. An entry's own ``tlc`` field overrides it; :func:`nafcli.weights.loader.resolve_tlc` applies it.
TASK_TLC = {"denoise": False, "deblur": True, "stereo-sr": True}
REPO_TYPES = ("model", "space", "dataset")
_REQUIRED = {"task", "arch", "file"}
_SOURCE = {"repo_id", "repo_type", "revision"}
_OPTIONAL = {
    "tlc", "size", "sha256", "url", "default", "psnr", "ssim", "benchmark", "license", "params",
    "demo_inputs", "demo_outputs", "scale", "description",
}  # fmt: skip
_SHA256 = re.compile(r"[0-9a-f]{64}")
_REVISION = re.compile(r"[0-9a-f]{40}")
_ID = re.compile(r"[a-z0-9][a-z0-9._-]*")


@dataclass(frozen=True)
class ModelEntry:
    """One pretrained model: what it is, where its file is, and how to check it."""

    #: registry id, e.g. ``nafnet-sidd-width32``
    id: str
    #: ``denoise`` | ``deblur`` | ``stereo-sr``
    task: str
    #: ``nafnet`` | ``nafssr``
    arch: str
    #: whether the authors test it with TLC (NAFNetLocal, every NAFSSR)
    tlc: bool
    #: the hyperparameters, compared with what the file's tensors say
    spec: ArchSpec
    #: file name inside the hub repository (and of an imported copy)
    file: str
    #: bytes, when known
    size: int | None = None
    #: lower-case hex SHA-256 of the file, when known
    sha256: str | None = None
    #: Hugging Face source; all three or none
    repo_id: str | None = None
    repo_type: str | None = None
    revision: str | None = None
    #: the authors' download page, for files not on the hub
    url: str | None = None
    #: the default model of its task
    default: bool = False
    #: the authors' scores and the benchmark they were measured on
    psnr: float | None = None
    ssim: float | None = None
    benchmark: str | None = None
    license: str | None = None
    #: number of parameters (informational; the spec is the truth)
    params: int | None = None
    #: demo files (absolute paths, resolved when the registry was read), for ``nafcli check``
    demo_inputs: tuple[Path, ...] = ()
    demo_outputs: tuple[Path, ...] = ()
    #: the registry file this entry came from, for messages
    source: str = field(default="", compare=False)

    @property
    def on_hub(self) -> bool:
        return self.repo_id is not None

    @property
    def scale(self) -> int:
        return self.spec.scale

    @property
    def hub_url(self) -> str | None:
        """The file's address on the hub (the default endpoint; a mirror's HF_ENDPOINT applies too)."""
        if self.repo_id is None:
            return None
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
        prefix = {"model": "", "space": "spaces/", "dataset": "datasets/"}[self.repo_type or "model"]
        return f"{endpoint}/{prefix}{self.repo_id}/resolve/{self.revision}/{self.file}"

    @property
    def where(self) -> str:
        """Where to get the file by hand: the hub URL or the authors' page."""
        return self.hub_url or self.url or "(no source known)"


@dataclass(frozen=True)
class Registry:
    """All entries of one registry file, in file order."""

    entries: tuple[ModelEntry, ...]
    path: str = ""

    def ids(self) -> list[str]:
        return [e.id for e in self.entries]

    def get(self, model_id: str) -> ModelEntry:
        """The entry ``model_id`` (case-insensitive); :class:`UnknownModelError` with the closest ids."""
        key = model_id.strip().lower()
        for e in self.entries:
            if e.id == key:
                return e
        close = difflib.get_close_matches(key, self.ids(), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {model_id!r}{hint} ('nafcli models list' shows all {len(self.entries)})"
        )

    def default_for(self, task: str, *, scale: int | None = None) -> ModelEntry:
        """The task's default model; with ``scale``, the entry of that scale most like the default (the
        fewest differing hyperparameters: NAFSSR-L x4 gives NAFSSR-L x2), or the default itself when it
        has that scale. :class:`UnknownModelError` when the task has no model of that scale."""
        default = next((e for e in self.entries if e.task == task and e.default), None)
        if default is None:
            raise RegistryError(f"{self.path}: no default model for task {task!r}")
        if scale is None or default.scale == scale:
            return default
        same = [e for e in self.for_task(task) if e.scale == scale]
        if not same:
            raise UnknownModelError(f"no {task} model of scale x{scale} ('nafcli models list' shows them)")
        base = default.spec.config()

        def differences(e: ModelEntry) -> int:
            cfg = e.spec.config()
            return sum(cfg.get(k) != v for k, v in base.items()) + (e.arch != default.arch)

        return min(same, key=differences)

    def for_task(self, task: str) -> list[ModelEntry]:
        return [e for e in self.entries if e.task == task]

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, model_id: object) -> bool:
        return isinstance(model_id, str) and model_id.lower() in self.ids()


def builtin_path() -> Path:
    """The packaged ``weights.toml``; in a source checkout without it, the repository root's."""
    from importlib.resources import files

    try:
        res = files("nafcli") / "weights.toml"
        if res.is_file():
            return Path(str(res))
    except (ModuleNotFoundError, OSError):
        pass
    return Path(__file__).resolve().parents[2] / "weights.toml"


def data_dir() -> Path:
    """The package data folder (``nafcli/data``), against which the built-in file's demo paths resolve."""
    return Path(__file__).resolve().parents[1] / "data"


def registry_path() -> tuple[Path, bool]:
    """The registry file in use and whether it is the built-in one."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser(), False
    return builtin_path(), True


_cache: dict[tuple[str, int, int], Registry] = {}


def load_registry(path: str | os.PathLike[str] | None = None) -> Registry:
    """Read and validate a registry file: ``path``, else ``NAFCLI_WEIGHTS_TOML``, else the built-in one."""
    if path is None:
        p, builtin = registry_path()
    else:
        p, builtin = Path(path), False
    name = str(p)
    try:
        stat = p.stat()
        key = (str(p.resolve()), stat.st_mtime_ns, stat.st_size)
        if key in _cache:
            return _cache[key]
        raw = p.read_bytes()
    except FileNotFoundError:
        via = f" (set by {ENV_VAR})" if not builtin and path is None else ""
        raise RegistryError(f"{name}: registry file not found{via}") from None
    except OSError as e:
        raise RegistryError(f"{name}: cannot read the registry ({e.strerror or e})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise RegistryError(f"{name}: not valid TOML ({str(e).splitlines()[0]})") from None
    base = data_dir() if builtin else p.resolve().parent
    reg = parse_registry(data, source=name, base=base)
    _cache[key] = reg
    return reg


def parse_registry(data: Mapping[str, Any], *, source: str, base: Path) -> Registry:
    """Validate the parsed TOML and build the entries (one-line :class:`RegistryError` on any defect)."""
    extra = sorted(set(data) - {"models"})
    if extra:
        raise RegistryError(f"{source}: unknown top-level table {extra[0]!r} (only [models.<id>] tables)")
    models = data.get("models")
    if not isinstance(models, Mapping) or not models:
        raise RegistryError(f"{source}: no [models.<id>] tables")
    entries = [_parse_entry(str(mid), table, source=source, base=base) for mid, table in models.items()]
    for task in TASKS:
        defaults = [e.id for e in entries if e.task == task and e.default]
        if len(defaults) > 1:
            raise RegistryError(
                f"{source}: task {task!r} has {len(defaults)} defaults ({', '.join(defaults)})"
            )
        if not defaults and any(e.task == task for e in entries):
            raise RegistryError(f"{source}: task {task!r} has no entry with default = true")
    return Registry(entries=tuple(entries), path=source)


def _parse_entry(mid: str, t: Any, *, source: str, base: Path) -> ModelEntry:
    where = f"{source}: [models.{mid}]"

    def fail(msg: str) -> RegistryError:
        return RegistryError(f"{where}: {msg}")

    if not isinstance(t, Mapping):
        raise fail("is not a table")
    if not _ID.fullmatch(mid):
        raise fail("ids are lower-case letters, digits, '.', '_' and '-'")
    for k in sorted(_REQUIRED):
        if k not in t:
            raise fail(f"missing field {k!r}")
    arch = t["arch"]
    try:
        architecture = archs.get(arch)
    except ValueError:
        raise fail(f"unknown arch {arch!r} (expected {' or '.join(a.name for a in archs.ARCHITECTURES)})") from None
    task = t["task"]
    if task not in TASKS:
        raise fail(f"unknown task {task!r} (expected {', '.join(TASKS)})")
    if task not in architecture.tasks:
        raise fail(f"arch {arch!r} cannot do task {task!r}")
    hyper = architecture.hyperparameters
    unknown = sorted(set(t) - _REQUIRED - _SOURCE - _OPTIONAL - hyper)
    if unknown:
        raise fail(f"unknown field {unknown[0]!r}")

    config = {k: t[k] for k in hyper if k in t}
    try:
        spec = architecture.spec_from_config(config)
    except (ValueError, TypeError, KeyError) as e:
        raise fail(str(e) if not isinstance(e, KeyError) else f"missing hyperparameter {e}") from None

    def typed(name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        v = t.get(name, default)
        if v is None:
            return None
        if isinstance(v, bool) and kind is not bool:
            raise fail(f"field {name!r} must be {_kind_name(kind)}, not a boolean")
        if not isinstance(v, kind):
            raise fail(f"field {name!r} must be {_kind_name(kind)}, not {type(v).__name__}")
        return v

    file = typed("file", str)
    if not file or file.startswith("/") or ".." in Path(file).parts:
        raise fail(f"field 'file' must be a relative file name, not {file!r}")
    sha = typed("sha256", str)
    if sha is not None:
        sha = sha.lower()
        if not _SHA256.fullmatch(sha):
            raise fail(f"bad sha256 {t['sha256']!r} (64 hex digits expected)")
    size = typed("size", int)
    if size is not None and size <= 0:
        raise fail(f"bad size {size} (bytes, > 0)")

    present = _SOURCE & set(t)
    if present and present != _SOURCE:
        first = sorted(_SOURCE - present)[0]
        raise fail(f"missing field {first!r} (repo_id, repo_type, revision go together)")
    repo_id = typed("repo_id", str)
    repo_type = typed("repo_type", str)
    revision = typed("revision", str)
    url = typed("url", str)
    if repo_id is not None:
        if repo_id.count("/") != 1 or not all(repo_id.split("/")):
            raise fail(f"bad repo_id {repo_id!r} (owner/name)")
        if repo_type not in REPO_TYPES:
            raise fail(f"bad repo_type {repo_type!r} (expected {', '.join(REPO_TYPES)})")
        if not _REVISION.fullmatch(revision or ""):
            raise fail(f"bad revision {revision!r} (pin a full 40-hex commit, not a branch or tag)")
        if sha is None:
            raise fail("missing field 'sha256' (required for a hub file: downloads are verified)")
    elif url is None:
        raise fail("missing field 'repo_id' or 'url' (where is the file?)")
    if url is not None and not url.startswith(("https://", "http://")):
        raise fail(f"bad url {url!r}")

    tlc = typed("tlc", bool, TASK_TLC[task])
    scale = typed("scale", int)
    if scale is not None and scale != spec.scale:
        raise fail(f"scale = {scale} contradicts the hyperparameters (x{spec.scale})")

    def paths(name: str) -> tuple[Path, ...]:
        v = typed(name, list, [])
        if not all(isinstance(x, str) for x in v):
            raise fail(f"field {name!r} must be a list of paths")
        return tuple((base / x).resolve() if not Path(x).is_absolute() else Path(x) for x in v)

    scores = {name: None if (v := typed(name, (int, float))) is None else float(v) for name in ("psnr", "ssim")}
    notes = {name: typed(name, kind) for name, kind in (("benchmark", str), ("license", str), ("params", int))}
    return ModelEntry(
        id=mid, task=task, arch=arch, tlc=tlc, spec=spec, file=file, size=size, sha256=sha,
        repo_id=repo_id, repo_type=repo_type, revision=revision, url=url, default=typed("default", bool, False),
        demo_inputs=paths("demo_inputs"), demo_outputs=paths("demo_outputs"), source=source, **scores, **notes,
    )


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list"}
    if isinstance(kind, tuple):
        return "a number"
    return names.get(kind, kind.__name__)
