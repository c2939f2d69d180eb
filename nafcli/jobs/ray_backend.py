"""Run a list of jobs on Ray: a cluster, or a Ray instance started here on 127.0.0.1.

This is the execution side of ``--ray`` and knows nothing of images or models: the caller passes
``make_worker`` (builds a worker's state once, e.g. one ``Restorer`` with its weights loaded) and
``work`` (runs one item with that state and returns its result; in nafcli it never raises for a bad
file, it returns a ``failed`` result).

Why Ray Data and not hand-made actors: a ``map_batches`` over a callable class is an *actor pool* fed by
a streaming pipeline, which is everything a batch of photos needs from a cluster: one long-lived worker
per GPU (or per CPU slot) that loads its model once, items handed out as workers become free, results
streamed back to the driver as they finish (so it can draw progress and print JSON records), and a
worker process that dies (killed, segfault, out of memory) restarted with its item retried. Ray Data's
actor pools ask Ray Core for unlimited actor restarts and unlimited task retries by default; we keep
those defaults (passing ``max_restarts``/``max_task_retries`` through ``map_batches`` is deprecated in
Ray 2.60 and goes away in 2.64) and bound the retries ourselves instead: every attempt at an item is
counted by a small ``_Attempts`` actor, and an item whose worker died ``max_retries + 1`` times is given
up as lost, so one poison file (say, one that kills the worker by exhausting memory) cannot stall the
batch forever.

Each item travels as its own one-row block (``batch_size=1``): one Ray task is one item, so a dead
worker costs at most the item in its hands, and each result comes back as soon as it is done.

Nothing here prints and Ray is kept quiet (no dashboard, no worker output forwarded to the driver, no
progress bars, no usage statistics): stdout belongs to nafcli's data.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from ..errors import ClusterError, ClusterUnavailableError, NafcliError, UsageError
from .ray_session import describe_error, import_ray, ray_errors_to_log, ray_session

T = TypeVar("T")
W = TypeVar("W")
R = TypeVar("R")

# --- the workers (these run in Ray's actor processes) ----------------------------------------------


class _Attempts:
    """Counts attempts, across worker restarts: the bound on retries.

    A worker asks for a number before it runs an item; a retried item (its previous worker died
    in the middle of it) gets the next one. Ray does not expose a task's attempt number to the task,
    and a dead process cannot write anything down, hence this one tiny actor (no CPU reserved). It
    also counts worker start-ups that never finished: Ray restarts a worker that dies inside
    ``make_worker`` (out of memory loading a model, a crashing driver) forever, which would hang
    the run.
    """

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self._starting: set[str] = set()
        self._died_starting = 0

    def begin(self, index: int) -> int:
        self._counts[index] = self._counts.get(index, 0) + 1
        return self._counts[index]

    def worker_starting(self, actor_id: str) -> int:
        """Note a start-up; how many start-ups died so far. An actor keeps its id across restarts,
        so one still noted as starting has died in its previous start."""
        if actor_id in self._starting:
            self._died_starting += 1
        self._starting.add(actor_id)
        return self._died_starting

    def worker_started(self, actor_id: str) -> None:
        self._starting.discard(actor_id)


class _PoolWorker:
    """The callable class of ``map_batches``: one instance per actor, so ``make_worker`` runs once per
    worker process (and again only if Ray restarts that process).

    Every outcome goes back as a pickled ``(kind, payload)`` pair: ``ok`` with the result, ``error``
    when ``work`` raised (a bug: nafcli's job functions report per-file failures as results),
    ``lost`` when the item's retries are spent, ``init`` when ``make_worker`` raised. Raising in the
    actor instead would make Ray Data abort the whole dataset with a long wrapped traceback; the driver
    decides what each outcome means.
    """

    def __init__(self, make_worker: Callable[[], Any], work: Callable[[Any, Any], Any],
                 attempts: tuple[str, str], max_attempts: int) -> None:
        import ray

        self._work = work
        # The counter is looked up by name rather than passed as a handle: Ray cannot promise to
        # restart an actor whose constructor arguments hold references (ray-project/ray#53727), and
        # these actors must restart.
        name, namespace = attempts
        self._attempts = ray.get_actor(name, namespace=namespace)
        self._max_attempts = max_attempts
        self._state: Any = None
        self._init_error: BaseException | None = None
        actor_id = ray.get_runtime_context().get_actor_id()
        died = ray.get(self._attempts.worker_starting.remote(actor_id))
        if died >= max_attempts:
            self._init_error = ClusterError(
                f"Ray workers died {died} times while starting (in make_worker: out of memory?)")
            return
        try:
            self._state = make_worker()
        except Exception as e:  # noqa: BLE001 - reported with the first item, see the class docstring
            self._init_error = e
        ray.get(self._attempts.worker_started.remote(actor_id))

    def __call__(self, batch: Any) -> dict[str, list[Any]]:
        indices = [int(i) for i in batch.column("index").to_pylist()]
        blobs = batch.column("item").to_pylist()
        return {"index": indices, "outcome": [self._run(i, b) for i, b in zip(indices, blobs, strict=True)]}

    def _run(self, index: int, blob: bytes) -> bytes:
        import ray
        from ray import cloudpickle

        attempt = ray.get(self._attempts.begin.remote(index))
        if attempt > self._max_attempts:
            return _dumps(("lost", f"its Ray worker died {attempt - 1} times while running it"))
        if self._init_error is not None:
            return _dumps(("init", self._init_error))
        try:
            result = self._work(self._state, cloudpickle.loads(blob))
        except Exception as e:  # noqa: BLE001 - see the class docstring
            return _dumps(("error", f"unexpected {describe_error(e)}"))
        return _dumps(("ok", result))


def _dumps(outcome: tuple[str, Any]) -> bytes:
    """Pickle an outcome; one that cannot be pickled (an odd result or exception) becomes an error."""
    from ray import cloudpickle

    try:
        return cloudpickle.dumps(outcome)
    except Exception as e:  # noqa: BLE001 - any pickling failure
        kind, payload = outcome
        if kind == "init":
            return cloudpickle.dumps(("init", ClusterError(f"a Ray worker could not start: "
                                                           f"{describe_error(payload)}")))
        return cloudpickle.dumps(("error", f"its {kind} result could not be sent back: {describe_error(e)}"))


# --- the driver ------------------------------------------------------------------------------------


def run_on_ray(
    items: Sequence[T],
    make_worker: Callable[[], W],
    work: Callable[[W, T], R],
    *,
    address: str | None = None,
    num_gpus_per_worker: float = 0,
    cpus_per_worker: float | None = None,
    workers: int | None = None,
    on_result: Callable[[int, R], None] | None = None,
    on_failure: Callable[[T, str], R] | None = None,
    max_retries: int = 3,
    in_flight_per_worker: int = 1,
    concurrent: bool = False,
    env: Mapping[str, str] | None = None,
) -> list[R]:
    """Run ``work(state, item)`` for every item on a pool of Ray actors; the results in item order.

    Each actor calls ``make_worker()`` once to build its ``state``. ``on_result(index, result)`` is called
    on the driver (this process) as each result arrives, in completion order, so the caller can draw
    progress and print records; the returned list is in the items' order.

    ``address``: a Ray cluster as ``ray.init`` takes it (``"auto"``, ``"HOST:PORT"``,
    ``"ray://HOST:10001"``); ``None`` starts a local instance bound to 127.0.0.1, shut down on return.
    If this process is already connected to Ray (``ray.init`` was called), that connection is used and
    left open, whatever ``address`` says. On a cluster, every node needs nafcli (and what ``work``
    imports) installed in the same Python version as the driver.

    ``workers``: the pool size; ``None`` takes what the cluster has room for: one worker per
    ``num_gpus_per_worker`` GPUs when that is set (``1``: one worker per GPU), else one per
    ``cpus_per_worker`` CPUs (default 1; Ray sets ``OMP_NUM_THREADS`` to it in the worker, so torch
    uses that many threads). Never more workers than items.

    Failures: a worker process that dies is restarted by Ray and its item retried, up to
    ``max_retries`` times per item; worker processes that die while in ``make_worker`` more than
    ``max_retries`` times in all end the run with :class:`ClusterError`. An item that gets no result (its retries spent, or ``work``
    raised) is turned into one by ``on_failure(item, reason)`` when given (nafcli: a ``failed`` job
    result), and otherwise ends the run with :class:`ClusterError`. ``make_worker`` raising ends the
    run with its own exception if that is a :class:`NafcliError` (a missing weights file says so), a
    :class:`ClusterError` otherwise. ``work`` runs at least once per item and more than once for a
    retried one, so it must be safe to repeat (write outputs atomically).

    ``in_flight_per_worker``: items handed to each worker at a time. 1 (the default) keeps a slow
    item from holding up one queued behind it while another worker idles, and a dying worker takes
    only its current item along; 2 hides the round trip to the driver between two items, which
    matters only when an item takes little more than that (tens of milliseconds; see
    ``benchmarks/ray_overhead.py``).

    ``concurrent``: the worker runs its in-flight items at the same time, each ``work`` call on a
    thread of its own (Ray Data's threaded actors), so ``work`` must be thread-safe. nafcli's job
    function is (:func:`~.cluster.run_on_ray_cluster`): one item is read and another written while a
    third computes, the computes taking turns, as the local runner overlaps them.

    ``KeyboardInterrupt`` (Ctrl-C) stops the cluster's work on these items (the pool's actors are
    killed, a local instance is shut down) and is re-raised, for the caller's exit code 130.

    ``env``: environment variables of the worker processes, set when Ray starts them (Ray's
    ``runtime_env``), for what a process reads only as it starts (nafcli: glibc's ``MALLOC_ARENA_MAX``,
    :func:`~nafcli.inference.allocator.worker_environment`).
    """
    if max_retries < 0:
        raise UsageError(f"max_retries must be >= 0, not {max_retries}")
    if in_flight_per_worker < 1:
        raise UsageError(f"in_flight_per_worker must be at least 1, not {in_flight_per_worker}")
    if workers is not None and workers < 1:
        raise UsageError(f"workers must be at least 1, not {workers}")
    items = list(items)
    ray = import_ray()
    if not items:
        return []
    with ray_session(address), ray_errors_to_log():
        return _run(ray, items, make_worker, work, num_gpus_per_worker=num_gpus_per_worker,
                    cpus_per_worker=cpus_per_worker, workers=workers, on_result=on_result,
                    on_failure=on_failure, max_retries=max_retries, in_flight=in_flight_per_worker,
                    concurrent=concurrent, env=dict(env or {}))


def _run(ray: Any, items: list[T], make_worker: Callable[[], W], work: Callable[[W, T], R], *,
         num_gpus_per_worker: float, cpus_per_worker: float | None, workers: int | None,
         on_result: Callable[[int, R], None] | None, on_failure: Callable[[T, str], R] | None,
         max_retries: int, in_flight: int, concurrent: bool, env: dict[str, str]) -> list[R]:
    from ray import cloudpickle

    size = _pool_size(ray, workers, len(items), num_gpus_per_worker, cpus_per_worker)
    attempts = (f"nafcli-attempts-{uuid.uuid4().hex}", ray.get_runtime_context().namespace)
    counter = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)(_Attempts).options(
        name=attempts[0], namespace=attempts[1]).remote()
    rows = [{"index": i, "item": cloudpickle.dumps(item)} for i, item in enumerate(items)]
    resources: dict[str, float] = {}
    if num_gpus_per_worker > 0:
        resources["num_gpus"] = num_gpus_per_worker
        if cpus_per_worker is not None:
            resources["num_cpus"] = cpus_per_worker
    else:
        resources["num_cpus"] = 1 if cpus_per_worker is None else cpus_per_worker
    if env:
        resources["runtime_env"] = {"env_vars": env}
    ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        _PoolWorker,
        fn_constructor_kwargs={"make_worker": make_worker, "work": work, "attempts": attempts,
                               "max_attempts": max_retries + 1},
        batch_size=1,
        batch_format="pyarrow",
        compute=_pool_strategy(ray, size, in_flight, concurrent),
        **resources,
    )
    _quiet(ds.context)
    try:
        return _collect(ds, items, on_result, on_failure)
    finally:
        with contextlib.suppress(Exception):  # never mask the run's own outcome (or Ctrl-C)
            ray.kill(counter, no_restart=True)


def _pool_strategy(ray: Any, size: int, in_flight: int, concurrent: bool) -> Any:
    """An actor pool of ``size``, ``in_flight`` items handed to each actor at a time, run one after the
    other or (``concurrent``) on as many threads of the actor."""
    if not concurrent or in_flight < 2:
        return ray.data.ActorPoolStrategy(size=size, max_tasks_in_flight_per_actor=in_flight)
    return ray.data.ActorPoolStrategy(size=size, max_tasks_in_flight_per_actor=in_flight,
                                      max_concurrent_calls_per_actor=in_flight, enable_true_multi_threading=True)


def _collect(ds: Any, items: list[T], on_result: Callable[[int, R], None] | None,
             on_failure: Callable[[T, str], R] | None) -> list[R]:
    """Run the pipeline, hand each outcome to the caller as it arrives; the results in item order."""
    results: dict[int, R] = {}

    def deliver(index: int, result: R) -> None:
        results[index] = result
        if on_result is not None:
            on_result(index, result)

    with _ray_data_console_off(), contextlib.closing(_stream(ds)) as stream:
        for index, (kind, payload) in stream:
            if index in results:  # a retried item whose first attempt's result came back after all
                continue
            if kind == "ok":
                deliver(index, payload)
            elif kind == "init":
                if isinstance(payload, NafcliError):
                    raise payload
                raise ClusterError(f"a Ray worker could not start: {describe_error(payload)}")
            elif on_failure is not None:
                deliver(index, on_failure(items[index], str(payload)))
            else:
                raise ClusterError(f"item {index} ({_short(items[index])}): {payload}")
    missing = [i for i in range(len(items)) if i not in results]
    for index in missing:
        if on_failure is None:
            raise ClusterError(f"{len(missing)} of {len(items)} items came back from Ray without a result")
        deliver(index, on_failure(items[index], "no result came back from the Ray cluster"))
    return [results[i] for i in range(len(items))]


def _stream(ds: Any) -> Iterator[tuple[int, tuple[str, Any]]]:
    """``(index, outcome)`` as the rows come back. Ray's own failures become one-line errors; when the
    consumer stops early (Ctrl-C, an exception in a callback) the pipeline is shut down at once, its
    actors killed, rather than whenever the garbage collector gets to it."""
    from ray import cloudpickle

    rows = iter(ds.iter_rows())
    try:
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except Exception as e:  # noqa: BLE001 - Ray wraps everything; translated here
                raise _translate(e) from None
            yield int(row["index"]), cloudpickle.loads(row["outcome"])
    finally:
        rows.close()  # type: ignore[attr-defined]


def _translate(e: BaseException) -> NafcliError:
    """A nafcli error found anywhere in Ray's chain of wrappers, else a one-line :class:`ClusterError`."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, NafcliError):
            return cur
        seen.add(id(cur))
        cur = getattr(cur, "cause", None) or cur.__cause__ or cur.__context__
    return ClusterError(f"the Ray run failed: {describe_error(e)}")


def _short(item: Any, limit: int = 80) -> str:
    text = getattr(item, "name", None) or repr(item)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _pool_size(ray: Any, workers: int | None, n_items: int, gpus: float, cpus: float | None) -> int:
    """The actor pool's size: ``workers`` if given, else as many as the cluster's resources allow."""
    if workers is None:
        total = ray.cluster_resources()
        if gpus > 0:
            workers = int(total.get("GPU", 0) // gpus)
            if workers < 1:
                raise ClusterUnavailableError(f"the Ray cluster has {total.get('GPU', 0):g} GPUs; "
                                   f"a worker needs {gpus:g}")
        else:
            workers = max(1, int(total.get("CPU", 0) // (cpus or 1)))
    return max(1, min(workers, n_items))


def _quiet(ctx: Any) -> None:
    """This dataset's Ray Data settings: results as they finish, and nothing on the terminal."""
    ctx.execution_options.preserve_order = False  # stream in completion order; we reorder at the end
    ctx.enable_progress_bars = False  # the caller draws its own
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False


class _Reject(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextlib.contextmanager
def _ray_data_console_off() -> Iterator[None]:
    """Ray Data's console output muted while we run (its log file in the Ray session folder,
    ``/tmp/ray/session_latest/logs/ray-data``, keeps everything).

    It would otherwise print to stderr at INFO ("execution finished in ..."), warn that the progress
    bars we turned off are off, and repeat worker failures we already report in one line.
    """
    handlers = [h for h in logging.getLogger("ray.data").handlers
                if type(h).__name__ != "SessionFileHandler"]
    reject = _Reject()
    for h in handlers:
        h.addFilter(reject)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(reject)
