"""The Ray backend (nafcli.jobs.ray_backend) on a real local Ray instance.

One instance with 2 CPUs on 127.0.0.1 is shared by the module (starting Ray costs seconds). The worker
functions here write one file per item the way nafcli writes images (a hidden temporary file in the
target folder, then a rename), so the tests can check what a user would: every output there and
whole, nothing left behind, the results those of a plain local loop.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nafcli.errors import ClusterError, DeviceError, MissingExtraError, NafcliError, UsageError
from nafcli.jobs.cluster import parse_shard, shard
from nafcli.jobs.ray_backend import run_on_ray
from nafcli.jobs.ray_session import MISSING_RAY

REPO = Path(__file__).resolve().parents[1]


# --- worker functions (shipped to Ray's worker processes by value) --------------------------------


def make_writer(out_dir: Path, kill_on: int | None = None, marker: Path | None = None,
                kill_always: bool = False):
    """A worker factory: its state says where outputs go and, for the fault tests, when to die."""

    def make() -> dict:
        return {"out": out_dir, "pid": os.getpid(), "kill_on": kill_on, "marker": marker,
                "kill_always": kill_always}

    return make


def content(item: int) -> bytes:
    """What item ``item``'s output holds: deterministic, a few kB, different per item."""
    return b"".join(hashlib.sha256(f"{item}:{k}".encode()).digest() for k in range(128))


