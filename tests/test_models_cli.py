"""``nafcli models``: list, import, verify, path, remove, and the errors with a way out (no server needed)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.models import REPO
from typer.testing import CliRunner

from nafcli.archs import NAFNetSpec, NAFSSRSpec
from nafcli.cli.main import app

runner = CliRunner()

LOCAL = NAFNetSpec(8, (1, 1, 1, 2), 1, (1, 1, 1, 1))


def _save(spec, path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    sd = {k: torch.randn_like(v) for k, v in spec.build(tlc=False).state_dict().items()}
    buf = io.BytesIO()
    torch.save({"params": sd}, buf)
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache in tmp_path and a registry with one hash-pinned and one architecture-checked manual model."""
    import hashlib

    pinned = _save(LOCAL, tmp_path / "pinned-src.pth", seed=1)
    digest = hashlib.sha256(pinned.read_bytes()).hexdigest()
    arch = "width = 8\nenc_blk_nums = [1, 1, 1, 2]\nmiddle_blk_num = 1\ndec_blk_nums = [1, 1, 1, 1]\n"
    (tmp_path / "w.toml").write_text(
        f'[models.man-a]\ntask = "deblur"\narch = "nafnet"\n{arch}file = "MAN-A.pth"\ndefault = true\n'
        'url = "https://example.org/a"\n'
        f'\n[models.man-b]\ntask = "deblur"\narch = "nafnet"\n{arch}file = "MAN-B.pth"\n'
        f'url = "https://example.org/b"\nsha256 = "{digest}"\n'
    )
    monkeypatch.setenv("NAFCLI_WEIGHTS_TOML", str(tmp_path / "w.toml"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "NAFCLI_CACHE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_list_json_builtin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NAFCLI_WEIGHTS_TOML", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    r = runner.invoke(app, ["models", "list", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert len(rows) == 13
    row = {d["id"]: d for d in rows}["nafnet-sidd-width32"]
    assert row["default"] and not row["downloaded"] and row["psnr"] == 39.9672 and row["size"] == 116861841
    table = runner.invoke(app, ["models", "list"])
    assert table.exit_code == 0
    assert "nafssr-l-x4" in table.stdout and "39.97 / 0.9599 SIDD" in table.stdout


def test_models_list_does_not_import_torch(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "nafcli", "models", "list"],
        env={"PYTHONPATH": str(REPO), "HF_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    modules = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    assert "nafcli.weights.registry" in modules
    assert "torch" not in modules and "huggingface_hub.file_download" not in modules


def test_import_by_architecture_then_verify_path_remove(env: Path) -> None:
    src = _save(LOCAL, env / "download.pth", seed=5)
    r = runner.invoke(app, ["models", "import", str(src), "--as", "man-a"])
    assert r.exit_code == 0, r.output
    dest = Path(r.stdout.strip())
    assert dest.read_bytes() == src.read_bytes() and dest.name == "MAN-A.pth"
    assert runner.invoke(app, ["models", "path", "man-a"]).stdout.strip() == str(dest)
    v = runner.invoke(app, ["models", "verify", "man-a"])
    assert v.exit_code == 0 and "man-a\tok" in v.stdout
    # the imported copy changes on disk: verify compares with the hash recorded at import
    data = bytearray(dest.read_bytes())
    data[-50] ^= 1
    dest.write_bytes(bytes(data))
    v = runner.invoke(app, ["models", "verify", "man-a"])
    assert v.exit_code == 1 and "SHA-256" in v.stderr
    rm = runner.invoke(app, ["models", "remove", "man-a"])
    assert rm.exit_code == 0 and str(dest) in rm.stdout and not dest.exists()
    p = runner.invoke(app, ["models", "path", "man-a"])
    assert p.exit_code == 1 and "not downloaded" in p.stderr


def test_importing_the_same_file_twice_says_so_and_rewrites_nothing(env: Path) -> None:
    import os

    src = _save(LOCAL, env / "download.pth", seed=5)
    first = runner.invoke(app, ["models", "import", str(src), "--as", "man-a"])
    assert first.exit_code == 0 and "imported" in first.stderr, first.output
    dest = Path(first.stdout.strip())
    os.utime(dest, ns=(1, 1))  # so that any rewrite shows
    again = runner.invoke(app, ["models", "import", str(src), "--as", "man-a"])
    assert again.exit_code == 0, again.output
    assert "already imported as man-a" in again.stderr and "nothing rewritten" in again.stderr
    assert again.stdout.strip() == str(dest) and dest.stat().st_mtime_ns == 1
    other = _save(LOCAL, env / "newer.pth", seed=6)
    replaced = runner.invoke(app, ["models", "import", str(other), "--as", "man-a"])
    assert replaced.exit_code == 0 and "replacing the file imported before" in replaced.stderr
    assert dest.read_bytes() == other.read_bytes()


def test_import_refuses_another_architecture(env: Path) -> None:
    src = _save(NAFSSRSpec(up_scale=2, width=16, num_blks=2), env / "sr.pth")
    r = runner.invoke(app, ["models", "import", str(src), "--as", "man-a"])
    assert r.exit_code == 1
    assert "holds NAFSSR" in r.stderr and "man-a is NAFNet" in r.stderr and "not imported" in r.stderr


def test_import_checks_the_known_hash(env: Path) -> None:
    other = _save(LOCAL, env / "other.pth", seed=9)
    r = runner.invoke(app, ["models", "import", str(other), "--as", "man-b"])
    assert r.exit_code == 1 and "SHA-256" in r.stderr and "must have" in r.stderr
    # found by its hash without --as
    r = runner.invoke(app, ["models", "import", str(env / "pinned-src.pth")])
    assert r.exit_code == 0, r.output
    assert "as man-b" in r.stderr


def test_import_finds_the_model_by_architecture_whatever_the_name(env: Path) -> None:
    src = _save(LOCAL, env / "mystery.pth", seed=3)  # man-a's architecture; man-a has no known hash
    r = runner.invoke(app, ["models", "import", str(src)])
    assert r.exit_code == 0, r.output
    assert f"imported {src} as man-a" in r.stderr and Path(r.stdout.strip()).name == "MAN-A.pth"


def test_import_of_an_architecture_no_model_has(env: Path) -> None:
    src = _save(NAFNetSpec(8, (1, 1), 1, (1, 1)), env / "other.pth")
    r = runner.invoke(app, ["models", "import", str(src)])
    assert r.exit_code == 1  # the file was refused, like a hash mismatch (README "Exit codes")
    assert "holds NAFNet" in r.stderr and "which is no registry model" in r.stderr and "--weights" in r.stderr


def test_import_of_an_architecture_several_models_have(env: Path) -> None:
    text = (env / "w.toml").read_text()
    (env / "w.toml").write_text(text + text.split("[models.man-b]")[0].replace("man-a", "man-c")
                                .replace("MAN-A", "MAN-C").replace("default = true\n", ""))
    src = _save(LOCAL, env / "mystery.pth", seed=3)
    r = runner.invoke(app, ["models", "import", str(src)])
    assert r.exit_code == 1 and "man-a, man-c" in r.stderr and "--as ID" in r.stderr


def test_import_of_an_official_file_under_another_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """NAFSSR-T x4 is published on Google Drive only (no hash in the registry): saved as nafssr-t-x4.pth it
    is still recognised, by the architecture its tensors describe."""
    monkeypatch.delenv("NAFCLI_WEIGHTS_TOML", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "NAFCLI_CACHE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    src = _save(NAFSSRSpec(up_scale=4, width=48, num_blks=16), tmp_path / "nafssr-t-x4.pth")
    r = runner.invoke(app, ["models", "import", str(src)])
    assert r.exit_code == 0, r.output
    assert "as nafssr-t-x4" in r.stderr
    rows = {d["id"]: d for d in json.loads(runner.invoke(app, ["models", "list", "--json"]).stdout)}
    assert rows["nafssr-t-x4"]["downloaded"] and not rows["nafssr-t-x2"]["downloaded"]


def test_list_marks_manual_downloads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NAFCLI_WEIGHTS_TOML", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    rows = {d["id"]: d for d in json.loads(runner.invoke(app, ["models", "list", "--json"]).stdout)}
    assert rows["nafssr-t-x2"]["download"] == "manual" and rows["nafssr-l-x4"]["download"] == "hub"
    table = runner.invoke(app, ["models", "list"]).stdout
    line = next(row for row in table.splitlines() if row.startswith("nafssr-t-x2 "))
    assert "manual" in line.split() and "?" not in line.split()
    assert "manual: published only on the authors' page" in table and "nafcli models import FILE" in table


def test_drive_only_model_names_the_authors_page(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NAFCLI_WEIGHTS_TOML", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    r = runner.invoke(app, ["models", "download", "nafssr-t-x2"])
    assert r.exit_code == 2  # not obtainable here: the environment cannot work
    assert "https://github.com/megvii-research/NAFNet/blob/main/docs/StereoSR.md" in r.stderr
    assert "nafcli models import NAFSSR-T_2x.pth --as nafssr-t-x2" in r.stderr


def test_unknown_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NAFCLI_WEIGHTS_TOML", raising=False)
    r = runner.invoke(app, ["models", "path", "nafnet-gopro-width6"])
    assert r.exit_code == 2 and "did you mean nafnet-gopro-width64" in r.stderr


def test_download_needs_ids_or_all(env: Path) -> None:
    assert runner.invoke(app, ["models", "download"]).exit_code == 2


def _photo(path: Path) -> Path:
    import numpy as np
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)).save(path)
    return path


def test_restore_with_a_drive_only_default_says_how_to_import(env: Path) -> None:
    r = runner.invoke(app, ["deblur", str(_photo(env / "p.png")), "--offline", "-o", str(env / "o.png")])
    assert r.exit_code == 2
    assert "https://example.org/a" in r.stderr and "nafcli models import MAN-A.pth --as man-a" in r.stderr


def test_restore_refuses_a_model_of_another_task(env: Path) -> None:
    r = runner.invoke(app, ["denoise", str(_photo(env / "p.png")), "--model", "man-a"])
    assert r.exit_code == 2 and "man-a is for deblur, not denoise" in r.stderr


def test_restore_with_an_imported_model_and_weights_or_model_not_both(env: Path) -> None:
    """The imported model is the task's default and gives what its file gives; --weights and --model
    together are refused (the loader takes one source; --weights no longer silently wins)."""
    img = _photo(env / "p.png")
    src = _save(LOCAL, env / "download.pth", seed=5)
    assert runner.invoke(app, ["models", "import", str(src), "--as", "man-a"]).exit_code == 0
    a = runner.invoke(app, ["deblur", str(img), "--offline", "--device", "cpu", "-o", str(env / "a.png")])
    assert a.exit_code == 0, a.output
    other = _save(LOCAL, env / "other.pth", seed=6)
    both = ["-w", str(other), "--model", "man-a"]
    refused = runner.invoke(app, ["deblur", str(img), *both, "--device", "cpu", "-o", str(env / "both.png")])
    assert refused.exit_code == 2 and "give only one of --model, --weights" in refused.stderr
    assert not (env / "both.png").exists()
    b = runner.invoke(app, ["deblur", str(img), "-w", str(other), "--device", "cpu", "-o", str(env / "b.png")])
    assert b.exit_code == 0, b.output
    c = runner.invoke(app, ["deblur", str(img), "-w", str(src), "--device", "cpu", "-o", str(env / "c.png")])
    assert c.exit_code == 0, c.output
    assert (env / "a.png").read_bytes() == (env / "c.png").read_bytes() != (env / "b.png").read_bytes()
