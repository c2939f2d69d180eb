"""Every command's --help: snapshots of the text a user sees, one metavar per kind of value, one meaning per
short flag, and the defaults named (the task's default model from the registry, the task's suffix, sr's
overlap as a number).

The snapshots are ``tests/snapshots/help/<command>.txt``, rendered in a fresh process at a fixed width
(``COLUMNS=100``, colours off). After changing an option or a help text, refresh them with

    NAFCLI_UPDATE_SNAPSHOTS=1 python -m pytest -q -p no:cacheprovider tests/test_help.py

and review the diff (``git diff tests/snapshots``) before committing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from nafcli.cli.main import app

SNAPSHOTS = Path(__file__).parent / "snapshots" / "help"
WIDTH = 100

#: the one long option each short flag stands for, in every command
SHORT_FLAGS = {"-q": "--quiet", "-t": "--threads", "-m": "--model", "-w": "--weights", "-o": "--output",
               "-d": "--device", "-p": "--precision", "-v": "--verbose", "-h": "--help"}
#: metavars of values that are not a list of choices
KINDS = {"ID", "ID...", "FILE", "DIR", "PATH", "N", "TEXT", "TEMPLATE", "PIXELS", "DEVICE", "INPUT...",
         "ARCH:JSON", "ENCODER", "TIME", "K/N", "ADDRESS"}
_CHOICES = re.compile(r"^[a-z0-9:]+(\|[a-zA-Z0-9:]+)+$")
#: options whose value is of a different kind in different commands (denoise -o: a file or a folder; sr -o:
#: a folder)
DIFFERENT_KINDS = {"--output"}


def _commands() -> dict[tuple[str, ...], object]:
    """Every command and group, by its path below ``nafcli`` (the root is ``()``)."""
    found: dict[tuple[str, ...], object] = {}

    def walk(path: tuple[str, ...], cmd: object) -> None:
        found[path] = cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            walk((*path, name), sub)

    walk((), typer.main.get_command(app))
    return found


COMMANDS = _commands()


def _params(cmd: object) -> list:
    ctx = cmd.make_context("nafcli", [], resilient_parsing=True)  # type: ignore[attr-defined]
    return [p for p in cmd.get_params(ctx) if not getattr(p, "hidden", False)]  # type: ignore[attr-defined]


def _shown(param: object, cmd: object) -> str | None:
    ctx = cmd.make_context("nafcli", [], resilient_parsing=True)  # type: ignore[attr-defined]
    return param.display_type_rich(ctx)  # type: ignore[attr-defined]


_SCRIPT = """
import contextlib, io, json, sys
from nafcli.cli.main import app
texts = {}
for path in json.loads(sys.argv[1]):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            app([*path, "--help"], prog_name="nafcli")
        except SystemExit:
            pass
    texts[" ".join(path)] = buf.getvalue()
print(json.dumps(texts))
"""


@pytest.fixture(scope="module")
def help_texts() -> dict[str, str]:
    """Each command's --help as a user's terminal of 100 columns shows it, trailing blanks removed; one
    fresh process for all (no colours, the built-in registry)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("FORCE_COLOR", "PY_COLORS", "GITHUB_ACTIONS", "NAFCLI_WEIGHTS_TOML")}
    env.update(COLUMNS=str(WIDTH), TERMINAL_WIDTH=str(WIDTH), _TYPER_FORCE_DISABLE_TERMINAL="1", NO_COLOR="1")
    paths = json.dumps([list(p) for p in COMMANDS])
    out = subprocess.run([sys.executable, "-c", _SCRIPT, paths], env=env, capture_output=True, text=True,
                         timeout=300, check=True).stdout
    return {k: "\n".join(line.rstrip() for line in v.strip("\n").splitlines()) + "\n"
            for k, v in json.loads(out).items()}


def _snapshot_name(path: str) -> str:
    return ("nafcli " + path).strip().replace(" ", "-") + ".txt"


def test_help_matches_the_snapshots(help_texts: dict[str, str]) -> None:
    update = os.environ.get("NAFCLI_UPDATE_SNAPSHOTS") == "1"
    expected = {_snapshot_name(p): t for p, t in help_texts.items()}
    if update:
        SNAPSHOTS.mkdir(parents=True, exist_ok=True)
        for old in SNAPSHOTS.glob("*.txt"):
            if old.name not in expected:
                old.unlink()
        for name, text in expected.items():
            (SNAPSHOTS / name).write_text(text, encoding="utf-8")
    stale = sorted(p.name for p in SNAPSHOTS.glob("*.txt") if p.name not in expected)
    assert not stale, f"snapshots of commands that no longer exist: {stale} (refresh: see this module's docstring)"
    for name, text in expected.items():
        snap = SNAPSHOTS / name
        assert snap.is_file(), f"no snapshot {snap} (refresh: see this module's docstring)"
        assert snap.read_text(encoding="utf-8") == text, (
            f"{name} differs from the help shown now; if the change is meant, refresh the snapshots (see "
            "this module's docstring) and review the diff")


