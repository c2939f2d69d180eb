"""Compiled mode without compiling: the cache folder, the C++ compiler check, the stats file, the auto
decision and the Restorer's handling of it (compile_module replaced by a stand-in), failures and retries.
The real compilation is the opt-in test at the end (NAFCLI_TEST_COMPILE=1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.models import REPO

from nafcli.archs import NAFNetSpec
from nafcli.errors import DeviceError, UsageError
from nafcli.inference import compiled, forward
from nafcli.inference.restorer import Restorer
from nafcli.weights import load

TINY = NAFNetSpec(width=8, enc_blk_nums=(1,), middle_blk_num=1, dec_blk_nums=(1,))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NAFCLI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    return tmp_path / "cache"


def tiny_model(seed: int = 0):
    return load(config=(TINY.arch, TINY.config()), tlc=False, seed=seed, pretrained=False)


def test_parse_mode() -> None:
    assert compiled.parse_mode(None) == "auto"
    assert compiled.parse_mode(True) == "on" and compiled.parse_mode(False) == "off"
    assert [compiled.parse_mode(v) for v in ("ON", "yes", "off", "0", " auto ")] == ["on", "on", "off", "off", "auto"]
    with pytest.raises(UsageError, match="on, off or auto"):
        compiled.parse_mode("sometimes")


def test_cache_dir_follows_nafcli_cache_dir_then_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAFCLI_CACHE_DIR", str(tmp_path / "mine"))
    assert compiled.compiled_dir() == tmp_path / "mine" / "compiled"
    monkeypatch.delenv("NAFCLI_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compiled.compiled_dir() == tmp_path / "xdg" / "nafcli" / "compiled"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert compiled.compiled_dir() == Path("~/.cache/nafcli/compiled").expanduser()


def test_use_cache_points_inductor_there_unless_the_user_chose(cache: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import torch._inductor.config as inductor_config

    path = compiled.use_cache()
    assert path == cache / "compiled" / "inductor" and path.is_dir()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(path)
    assert inductor_config.fx_graph_cache
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "theirs"))
    assert compiled.use_cache() == tmp_path / "theirs"


def test_clear_cache_empties_inductors_folder(cache: Path) -> None:
    path = compiled.use_cache()
    (path / "fxgraph").mkdir()
    (path / "fxgraph" / "entry").write_bytes(b"garbage")
    compiled.clear_cache()
    assert path.is_dir() and not any(path.iterdir())


def test_cxx_compiler_found_like_inductor() -> None:
    import torch._inductor.config as inductor_config

    assert compiled.compiler_names() == [n for n in inductor_config.cpp.cxx if isinstance(n, str)]
    assert compiled.cxx_compiler(["no-such-compiler-here"]) is None
    assert compiled.cxx_compiler(["no-such-compiler-here", sys.executable]) == sys.executable


def test_stats_round_trip_and_damaged_file(cache: Path) -> None:
    key = compiled.stats_key("NAFNet width 8", "fp32", (1, 3, 64, 64), "cpu")
    compiled.record_stats(key, {"cold_seconds": 30.0, "eager_seconds": float("nan")})
    compiled.record_stats(key, {"compiled_seconds": 0.5})
    assert compiled.load_stats()[key] == {"cold_seconds": 30.0, "compiled_seconds": 0.5}
    compiled.stats_path().write_text("{not json")
    assert compiled.load_stats() == {}
    compiled.record_stats(key, {"warm_seconds": 2.0})  # a damaged file is rewritten
    assert json.loads(compiled.stats_path().read_text()) == {key: {"warm_seconds": 2.0}}


def test_decide_weighs_the_saving_against_the_warmup(cache: Path) -> None:
    # nothing measured: the priors (CPU: no speed-up assumed, so never)
    d = compiled.decide(forwards_left=1000, eager_seconds=1.0, entry=None, device_type="cpu")
    assert not d.compile and "prior" in d.reason and "running eagerly" in d.reason
    measured = {"eager_seconds": 1.0, "compiled_seconds": 0.5, "cold_seconds": 60.0}
    # 100 forwards x 1 s x (1 - 1/2) = 50 s saved < 60 s cold warm-up (no cache yet)
    d = compiled.decide(forwards_left=100, eager_seconds=1.0, entry=measured, device_type="cpu")
    assert not d.compile and "cold, measured" in d.reason
    d = compiled.decide(forwards_left=130, eager_seconds=1.0, entry=measured, device_type="cpu")
    assert d.compile and d.reason.endswith("compiling")
    # compiled here before and in the cache: a warm start is cheap, so much less work repays it
    compiled.use_cache()
    (compiled.inductor_dir() / "entry").write_text("x")
    warm = {**measured, "warm_seconds": 3.0}
    d = compiled.decide(forwards_left=7, eager_seconds=1.0, entry=warm, device_type="cpu")
    assert d.compile and "cached, measured" in d.reason
    d = compiled.decide(forwards_left=5, eager_seconds=1.0, entry=warm, device_type="cpu")
    assert not d.compile
    d = compiled.decide(forwards_left=10**6, eager_seconds=1.0, entry=warm, device_type="cpu", compiler=False)
    assert not d.compile and "no C++ compiler" in d.reason


class StandIn:
    """What compile_module returns in these tests: the module itself, counted (or failing ``fail`` times)."""

    def __init__(self, module: torch.nn.Module, fail: int = 0) -> None:
        self.module, self.fail, self.calls = module, fail, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.fail:
            self.fail -= 1
            raise RuntimeError("stand-in: corrupt cache entry\nmore lines")
        return self.module(x)


class StandIns(list):
    """The stand-ins made so far; ``fail_next``: how many calls the next one fails."""

    fail_next = 0


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> StandIns:
    made = StandIns()

    def fake_compile(module: torch.nn.Module, device: torch.device | None = None) -> StandIn:
        s = StandIn(module, fail=made.fail_next)
        made.fail_next = 0
        made.append(s)
        return s

    monkeypatch.setattr(forward, "compile_module", fake_compile)
    monkeypatch.setattr(compiled, "cxx_compiler", lambda: "/usr/bin/c++")
    return made


def test_auto_compiles_when_the_planned_work_repays_it(cache: Path, stand_in: StandIns) -> None:
    model = tiny_model()
    x = torch.rand((1, 3, 48, 48))
    ref, _ = Restorer(model, device="cpu", fast=False).run(x)
    r = Restorer(model, device="cpu", tile=0, compile="auto")
    key = r.forward.stats_key((1, 3, 48, 48))
    # measured before on this machine: compiled twice as fast, a 1e-6 s warm-up: any planned work repays it
    compiled.record_stats(key, {"eager_seconds": 1.0, "compiled_seconds": 0.5, "cold_seconds": 1e-6})
    r.plan_inputs([(48, 48)] * 3)
    out, info = r.run(x)  # the first forward runs eagerly and is timed; then the decision
    assert not stand_in and info.path == "fast" and "compiling" in info.notes[0]
    assert "2 more forward(s)" in info.notes[0]
    out2, info2 = r.run(x)
    assert len(stand_in) == 1 and stand_in[0].calls == 1 and info2.path == "fast+compiled"
    assert info2.compile_seconds > 0 and info2.notes == []
    r.run(x)  # the compiled speed is measured on the first call after the warm-up
    entry = compiled.load_stats()[key]
    assert {"cold_seconds", "compiled_seconds", "eager_seconds"} <= set(entry)
    for y in (out, out2):
        assert (y - ref).abs().max().item() <= 1e-4


def test_auto_runs_eagerly_when_the_work_is_small(cache: Path, stand_in: StandIns) -> None:
    r = Restorer(tiny_model(), device="cpu", tile=0, compile="auto")
    compiled.record_stats(r.forward.stats_key((1, 3, 32, 32)), {"eager_seconds": 1.0, "compiled_seconds": 0.9,
                                                          "cold_seconds": 100.0})
    _, info = r.run(torch.rand((1, 3, 32, 32)))
    _, again = r.run(torch.rand((1, 3, 32, 32)))
    assert not stand_in and "running eagerly" in info.notes[0] and again.notes == [] and not r.compiled


def test_auto_without_a_compiler_runs_eagerly_and_says_so(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiled, "cxx_compiler", lambda: None)
    r = Restorer(tiny_model(), device="cpu", compile="auto")
    _, info = r.run(torch.rand((1, 3, 32, 32)))
    assert r.compile_mode == "off" and "no C++ compiler" in info.notes[0]


def test_explicit_compile_without_a_compiler_is_one_line(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiled, "cxx_compiler", lambda: None)
    with pytest.raises(UsageError, match="no C.. compiler") as e:
        Restorer(tiny_model(), device="cpu", compile=True)
    assert "\n" not in str(e.value)


def test_cli_explicit_compile_without_a_compiler(tmp_path: Path, tiny_nafnet_pth: Path) -> None:
    """The command line: exit 2 and one error line, before any image is read."""
    import numpy as np
    from PIL import Image

    img = tmp_path / "in.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(img)
    env = {**os.environ, "PYTHONPATH": str(REPO), "CXX": "no-such-compiler-here"}
    res = subprocess.run([sys.executable, "-m", "nafcli", "denoise", str(img), "-w", str(tiny_nafnet_pth),
                          "--compile", "--device", "cpu"], capture_output=True, text=True, env=env)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no C++ compiler" in lines[0]
    res = subprocess.run([sys.executable, "-m", "nafcli", "denoise", str(img), "-w", str(tiny_nafnet_pth),
                          "--device", "cpu", "--verbose", "--overwrite"], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    assert "compile auto: no C++ compiler found" in res.stderr


def test_a_failing_compilation_clears_the_cache_and_retries(cache: Path, stand_in: StandIns) -> None:
    compiled.use_cache()
    junk = compiled.inductor_dir() / "fxgraph" / "junk"
    junk.parent.mkdir()
    junk.write_text("corrupt")
    stand_in.fail_next = 1
    model = tiny_model()
    x = torch.rand((1, 3, 32, 32))
    ref, _ = Restorer(model, device="cpu", fast=False).run(x)
    out, info = Restorer(model, device="cpu", compile=True).run(x)
    assert len(stand_in) == 2 and not junk.exists()  # rebuilt from an empty cache
    assert info.path == "fast+compiled" and (out - ref).abs().max().item() <= 1e-4


def test_a_compilation_that_keeps_failing(cache: Path, stand_in: StandIns, monkeypatch: pytest.MonkeyPatch) -> None:
    def always_failing(module: torch.nn.Module, device: torch.device | None = None) -> StandIn:
        s = StandIn(module, fail=10)
        stand_in.append(s)
        return s

    monkeypatch.setattr(forward, "compile_module", always_failing)
    model = tiny_model()
    x = torch.rand((1, 3, 32, 32))
    with pytest.raises(DeviceError, match="compilation failed") as e:
        Restorer(model, device="cpu", compile=True).run(x)
    assert "\n" not in str(e.value)
    r = Restorer(model, device="cpu", tile=0, compile="auto")
    compiled.record_stats(r.forward.stats_key((1, 3, 32, 32)), {"eager_seconds": 1.0, "compiled_seconds": 0.1,
                                                          "cold_seconds": 1e-6})
    r.plan_inputs([(32, 32)] * 3)
    r.run(x)
    ref, _ = Restorer(model, device="cpu", fast=False).run(x)
    out, info = r.run(x)  # the compilation fails twice: this image and the next run eagerly
    assert "compilation failed" in info.notes[0] and info.path == "fast"
    assert (out - ref).abs().max().item() <= 1e-4
    _, info = r.run(x)
    assert info.path == "fast" and info.notes == []


def test_plan_inputs_counts_forwards_per_network_shape(cache: Path) -> None:
    r = Restorer(tiny_model(), device="cpu", tile=64, overlap=8, compile="auto")
    r.plan_inputs([(100, 100), (100, 100), (40, 40)])
    # 100x100 in 64-px tiles: 2x2 tiles each; a 40x40 image, smaller than a tile, runs whole
    assert r.forward.planned == {(1, 3, 64, 64): 8, (1, 3, 40, 40): 1}
    off = Restorer(tiny_model(), device="cpu", compile="off")
    off.plan_inputs([(100, 100)])
    assert not off.forward.planned


# -- the real thing (opt-in: tens of seconds) -----------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("NAFCLI_TEST_COMPILE", "") in ("", "0"),
    reason="torch.compile takes tens of seconds even for a tiny model on a 2-core machine; "
    "set NAFCLI_TEST_COMPILE=1 to run",
)
def test_compiled_kernels_are_kept_and_a_corrupt_cache_is_rebuilt(cache: Path) -> None:
    """Compile in a fresh process (cold), again in another (from the cache: faster, counted as a cache
    hit), then corrupt every cached file and compile once more: correct results every time."""
    code = r"""
