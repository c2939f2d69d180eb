"""One exit-code rule for every command (README "Exit codes"), held by a table of representative failures.

0 success; 1 something given failed at run time (an image, a weights file, a check); 2 the command line or
the environment cannot work; 130 interrupted (tests/test_runner.py, tests/test_cli_batch.py); 141 stdout
closed (tests/test_broken_pipe.py). Every row runs in-process on tiny files; no network is reachable
(HF_ENDPOINT points at a closed port) and the weights cache is empty. Several rows use an input whose
output already exists: the command must fail before skipping it (validation before work).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers.images import TINY_WEIGHTS
from helpers.models import PIPELINE
from PIL import Image
from typer.testing import CliRunner

from nafcli.cli.main import app

SR_WEIGHTS = PIPELINE / "sr-nafssr-x4.pth"


@dataclass(frozen=True)
class Case:
    #: the command line; {name} is replaced by a path of the fixture (see ``paths``)
    args: str
    code: int
    #: a piece of the message that must name what the user typed (stderr)
    says: str = ""
    #: a library error: exactly one "error:" line (the parser's own usage boxes are not)
    one_line: bool = True
    #: extra environment
    env: tuple[tuple[str, str], ...] = ()
    #: put a damaged NAFNet-SIDD-width32.pth where the hub cache keeps it (a download cut short)
    damaged_cache: bool = False


DONE_SKIPPED = "{done} -w {w} -d cpu"  # an input whose output exists: nothing would run

CASES: dict[str, Case] = {
    # --- denoise ------------------------------------------------------------------------------------
    "denoise ok": Case("denoise {img} -w {w} -d cpu -o {tmp}/out.png", 0),
    "denoise all skipped": Case("denoise " + DONE_SKIPPED, 0, "1 skipped", one_line=False),
    "denoise missing image": Case("denoise {tmp}/absent.png -w {w} -d cpu", 1, "absent.png"),
    "denoise unreadable image": Case("denoise {bad} -w {w} -d cpu -o {tmp}/o.png", 1, "bad.png"),
    "denoise weights file missing": Case("denoise {done} -w {tmp}/none.pth", 1, "none.pth"),
    "denoise weights damaged in the cache": Case("denoise {img} -o {tmp}/d.png -d cpu", 1, "SHA-256",
                                                 damaged_cache=True),
    "denoise unknown model, all skipped": Case("denoise {done} -m nafnet-sidd-width33", 2, "nafnet-sidd-width33"),
    "denoise model of another task, all skipped": Case("denoise {done} -m nafnet-gopro-width32", 2,
                                                       "nafnet-gopro-width32 is for deblur, not denoise"),
    "denoise offline nothing cached, all skipped": Case("denoise {done} --offline", 2, "offline"),
    "denoise stereo weights, all skipped": Case("denoise {done} -w {sr_w}", 2, "not for denoise"),
    "denoise device absent": Case("denoise " + DONE_SKIPPED.replace("cpu", "cuda:99"), 2, "cuda:99"),
    "denoise precision unknown": Case("denoise " + DONE_SKIPPED + " -p fp64", 2, "fp64"),
    "denoise tile below its overlap": Case("denoise " + DONE_SKIPPED + " --tile 7", 2, "--tile 7"),
    "denoise tile below a given overlap": Case("denoise " + DONE_SKIPPED + " --tile 40 --overlap 16", 2,
                                               "--tile 40 is too small for --overlap 16"),
    "denoise tile not a number": Case("denoise " + DONE_SKIPPED + " --tile abc", 2, "abc", one_line=False),
    "denoise negative threads": Case("denoise " + DONE_SKIPPED + " --threads -1", 2, "--threads must be >= 0, not"
                                     .replace(", not", " (0: the usable cores), not -1")),
    "denoise zero batch": Case("denoise " + DONE_SKIPPED + " --batch-size 0", 2, "--batch-size must be >= 1, not 0"),
    "denoise zero quality": Case("denoise " + DONE_SKIPPED + " --quality 0", 2, "--quality", one_line=False),
    "denoise negative overlap": Case("denoise " + DONE_SKIPPED + " --overlap -1", 2, "--overlap", one_line=False),
    "denoise output with an unknown extension": Case("denoise {img} -w {w} -o {tmp}/out.xyz", 2, "out.xyz"),
    "denoise format against -o": Case("denoise {img} -w {w} -o {tmp}/x.png --format jpg", 2,
                                      "--format jpg contradicts -o"),
    "denoise a file name for many inputs": Case("denoise {img} {done} -w {w} -o {tmp}/x.png", 2, "x.png"),
    "denoise nothing found": Case("denoise {empty} -w {w}", 2, "no images found"),
    "denoise shard past its count": Case("denoise " + DONE_SKIPPED + " --shard 3/3", 2, "--shard '3/3': expected K/N"),
    "denoise shard not K/N": Case("denoise " + DONE_SKIPPED + " --shard half", 2, "--shard 'half': expected K/N"),
    "denoise ray cpus without ray": Case("denoise " + DONE_SKIPPED + " --ray-cpus-per-worker 2", 2,
                                         "--ray-cpus-per-worker needs --ray"),
    "denoise ray cpus zero": Case("denoise " + DONE_SKIPPED + " --ray --ray-cpus-per-worker 0", 2,
                                  "--ray-cpus-per-worker", one_line=False),
    "denoise ray on a named device": Case("denoise {done} -w {w} --ray -d cuda:0", 2, "--device cuda:0 with --ray"),
    "denoise all skipped on ray": Case("denoise " + DONE_SKIPPED + " --ray", 0, "1 skipped", one_line=False),
    # --- deblur -------------------------------------------------------------------------------------
    "deblur ok": Case("deblur {img} -w {w} -d cpu -o {tmp}/sharp.png", 0),
    "deblur model of another task": Case("deblur {img} -m nafnet-sidd-width32", 2, "is for denoise, not deblur"),
    "deblur ray on every device": Case("deblur {img} -w {w} --ray-address auto -d all", 2, "--device all with --ray"),
    "deblur above --max-pixels": Case("deblur {img} -w {w} -d cpu -o {tmp}/b.png --max-pixels 100", 1,
                                      "above the limit", one_line=True),
    # --- sr -----------------------------------------------------------------------------------------
    "sr ok": Case("sr {left} {right} -w {sr_w} -d cpu -o {tmp}/sr", 0),
    "sr the same file twice": Case("sr {left} {left} -w {sr_w}", 2, "are the same file"),
    "sr the same file through a link": Case("sr {left} {link} -w {sr_w}", 2, "are the same file"),
    "sr the same folder as both views": Case("sr --left {pics} --right {pics} -w {sr_w}", 2, "the same folder"),
    "sr views of different sizes": Case("sr {left} {img} -w {sr_w} -d cpu -o {tmp}/sr2", 1, "must match"),
    "sr scale neither 2 nor 4": Case("sr {left} {right} --scale 3", 2, "--scale", one_line=False),
    "sr a mono model": Case("sr {left} {right} -w {w}", 2, "not for stereo-sr"),
    "sr offline nothing cached": Case("sr {left} {right} --offline", 2, "offline"),
    "sr shard past its count": Case("sr {left} {right} -w {sr_w} --shard 2/1", 2, "--shard '2/1'"),
    # --- models -------------------------------------------------------------------------------------
    "models list ok": Case("models list --json", 0),
    "models list malformed registry": Case("models list", 2, "not valid TOML",
                                           env=(("NAFCLI_WEIGHTS_TOML", "{broken_toml}"),)),
    "models list unknown option": Case("models list --bogus", 2, "--bogus", one_line=False),
    "models download unknown id": Case("models download nafnet-sidd-width33", 2, "nafnet-sidd-width33"),
    "models download offline": Case("models download nafnet-sidd-width32", 2, "offline",
                                    env=(("HF_HUB_OFFLINE", "1"),)),
    "models download not on the hub": Case("models download nafssr-t-x2", 2, "models import"),
    "models download nothing named": Case("models download", 2, "", one_line=True),
    "models download damaged in the cache": Case("models download nafnet-sidd-width32", 1, "SHA-256",
                                                 damaged_cache=True),
    "models verify damaged": Case("models verify nafnet-sidd-width32", 1, "SHA-256", damaged_cache=True),
    "models verify not downloaded": Case("models verify nafnet-sidd-width32", 1, "not downloaded"),
    "models verify unknown id": Case("models verify nope", 2, "nope"),
    "models path not downloaded": Case("models path nafnet-sidd-width32", 1, "not downloaded"),
    "models path unknown id": Case("models path nope", 2, "nope"),
    "models import unrecognised file": Case("models import {w}", 1, "which is no registry model"),
    "models import missing file": Case("models import {tmp}/none.pth", 1, "none.pth"),
    "models import not a checkpoint": Case("models import {bad} --as nafssr-t-x2", 1, "bad.png"),
    "models import another architecture": Case("models import {w} --as nafssr-t-x2", 1, "not imported"),
    "models import as an unknown id": Case("models import {w} --as nope", 2, "nope"),
    "models remove nothing cached": Case("models remove nafnet-sidd-width32", 0, "nothing cached", one_line=False),
    "models remove unknown id": Case("models remove nope", 2, "nope"),
    # --- check --------------------------------------------------------------------------------------
    "check nothing checked": Case("check -d cpu", 1, "nothing was checked: only nafnet-sidd-width64"),
    "check a named model not downloaded": Case("check nafnet-sidd-width64 -d cpu", 1, "nothing was checked"),
    "check unknown id": Case("check nope", 2, "nope"),
    "check device absent": Case("check -d cuda:99", 2, "cuda:99"),
    "check weights file missing": Case("check --weights {tmp}/none.pth -d cpu", 1, "none.pth"),
    "check weights of no registry model": Case("check --weights {w} -d cpu", 1, "cannot tell which model"),
    "check ids and weights": Case("check nafnet-sidd-width64 --weights {w}", 2, "not both"),
    # --- eval ---------------------------------------------------------------------------------------
    "eval ok": Case("eval --restored {pics} --target {pics} -q", 0),
    "eval no source": Case("eval --target {pics} --input {pics}", 2, "exactly one of"),
    "eval no target option": Case("eval --restored {pics}", 2, "--target", one_line=False),
    "eval device absent": Case("eval -m nafnet-sidd-width32 --input {pics} --target {pics} -d cuda:99", 2,
                               "cuda:99"),
    "eval unknown model": Case("eval -m nope --input {pics} --target {pics}", 2, "nope"),
    "eval unreadable image": Case("eval --restored {badpics} --target {badpics} -q", 1, "bad.png"),
    # --- bench --------------------------------------------------------------------------------------
    "bench ok": Case("bench --arch-config {tiny_arch} --size 16 -n 1 --no-reference -p fp32 -d cpu --json", 0,
                     one_line=False),
    "bench zero repeats": Case("bench --arch-config {tiny_arch} --size 16 -n 0 -d cpu", 2, "--repeat must be"),
    "bench zero size": Case("bench --arch-config {tiny_arch} --size 0 -d cpu", 2, "--size must be"),
    "bench negative threads": Case("bench --threads -1 -d cpu", 2, "-1"),
    "bench unknown model": Case("bench -m nope -d cpu", 2, "nope"),
    "bench device absent": Case("bench -d cuda:99", 2, "cuda:99"),
    "bench tile below its overlap": Case("bench --arch-config {tiny_arch} --size 16 --tile 7 -d cpu", 2, "--tile 7"),
}

#: every command has rows: a new command must add its own
COMMANDS = ("denoise", "deblur", "sr", "models list", "models download", "models verify", "models path",
            "models import", "models remove", "check", "eval", "bench")


def test_every_command_is_in_the_table() -> None:
    for command in COMMANDS:
        codes = {c.code for c in CASES.values() if c.args.startswith(command + " ") or c.args == command}
        assert 2 in codes or command == "models remove", command
        assert codes - {2}, f"{command}: a row other than a usage failure"


def _png(path: Path, h: int, w: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("codes")
    img = _png(tmp / "photo.png", 24, 32)
    done = _png(tmp / "done.png", 24, 32, seed=1)
    _png(tmp / "done_denoised.png", 24, 32, seed=2)
    bad = tmp / "bad.png"
    bad.write_text("not an image")
    left, right = _png(tmp / "pair_L.png", 20, 24, 3), _png(tmp / "pair_R.png", 20, 24, 4)
    link = tmp / "link_R.png"
    os.symlink(left, link)
    pics = tmp / "pics"
    pics.mkdir()
    _png(pics / "a.png", 16, 16, 5)
    badpics = tmp / "badpics"
    badpics.mkdir()
    (badpics / "bad.png").write_text("not an image")
    (tmp / "empty").mkdir()
    broken = tmp / "broken.toml"
    broken.write_text("[models.x\n")
    return {
        "tmp": str(tmp), "img": str(img), "done": str(done), "bad": str(bad), "left": str(left),
        "right": str(right), "link": str(link), "pics": str(pics), "badpics": str(badpics),
        "empty": str(tmp / "empty"), "broken_toml": str(broken), "w": str(TINY_WEIGHTS),
        "sr_w": str(SR_WEIGHTS),
        "tiny_arch": 'nafnet:{"width":8,"enc_blk_nums":[1],"middle_blk_num":1,"dec_blk_nums":[1]}',
    }  # fmt: skip


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An empty cache, the built-in registry, and no reachable hub."""
    for var in ("NAFCLI_WEIGHTS_TOML", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "NAFCLI_CACHE",
                "NAFCLI_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")