def test_help_has_no_type_placeholders(help_texts: dict[str, str]) -> None:
    for path, text in help_texts.items():
        for bad in ("<bool>", "<list[", "<str>", "<int", "<path>", "<file>", "<dir>", "{inputs}", "{ids}",
                    "[inputs]", "[ids]", "(auto)", "{task_"):
            assert bad not in text, f"nafcli {path} --help shows {bad!r}"
        assert not re.search(r"<[a-z]", text), f"nafcli {path} --help: {re.search(r'<[a-z][^>]*>', text)}"


def test_usage_lines_name_arguments_by_metavar(help_texts: dict[str, str]) -> None:
    usage = {p: next(line for line in t.splitlines() if "Usage:" in line).strip() for p, t in help_texts.items()}
    assert usage["denoise"] == "Usage: nafcli denoise [OPTIONS] INPUT..."
    assert usage["deblur"] == "Usage: nafcli deblur [OPTIONS] INPUT..."
    assert usage["sr"] == "Usage: nafcli sr [OPTIONS] [INPUT...]"
    assert usage["check"] == "Usage: nafcli check [OPTIONS] [ID...]"
    assert usage["models download"] == "Usage: nafcli models download [OPTIONS] [ID...]"
    assert usage["models import"] == "Usage: nafcli models import [OPTIONS] FILE"
    assert usage["models path"] == "Usage: nafcli models path [OPTIONS] ID"


def test_short_flags_mean_one_thing_everywhere() -> None:
    meaning: dict[str, set[str]] = {}
    for cmd in COMMANDS.values():
        for p in _params(cmd):
            if p.param_type_name != "option":
                continue
            longs = [o for o in p.opts if o.startswith("--")]
            for short in (o for o in p.opts if not o.startswith("--")):
                meaning.setdefault(short, set()).update(longs)
    for short, longs in meaning.items():
        assert len(longs) == 1, f"{short} means {sorted(longs)} in different commands"
    for short, long in SHORT_FLAGS.items():
        assert meaning.get(short, {long}) == {long}, short
    assert meaning["-q"] == {"--quiet"} and meaning["-t"] == {"--threads"}


def test_one_metavar_per_kind_of_value() -> None:
    by_option: dict[str, set[str | None]] = {}
    for path, cmd in COMMANDS.items():
        for p in _params(cmd):
            shown = _shown(p, cmd)
            name = p.opts[0] if p.opts and p.opts[0].startswith("-") else p.name
            if getattr(p, "is_flag", False):
                assert shown is None, f"nafcli {' '.join(path)} {name}: a flag shows {shown!r}"
                continue
            if p.param_type_name == "argument":
                shown = p.metavar
            assert shown in KINDS or _CHOICES.match(shown or ""), f"nafcli {' '.join(path)} {name}: {shown!r}"
            by_option.setdefault(name, set()).add(shown)
    for name, shown in by_option.items():
        if name not in DIFFERENT_KINDS and name.startswith("--"):
            assert len(shown) == 1, f"{name} shows as {sorted(map(str, shown))} in different commands"
    assert by_option["--model"] == {"ID"}
    assert by_option["--weights"] == {"FILE"}
    assert by_option["--threads"] == by_option["--overlap"] == {"N"}


def test_defaults_are_named(help_texts: dict[str, str]) -> None:
    from nafcli.archs import Strips
    from nafcli.inference.cut_options import DEFAULT_OVERLAP
    from nafcli.weights.registry import load_registry

    flat = {p: " ".join(t.replace("│", " ").split()) for p, t in help_texts.items()}
    reg = load_registry()
    for command, task, suffix in (("denoise", "denoise", "_denoised"), ("deblur", "deblur", "_deblurred"),
                                  ("sr", "stereo-sr", "_sr")):
        entry = reg.default_for(task)
        assert f"Default: {entry.id}, {entry.size / 1e6:.0f} MB, downloaded on first use." in flat[command]
        assert f"Default: {suffix}." in flat[command]
        for other in {"_denoised", "_deblurred", "_sr"} - {suffix}:
            assert other not in flat[command], (command, other)
    assert "NAME_denoised.EXT" in flat["denoise"] and "NAME_deblurred.EXT" in flat["deblur"]
    assert f"Default: {DEFAULT_OVERLAP}." in flat["denoise"]
    tiling = reg.default_for("stereo-sr").spec.tiling(tlc=True)
    assert isinstance(tiling, Strips)
    assert f"Default: {tiling.default_overlap} input rows" in flat["sr"]
    assert "One JSON object per pair (or single image)" in flat["sr"]
    assert "One JSON object per input" in flat["denoise"]
    assert "[default: auto]" in flat["denoise"]  # --tile: the word, not "(auto)"