import json, sys, torch
from nafcli.archs import NAFNetSpec
from nafcli.inference.restorer import Restorer
from nafcli.weights import load
spec = NAFNetSpec(width=8, enc_blk_nums=(1,), middle_blk_num=1, dec_blk_nums=(1,))
model = load(config=(spec.arch, spec.config()), tlc=False, seed=0, pretrained=False)
x = torch.rand((1, 3, 32, 32), generator=torch.Generator().manual_seed(0))
ref, _ = Restorer(model, device="cpu", fast=False).run(x)
out, info = Restorer(model, device="cpu", compile=True).run(x)
from torch._dynamo.utils import counters
print(json.dumps({"err": (out - ref).abs().max().item(), "path": info.path, "seconds": info.compile_seconds,
                  "hits": counters["inductor"]["fxgraph_cache_hit"]}))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def once() -> dict:
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        return json.loads(res.stdout.strip().splitlines()[-1])

    cold = once()
    warm = once()
    for run in (cold, warm):
        assert run["err"] <= 1e-4 and run["path"] == "fast+compiled"
    assert cold["hits"] == 0 and warm["hits"] >= 1 and warm["seconds"] < cold["seconds"]
    for f in (cache / "compiled" / "inductor").rglob("*"):
        if f.is_file():
            f.write_bytes(b"\x00garbage")
    broken = once()
    assert broken["err"] <= 1e-4 and broken["path"] == "fast+compiled"