def write_item(state: dict, item: int) -> dict:
    """Write ``item``'s output as nafcli writes images: a hidden ``.NAME.*.part`` file, then a rename.

    A retried item first removes the ``.part`` file its killed attempt left behind: without that a
    SIGKILL between the two steps would leave one stray temporary file per killed attempt (the
    pattern nafcli's own job function needs before it runs on Ray).
    """
    out: Path = state["out"]
    dst = out / f"item{item:03d}.bin"
    for stale in out.glob(f".{dst.name}.*.part"):
        stale.unlink(missing_ok=True)
    data = content(item)
    tmp = out / f".{dst.name}.{os.getpid()}.part"
    with open(tmp, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        if item == state["kill_on"]:
            try:  # the first attempt only (the marker exists afterwards), or every attempt
                fd = os.open(state["marker"], os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
            except FileExistsError:
                if state["kill_always"]:
                    os.kill(os.getpid(), signal.SIGKILL)
        f.write(data[len(data) // 2:])
    os.replace(tmp, dst)
    return {"item": item, "sha256": hashlib.sha256(data).hexdigest(), "pid": os.getpid()}


def local_loop(items: list[int], out_dir: Path) -> list[dict]:
    state = make_writer(out_dir)()
    return [write_item(state, i) for i in items]


def without_pid(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "pid"} for r in records]


def outputs(out_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out_dir.iterdir())}


# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance (2 CPUs, 127.0.0.1) for the module, started as run_on_ray starts one."""
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    from nafcli.jobs.ray_session import ray_session

    # pytest imports this file as a top-level module that Ray's workers cannot import: ship its
    # functions by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with ray_session(num_cpus=2):
        yield ray
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


# --- running -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_results_match_a_local_loop_in_item_order(ray_instance, tmp_path: Path) -> None:
    items = list(range(20))
    ray_out, local_out = tmp_path / "ray", tmp_path / "local"
    ray_out.mkdir()
    local_out.mkdir()
    calls: list[tuple[int, dict]] = []

    results = run_on_ray(items, make_writer(ray_out), write_item, workers=2,
                         on_result=lambda i, r: calls.append((i, r)))

    expected = local_loop(items, local_out)
    assert without_pid(results) == without_pid(expected)  # same records, in the items' order
    assert outputs(ray_out) == outputs(local_out)  # same files, nothing else (no .part left)
    assert sorted(i for i, _ in calls) == items  # on_result once per item ...
    assert all(results[i] == r for i, r in calls)  # ... with that item's result
    assert len({r["pid"] for r in results}) == 2  # two worker processes did the work


@pytest.mark.slow
def test_a_killed_worker_has_its_item_retried(ray_instance, tmp_path: Path, capfd) -> None:
    out, marker = tmp_path / "out", tmp_path / "killed"
    out.mkdir()
    items = list(range(20))

    results = run_on_ray(items, make_writer(out, kill_on=7, marker=marker), write_item, workers=2)
    time.sleep(1)  # Ray publishes the worker's death to the driver asynchronously
    assert capfd.readouterr().out == ""  # and that notice went to the log, not to stdout

    killed_pid = int(marker.read_text())  # the worker really died, half-way through item 7's file
    assert results[7]["pid"] != killed_pid  # another (or the restarted) worker process redid it
    expected = tmp_path / "expected"
    expected.mkdir()
    assert without_pid(results) == without_pid(local_loop(items, expected))
    assert outputs(out) == outputs(expected)  # every output whole, none missing, no temp file


@pytest.mark.slow
def test_an_item_that_always_kills_its_worker_is_given_up(ray_instance, tmp_path: Path) -> None:
    out, marker = tmp_path / "out", tmp_path / "killed"
    out.mkdir()
    make = make_writer(out, kill_on=3, marker=marker, kill_always=True)
    calls: list[int] = []

    # two items in flight per worker: the one queued behind item 3 dies with its worker without
    # having started, is retried, and must not count as an attempt
    results = run_on_ray(list(range(6)), make, write_item, workers=2, max_retries=1, in_flight_per_worker=2,
                         on_result=lambda i, r: calls.append(i),
                         on_failure=lambda item, reason: {"item": item, "failed": reason})

    assert results[3] == {"item": 3, "failed": "its Ray worker died 2 times while running it"}
    assert [r["item"] for r in results] == list(range(6))
    assert sorted(calls) == list(range(6))
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        f"item{i:03d}.bin" for i in (0, 1, 2, 4, 5)]


def raise_on_two(state: None, item: int) -> int:
    if item == 2:
        raise ValueError("bad item\nsecond line")
    return item * 10


def no_state() -> None:
    return None


@pytest.mark.slow
def test_an_exception_in_work_becomes_a_failure_or_a_cluster_error(ray_instance) -> None:
    results = run_on_ray([1, 2, 3], no_state, raise_on_two, workers=1,
                         on_failure=lambda item, reason: f"{item} failed: {reason}")
    assert results == [10, "2 failed: unexpected ValueError: bad item", 30]

    with pytest.raises(ClusterError) as err:
        run_on_ray([1, 2, 3], no_state, raise_on_two, workers=1)
    assert str(err.value) == "item 1 (2): unexpected ValueError: bad item"


def no_gpu() -> None:
    raise DeviceError("cuda:3: no such device (this machine has 1 GPU)")


def broken_worker() -> None:
    raise RuntimeError("weights half-read\ndetails")


@pytest.mark.slow
def test_a_worker_that_cannot_start_ends_the_run_with_its_error(ray_instance) -> None:
    with pytest.raises(DeviceError, match=r"^cuda:3: no such device \(this machine has 1 GPU\)$"):
        run_on_ray([1, 2], no_gpu, raise_on_two, workers=1)
    with pytest.raises(ClusterError) as err:
        run_on_ray([1, 2], broken_worker, raise_on_two, workers=1)
    assert str(err.value) == "a Ray worker could not start: RuntimeError: weights half-read"


def times_ten(state: None, item: int) -> int:
    return item * 10


def dying_factory(marker: Path, always: bool):
    """A make_worker whose process dies (SIGKILL, as the kernel's OOM killer does) the first time,
    or every time."""

    def make() -> None:
        if always or not marker.exists():
            marker.write_text("")
            os.kill(os.getpid(), signal.SIGKILL)

    return make


@pytest.mark.slow
def test_a_worker_that_dies_while_starting_is_restarted_but_not_forever(ray_instance, tmp_path: Path) -> None:
    once = dying_factory(tmp_path / "once", always=False)
    assert run_on_ray([1, 2, 3], once, times_ten, workers=1) == [10, 20, 30]
    assert (tmp_path / "once").exists()  # it did die once
    always = dying_factory(tmp_path / "always", always=True)
    with pytest.raises(ClusterError, match=r"^Ray workers died 2 times while starting \(in make_worker"):
        run_on_ray([1, 2, 3], always, times_ten, workers=1, max_retries=1)


def slow_item(state: None, item: int) -> int:
    time.sleep(0.2)
    return item


def read_environment(state: None, name: str) -> str | None:
    return os.environ.get(name)


def test_env_is_the_workers_environment_from_their_start(ray_instance) -> None:
    """What a process reads only as it starts (glibc's MALLOC_ARENA_MAX) must be in the environment Ray
    starts the worker with, not set later by the worker itself."""
    names = ["NAFCLI_TEST_ENV", "MALLOC_ARENA_MAX"]
    got = run_on_ray(names, lambda: None, read_environment, workers=1,
                     env={"NAFCLI_TEST_ENV": "given", "MALLOC_ARENA_MAX": "1"})
    assert got == ["given", "1"]
    assert "NAFCLI_TEST_ENV" not in os.environ  # the driver's own environment is left alone


@pytest.mark.slow
def test_an_interrupt_stops_the_pool_and_is_reraised(ray_instance) -> None:
    seen: list[int] = []

    def interrupt(index: int, result: int) -> None:
        seen.append(index)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_on_ray(list(range(40)), no_state, slow_item, workers=2, on_result=interrupt)
    assert len(seen) == 2
    # the pool's actors are gone: both CPUs free again (Ray reports a killed actor's CPU back
    # asynchronously, hence the wait)
    deadline = time.monotonic() + 60
    while ray_instance.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray_instance.available_resources().get("CPU", 0) == 2
    assert run_on_ray([5, 6], no_state, slow_item) == [5, 6]  # and the instance still works


def test_asking_for_gpus_the_cluster_lacks_is_a_one_line_error(ray_instance) -> None:
    with pytest.raises(ClusterError, match=r"^the Ray cluster has 0 GPUs; a worker needs 1$"):
        run_on_ray([1], no_state, slow_item, num_gpus_per_worker=1)


def _listening_sockets(pids: set[int]) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp* writes them) of the TCP sockets ``pids`` listen on."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:  # gone meanwhile
            continue
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.append(fields[1].rsplit(":", 1)[0])
    return found


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