@pytest.mark.parametrize("name", list(CASES))
def test_exit_code(name: str, paths: dict[str, str], clean_env: None, monkeypatch: pytest.MonkeyPatch,
                   shared: Path) -> None:
    case = CASES[name]
    if case.damaged_cache:
        from nafcli.weights.hub import hub_cache_path
        from nafcli.weights.registry import load_registry

        target = hub_cache_path(load_registry().get("nafnet-sidd-width32"))
        assert target is not None
        target.parent.mkdir(parents=True)
        target.write_bytes(b"PK\x03\x04 half a download")
    for key, value in case.env:
        monkeypatch.setenv(key, value.format(**paths))
    args = [a.format(**paths) for a in case.args.split()]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == case.code, (name, result.output)
    assert "Traceback" not in result.output
    if case.code and case.says:
        assert case.says in result.stderr, (name, result.stderr)
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    if case.code and case.one_line:
        assert len(errors) == 1, (name, result.stderr)
    if case.code == 0:
        assert not errors, (name, result.stderr)


def test_a_finished_batch_validates_but_loads_nothing(paths: dict[str, str], clean_env: None,
                                                     monkeypatch: pytest.MonkeyPatch, shared: Path) -> None:
    """Validation reads no weights: with every output present, a good command line exits 0 without
    load() or a full read of the weights file being called (its first bytes and key names only)."""
    from nafcli.jobs import workflows
    from nafcli.weights import checkpoint, loader

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("weights loaded for a batch with nothing to do")

    monkeypatch.setattr(workflows, "load", refuse)
    monkeypatch.setattr(loader, "read_state_dict", refuse)
    monkeypatch.setattr(checkpoint, "read_state_dict", refuse)
    for args in (f"denoise {paths['done']} -w {paths['w']} -d cpu --tile 64",
                 f"denoise {paths['done']} -m nafnet-sidd-width32 -d cpu"):
        r = CliRunner().invoke(app, args.split())
        assert r.exit_code == 0 and "1 skipped" in r.stderr, r.output
