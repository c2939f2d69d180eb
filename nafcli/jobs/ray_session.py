"""Connecting to Ray: importing it (an optional extra), starting a local instance on 127.0.0.1 or
joining a cluster, and keeping Ray's own console output off nafcli's stdout and stderr.

Apart from :mod:`.ray_backend` (which runs items on an actor pool and knows nothing of connections)
because what it takes to start Ray quietly and safely on the loopback is a subject of its own: Ray's
private switches, file descriptors, environment variables its child processes inherit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

from ..errors import ClusterUnavailableError, MissingExtraError, NafcliError

#: the one-line message when Ray is not installed
MISSING_RAY = '--ray needs the optional extra: pip install "nafcli[ray]"'

_LOOPBACK = "127.0.0.1"
#: the environment of a local instance (and of the driver while it is connected to one): no usage
#: statistics, nowhere to send them from the loopback anyway
_LOCAL_ONLY = {"RAY_USAGE_STATS_ENABLED": "0"}

_log = logging.getLogger(__name__)


def import_ray() -> Any:
    """``ray`` with ``ray.data`` loaded, or :class:`MissingExtraError`.

    Imported here, not at the top of the module, so that nafcli runs without Ray installed and pays
    Ray's import time (about 0.3 s, and more for ``ray.data``) only when ``--ray`` is asked for. A Ray
    whose ``ray.data`` dependencies are missing (``pip install ray`` without ``[data]``) counts as
    missing too: the same ``pip install`` mends both.
    """
    try:
        import ray
        import ray.data  # noqa: F401 - the extra's point; fail here rather than half-way
    except ImportError:
        raise MissingExtraError(MISSING_RAY) from None
    return ray


def describe_error(e: BaseException) -> str:
    """``TypeName: first line of the message`` (Ray's messages run to many lines)."""
    text = str(e).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


@contextlib.contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[None]:
    """Connect to Ray at ``address``, or start a local instance on 127.0.0.1 when it is ``None``; on
    leaving (Ctrl-C included) disconnect, which stops a local instance.

    :func:`~.ray_backend.run_on_ray` opens one itself; open one around several calls to pay Ray's start-up (2-4 s
    here) once. Inside an existing connection (this process already called ``ray.init``) this does
    nothing: that connection is the caller's. ``num_cpus`` sizes a local instance (default: every
    core); a cluster has its own. Ray's own logging is kept off the terminal: the driver's Python
    loggers at ERROR, worker output not forwarded, and the C++ core's log level at ``fatal`` unless
    ``RAY_BACKEND_LOG_LEVEL`` says otherwise (Ray 2.60's data pipelines make the core log a
    misleading error line about actor restarts on every run, ray-project/ray#57733).
    """
    ray = import_ray()
    if ray.is_initialized():
        yield
        return
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    level = os.environ.get("RAY_BACKEND_LOG_LEVEL") or "fatal"
    with ray_errors_to_log():
        try:
            with _environ(RAY_BACKEND_LOG_LEVEL=level), _stderr_fd_muted():
                if address is None:
                    _start_local(ray, num_cpus, quiet)
                else:
                    ray.init(address=address, **quiet)
        except NafcliError:
            raise
        except Exception as e:  # noqa: BLE001 - connection refused, version mismatch, ...
            ray.shutdown()  # whatever half of a local instance was started
            where = "start a local Ray instance" if address is None else f"connect to Ray at {address}"
            raise ClusterUnavailableError(f"could not {where}: {describe_error(e)}") from None
        except BaseException:  # Ctrl-C while Ray starts
            ray.shutdown()
            raise
        try:
            # A local instance is nafcli's own, started with usage statistics off; Ray Data reads the
            # switch again on every run (and would start a usage-collecting actor beside the workers)
            with _environ(**_LOCAL_ONLY) if address is None else contextlib.nullcontext():
                yield
        finally:
            ray.shutdown()


@contextlib.contextmanager
def ray_errors_to_log() -> Iterator[None]:
    """Ray's cluster error notices sent to the ``nafcli.jobs.ray_session`` logger (INFO) instead of
    stdout.

    Ray's driver runs a thread that prints every error the cluster publishes ("(raylet) A worker died
    or was killed while executing a task ...", several lines of advice each) to ``sys.stdout``, whatever
    ``log_to_driver`` says, and nafcli's stdout is data (``--json`` records). There is no setting for
    it: the thread looks up ``ray._private.worker.print_to_stdstream`` on every message, so that
    function is wrapped while we are connected. Worker output proper (``log_to_driver``) is off
    anyway. Should a Ray version lack the function, nothing is wrapped (the tests notice).
    """
    import ray._private.worker as ray_worker

    original = getattr(ray_worker, "print_to_stdstream", None)
    if original is None:
        yield
        return

    def to_log(data: dict[str, Any], *args: Any, **kwargs: Any) -> None:  # its signature varies
        if data.get("pid") == "raylet" and not data.get("is_err"):
            for line in data.get("lines", []):
                _log.info("ray: %s", line)
        else:
            original(data, *args, **kwargs)

    ray_worker.print_to_stdstream = to_log
    try:
        yield
    finally:
        ray_worker.print_to_stdstream = original


@contextlib.contextmanager
def _stderr_fd_muted() -> Iterator[None]:
    """File descriptor 2 sent to /dev/null while Ray starts: its C++ core writes there directly (an
    INFO line that it read ``RAY_BACKEND_LOG_LEVEL``, start-up notices), past Python's ``sys.stderr``.
    Nothing else of nafcli's runs meanwhile, and a failed start still raises with Ray's message."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
        finally:
            os.close(devnull)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Environment variables set while Ray starts its processes (which inherit them), then restored."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _start_local(ray: Any, num_cpus: int | None, quiet: dict[str, Any]) -> None:
    """A one-machine Ray instance whose servers listen on 127.0.0.1 only.

    Ray binds its gRPC servers (GCS, raylet, workers, agents) to all interfaces unless the node's
    address is the loopback one, and it deliberately turns ``127.0.0.1`` into the machine's outward
    address, except where clusters are disabled (its Windows/macOS mode,
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``). That switch is read once, when Ray is imported, so it is
    set both in the environment (for Ray's child processes) and in Ray's loaded constants while the
    instance starts; the address Ray ends up with is then checked, and an instance that is not on the
    loopback is stopped rather than used.
    """
    import ray._private.ray_constants as constants  # the switch above; no public way exists

    saved = constants.ENABLE_RAY_CLUSTER
    constants.ENABLE_RAY_CLUSTER = False
    try:
        with _environ(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", **_LOCAL_ONLY):
            # "local", not None: None would follow RAY_ADDRESS to some cluster
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                     _node_ip_address=_LOOPBACK, **quiet)
    finally:
        constants.ENABLE_RAY_CLUSTER = saved
    from ray.util import get_node_ip_address

    node_ip = get_node_ip_address()
    if node_ip != _LOOPBACK:
        ray.shutdown()
        raise ClusterUnavailableError(f"the local Ray instance came up on {node_ip}, not {_LOOPBACK} "
                           f"(Ray {ray.__version__}); start Ray yourself and pass its address")