LOOPBACK = {"0100007F",  # 127.0.0.1
            "00000000000000000000000001000000",  # ::1
            "0000000000000000FFFF00000100007F"}  # ::ffff:127.0.0.1


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc")
def test_the_local_instance_listens_on_loopback_only(ray_instance) -> None:
    run_on_ray([1], no_state, slow_item)  # the pool's workers and Ray Data's helpers exist now
    addresses = _listening_sockets(_descendants(os.getpid()) | {os.getpid()})
    assert len(addresses) >= 3  # GCS, raylet, workers: the check below looked at something
    assert set(addresses) <= LOOPBACK


INTERRUPTED_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from nafcli.jobs.ray_backend import run_on_ray

    def work(state, item):
        marker = Path(sys.argv[1] + ".killed")
        if item == 0 and not marker.exists():  # a dead worker first: Ray reports it to the driver
            marker.write_text("")
            os.kill(os.getpid(), 9)
        time.sleep(0.3)
        return item

    def started(index, result):
        Path(sys.argv[1]).write_text(str(os.getpid()))

    try:
        run_on_ray(list(range(100)), lambda: None, work, workers=1, on_result=started)
    except KeyboardInterrupt:
        import ray
        sys.exit(130 if not ray.is_initialized() else 3)
    sys.exit(4)
""")


@pytest.mark.slow
def test_ctrl_c_shuts_down_the_local_instance(tmp_path: Path) -> None:
    """Ctrl-C in a terminal (SIGINT to the whole process group) while a driver that started its own
    instance waits for results: exit 130, nothing on stdout (not even Ray's notice of the worker
    killed first), no Ray process left."""
    pytest.importorskip("ray")
    started = tmp_path / "started"
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPTED_SCRIPT, str(started)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert started.exists(), proc.communicate(timeout=30)
        ray_pids = _descendants(proc.pid)
        assert ray_pids  # GCS, raylet, workers
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr.decode()[-2000:]
    assert stdout == b""  # nothing of Ray's on stdout
    deadline = time.monotonic() + 30
    while (alive := {p for p in ray_pids if _alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# --- without Ray ---------------------------------------------------------------------------------------


def test_without_ray_the_error_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(MissingExtraError) as err:
        run_on_ray([1], no_state, slow_item)
    assert str(err.value) == MISSING_RAY == '--ray needs the optional extra: pip install "nafcli[ray]"'
    assert isinstance(err.value, NafcliError) and err.value.exit_code == 2  # the environment cannot work


def test_importing_the_backend_does_not_import_ray() -> None:
    code = "import sys, nafcli.jobs.ray_backend; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


# --- sharding ------------------------------------------------------------------------------------------


@given(st.lists(st.integers(), max_size=60), st.integers(min_value=1, max_value=12))
def test_the_shards_cover_every_item_exactly_once(items: list[int], n: int) -> None:
    tagged = list(enumerate(items))  # positions, so equal values stay apart
    shards = [shard(tagged, k, n) for k in range(n)]
    assert sorted(x for s in shards for x in s) == tagged
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert all(s == sorted(s) for s in shards)  # each keeps the list's order
    assert shards == [shard(tagged, k, n) for k in range(n)]  # deterministic


@pytest.mark.parametrize(("text", "expected"), [("0/1", (0, 1)), ("3/4", (3, 4)), (" 2 / 10 ", (2, 10))])
def test_parse_shard(text: str, expected: tuple[int, int]) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["4/4", "1/0", "0/0", "-1/4", "1", "1/2/3", "a/b", "1.0/2", "", "٣/٤"])
def test_parse_shard_refuses_with_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_shard(text)
    assert err.value.exit_code == 2
    assert "\n" not in str(err.value) and str(err.value).startswith(f"--shard {text!r}: expected K/N")


def test_shard_refuses_a_bad_k() -> None:
    with pytest.raises(UsageError):
        shard([1, 2, 3], 2, 2)
