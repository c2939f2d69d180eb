"""Downloads through huggingface_hub from a real HTTP server on 127.0.0.1 (no network).

huggingface_hub reads HF_ENDPOINT / HF_HOME when it is imported, so every client runs in a subprocess
(``python -m nafcli …`` or a short script) with the environment pointing at the test server and a cache
under tmp_path. The served files are small random checkpoints with the golden "small" configurations.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from helpers.hubserver import HubServer
from helpers.models import REPO

from nafcli._version import __version__
from nafcli.archs import NAFNetSpec, NAFSSRSpec

REV_M = "1111111111111111111111111111111111111111"
REV_S = "2222222222222222222222222222222222222222"


def _checkpoint(spec, seed: int) -> bytes:
    torch.manual_seed(seed)
    module = spec.build(tlc=False)
    sd = {k: torch.randn_like(v) * 0.05 for k, v in module.state_dict().items()}
    buf = io.BytesIO()
    torch.save({"params": sd}, buf)
    return buf.getvalue()


@pytest.fixture(scope="session")
def blobs() -> dict[str, bytes]:
    return {
        "denoise": _checkpoint(NAFNetSpec(8, (1, 1, 2, 2), 2, (1, 1, 1, 1)), 0),
        "deblur": _checkpoint(NAFNetSpec(8, (1, 1, 1, 2), 1, (1, 1, 1, 1)), 1),
        "sr": _checkpoint(NAFSSRSpec(up_scale=2, width=16, num_blks=4), 2),
    }


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


NAFNET_SMALL = "width = 8\nenc_blk_nums = [1, 1, 2, 2]\nmiddle_blk_num = 2\ndec_blk_nums = [1, 1, 1, 1]\n"
NAFNET_LOCAL = "width = 8\nenc_blk_nums = [1, 1, 1, 2]\nmiddle_blk_num = 1\ndec_blk_nums = [1, 1, 1, 1]\n"


def registry_text(b: dict[str, bytes]) -> str:
    def hub(repo: str, kind: str, rev: str, data: bytes) -> str:
        return (
            f'size = {len(data)}\nsha256 = "{sha(data)}"\n'
            f'repo_id = "{repo}"\nrepo_type = "{kind}"\nrevision = "{rev}"\n'
        )

    return (
        '[models.tiny-denoise]\ntask = "denoise"\narch = "nafnet"\n' + NAFNET_SMALL
        + 'file = "tiny-denoise.pth"\ndefault = true\n'
        + hub("test/nafnet-models", "model", REV_M, b["denoise"])
        + '\n[models.tiny-sr]\ntask = "stereo-sr"\narch = "nafssr"\nup_scale = 2\nwidth = 16\nnum_blks = 4\n'
        + 'file = "tiny-sr.pth"\ndefault = true\n' + hub("test/nafssr-space", "space", REV_S, b["sr"])
        + '\n[models.tiny-bad]\ntask = "denoise"\narch = "nafnet"\n' + NAFNET_SMALL
        + 'file = "tiny-bad.pth"\n' + hub("test/nafnet-models", "model", REV_M, b"not what is served")
        + '\n[models.tiny-missing]\ntask = "denoise"\narch = "nafnet"\n' + NAFNET_SMALL
        + 'file = "tiny-missing.pth"\n' + hub("test/nafnet-models", "model", REV_M, b["denoise"])
        + '\n[models.tiny-manual]\ntask = "deblur"\narch = "nafnet"\ntlc = true\n' + NAFNET_LOCAL
        + 'file = "tiny-manual.pth"\ndefault = true\nurl = "https://example.org/drive"\n'
    )  # fmt: skip


@dataclass
class Hub:
    server: HubServer
    home: Path
    toml: Path
    blobs: dict[str, bytes]
    tmp: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "NAFCLI_"))}
        env.update(
            PYTHONPATH=str(REPO),
            HF_HOME=str(self.home),
            HF_ENDPOINT=self.server.url,
            NAFCLI_WEIGHTS_TOML=str(self.toml),
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_XET="1",
            HF_HUB_ETAG_TIMEOUT="5",
            HF_HUB_DOWNLOAD_TIMEOUT="5",
        )
        env.update(extra)
        return env

    def cli(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "nafcli", *args],
            env=self.env(**extra), capture_output=True, text=True, timeout=120, cwd=self.tmp,
        )  # fmt: skip

    def python(self, code: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code], env=self.env(**extra), capture_output=True, text=True, timeout=120
        )

    def snapshot(self, repo_folder: str, rev: str, name: str) -> Path:
        return self.home / "hub" / repo_folder / "snapshots" / rev / name

    def complete_blobs(self, repo_folder: str) -> list[Path]:
        folder = self.home / "hub" / repo_folder / "blobs"
        return [p for p in folder.iterdir() if not p.name.endswith(".incomplete")] if folder.is_dir() else []


@pytest.fixture
def hub(tmp_path: Path, blobs: dict[str, bytes]):
    server = HubServer(
        files={
            ("model", "test/nafnet-models", REV_M, "tiny-denoise.pth"): blobs["denoise"],
            ("model", "test/nafnet-models", REV_M, "tiny-bad.pth"): blobs["denoise"],
            ("space", "test/nafssr-space", REV_S, "tiny-sr.pth"): blobs["sr"],
        }
    ).start()
    toml = tmp_path / "weights.toml"
    toml.write_text(registry_text(blobs))
    h = Hub(server=server, home=tmp_path / "hf", toml=toml, blobs=blobs, tmp=tmp_path)
    yield h
    try:
        server.stop()
    except Exception:  # noqa: BLE001 - a test may have stopped it already
        pass


MODEL_DIR = "models--test--nafnet-models"
SPACE_DIR = "spaces--test--nafssr-space"


def test_first_download_then_cache_hit_with_server_stopped(hub: Hub) -> None:
    r = hub.cli("models", "download", "tiny-denoise")
    assert r.returncode == 0, r.stderr
    path = Path(r.stdout.strip())
    assert path == hub.snapshot(MODEL_DIR, REV_M, "tiny-denoise.pth")
    assert path.read_bytes() == hub.blobs["denoise"]
    # pinned revision, library name and version reach the server
    gets = [e for e in hub.server.log if e[0] == "GET"]
    assert gets and all(f"/resolve/{REV_M}/" in e[1] for e in gets)
    assert all(f"nafcli/{__version__}" in e[3] for e in hub.server.log)
    listing = json.loads(hub.cli("models", "list", "--json").stdout)
    assert {d["id"]: d["downloaded"] for d in listing}["tiny-denoise"] is True

    hub.server.stop()
    again = hub.cli("models", "download", "tiny-denoise")
    assert again.returncode == 0, again.stderr
    assert Path(again.stdout.strip()) == path
    assert hub.cli("models", "path", "tiny-denoise").stdout.strip() == str(path)


def test_space_repo_and_model_repo(hub: Hub) -> None:
    r = hub.cli("models", "download", "tiny-sr", "tiny-denoise")
    assert r.returncode == 0, r.stderr
    sr, dn = (Path(p) for p in r.stdout.split())
    assert sr == hub.snapshot(SPACE_DIR, REV_S, "tiny-sr.pth") and sr.read_bytes() == hub.blobs["sr"]
    assert dn == hub.snapshot(MODEL_DIR, REV_M, "tiny-denoise.pth")
    paths = {e[1] for e in hub.server.log}
    assert f"/spaces/test/nafssr-space/resolve/{REV_S}/tiny-sr.pth" in paths
    assert f"/test/nafnet-models/resolve/{REV_M}/tiny-denoise.pth" in paths


def test_hash_mismatch_is_refused_and_not_kept(hub: Hub) -> None:
    r = hub.cli("models", "download", "tiny-bad")
    assert r.returncode == 1
    msg = r.stderr.strip()
    assert msg.count("\n") == 0 and msg.startswith("error: ")
    assert sha(hub.blobs["denoise"]) in msg and sha(b"not what is served") in msg
    assert not hub.snapshot(MODEL_DIR, REV_M, "tiny-bad.pth").exists()
    assert hub.complete_blobs(MODEL_DIR) == []


def test_404(hub: Hub) -> None:
    r = hub.cli("models", "download", "tiny-missing")
    assert r.returncode == 2  # not obtainable: the environment cannot work (README "Exit codes")
    msg = r.stderr.strip()
    assert "tiny-missing" in msg and "HTTP 404" in msg and "models import" in msg
    assert "--weights" not in msg  # 'models download' has no such option: the message does not offer it
    assert msg.count("\n") == 0


def test_no_network_names_model_url_and_ways_out(hub: Hub) -> None:
    hub.server.stop()
    r = hub.cli("models", "download", "tiny-denoise")
    assert r.returncode == 2
    msg = r.stderr.strip()
    assert msg.count("\n") == 0
    assert f"{hub.server.url}/test/nafnet-models/resolve/{REV_M}/tiny-denoise.pth" in msg
    assert "tiny-denoise" in msg and "models import" in msg and "--weights" not in msg and "--offline" not in msg


def test_a_command_that_takes_weights_offers_them(hub: Hub, tmp_path: Path) -> None:
    """The same failure in denoise, which has --weights, offers it as a way out too."""
    import numpy as np
    from PIL import Image

    img = tmp_path / "photo.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(img)
    hub.server.stop()
    r = hub.cli("denoise", str(img), "--device", "cpu")
    assert r.returncode == 2  # the weights cannot be had: the environment cannot work (README "Exit codes")
    msg = r.stderr.strip().splitlines()[0]
    assert "tiny-denoise" in msg and "models import" in msg and msg.endswith(", or pass --weights FILE")


def test_connection_dropped_mid_file(hub: Hub) -> None:
    # Dropped once: huggingface_hub retries within the same call and the file is whole.
    hub.server.drop = 1
    r = hub.cli("models", "download", "tiny-sr")
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).read_bytes() == hub.blobs["sr"]
    assert hub.server.gets("tiny-sr.pth") >= 2


def test_connection_dropped_for_good_keeps_no_corrupt_file(hub: Hub) -> None:
    hub.server.drop = -1
    r = hub.cli("models", "download", "tiny-denoise")
    assert r.returncode == 2
    assert "cannot download" in r.stderr and r.stderr.strip().count("\n") == 0
    assert not hub.snapshot(MODEL_DIR, REV_M, "tiny-denoise.pth").exists()
    assert hub.complete_blobs(MODEL_DIR) == []
    assert json.loads(hub.cli("models", "list", "--json").stdout)[0]["downloaded"] is False
    hub.server.drop = 0
    retry = hub.cli("models", "download", "tiny-denoise")
    assert retry.returncode == 0, retry.stderr
    assert Path(retry.stdout.strip()).read_bytes() == hub.blobs["denoise"]


def test_two_processes_download_the_same_model(hub: Hub) -> None:
    hub.server.slow = 0.05
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "nafcli", "models", "download", "tiny-denoise"],
            env=hub.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    assert outs[0][0].strip() == outs[1][0].strip()
    assert len(hub.complete_blobs(MODEL_DIR)) == 1
    assert Path(outs[0][0].strip()).read_bytes() == hub.blobs["denoise"]


def test_offline_uses_the_cache_only(hub: Hub) -> None:
    r = hub.cli("models", "download", "tiny-denoise", HF_HUB_OFFLINE="1")
    assert r.returncode == 2 and "offline" in r.stderr and "models download tiny-denoise" in r.stderr
    assert not [e for e in hub.server.log if e[0] == "GET"]
    assert hub.cli("models", "download", "tiny-denoise").returncode == 0
    hub.server.stop()
    r = hub.cli("models", "download", "tiny-denoise", HF_HUB_OFFLINE="1")
    assert r.returncode == 0, r.stderr


LOAD = """
import sys, torch
from nafcli.weights.loader import load_entry
from nafcli.weights.registry import load_registry
if len(sys.argv) > 1 and sys.argv[1] == "nopickle":
    def refuse(*a, **k):
        raise AssertionError("torch.load called")
    torch.load = refuse
m = load_entry(load_registry().get("tiny-denoise"), offline="offline" in sys.argv)
print(m.model_id, m.spec.describe(), m.tlc)
"""


def test_safetensors_copy_after_first_verified_load(hub: Hub) -> None:
    first = hub.python(LOAD)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split()[0] == "tiny-denoise"
    copies = list((hub.home / "nafcli" / "safetensors").glob("tiny-denoise-*.safetensors"))
    assert len(copies) == 1
    hub.server.stop()
    # later loads read no pickle (torch.load would raise), through the public API, offline
    code = LOAD.replace('sys.argv[1] == "nopickle"', "True").replace(
        'm = load_entry(load_registry().get("tiny-denoise"), offline="offline" in sys.argv)',
        "from nafcli import Restorer\n"
        'm = Restorer.from_pretrained("tiny-denoise", device="cpu", offline=True).model',
    )
    second = hub.python(code)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout


def test_cached_file_changed_on_disk_is_caught(hub: Hub) -> None:
    r = hub.cli("models", "download", "tiny-denoise")
    path = Path(r.stdout.strip())
    blob = path.resolve()
    data = bytearray(blob.read_bytes())
    data[-100] ^= 0xFF
    os.chmod(blob, 0o644)
    blob.write_bytes(bytes(data))
    v = hub.cli("models", "verify", "tiny-denoise")
    assert v.returncode == 1 and "SHA-256" in v.stderr
    hub.server.stop()
    load = hub.python(LOAD)  # the marker no longer matches: re-hashed, refused, deleted
    assert load.returncode != 0 and "HashMismatchError" in load.stderr
    assert not path.exists()


def test_cache_not_writable(hub: Hub, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    r = hub.cli("models", "download", "tiny-denoise", HF_HUB_CACHE=str(blocker / "hub"))
    assert r.returncode == 2 and "cannot write the cache" in r.stderr
    if os.geteuid() != 0:  # root ignores permission bits
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        r = hub.cli("models", "download", "tiny-denoise", HF_HUB_CACHE=str(ro))
        assert r.returncode == 2 and "read-only" in r.stderr


def test_denoise_uses_the_task_default_and_model_option(hub: Hub, tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    img = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)).save(img)
    r = hub.cli("denoise", str(img), "-o", str(tmp_path / "a.png"), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "a.png").is_file()
    assert any(e[1].endswith("tiny-denoise.pth") for e in hub.server.log)
    hub.server.stop()
    r = hub.cli("denoise", str(img), "--model", "tiny-denoise", "--offline", "-o", str(tmp_path / "b.png"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "b.png").read_bytes() == (tmp_path / "a.png").read_bytes()


def test_download_all_reports_each_failure_and_honours_hf_hub_cache(hub: Hub, tmp_path: Path) -> None:
    cache = tmp_path / "elsewhere"
    r = hub.cli("models", "download", "--all", HF_HUB_CACHE=str(cache))
    assert r.returncode == 2  # the highest of its failures: tiny-bad's check (1), tiny-missing's 404 (2)
    assert sorted(Path(p).name for p in r.stdout.split()) == ["tiny-denoise.pth", "tiny-sr.pth"]
    assert all(Path(p).is_relative_to(cache) for p in r.stdout.split())
    lines = r.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 2 and "tiny-bad" in errors[0] and "tiny-missing" in errors[1]
    manual = "1 manual-download models not included"
    assert lines[-1].startswith(f"2 downloaded, 0 already in the cache, 2 failed; {manual}")
    assert not (hub.home / "hub").exists()
    again = hub.cli("models", "download", "--all", HF_HUB_CACHE=str(cache))
    # (tiny-bad is served tiny-denoise's bytes: deleting the bad download can take the shared blob along)
    got = re.fullmatch(r"(\d) downloaded, (\d) already in the cache, 2 failed; (.*)", again.stderr.strip().splitlines()[-1])
    assert got is not None and int(got[1]) + int(got[2]) == 2 and int(got[2]) >= 1 and got[3].startswith(manual)
    one = hub.cli("models", "download", "tiny-denoise", HF_HUB_CACHE=str(cache))
    assert one.returncode == 0 and one.stderr == ""  # one model: its path, no summary


def _with_duplicate(hub: Hub) -> None:
    """A second entry on tiny-denoise's file (same repo, revision and file) whose SHA-256 is wrong: a
    mirror's registry or a stale entry."""
    hub.toml.write_text(
        hub.toml.read_text()
        + '\n[models.tiny-dup]\ntask = "denoise"\narch = "nafnet"\n' + NAFNET_SMALL
        + f'file = "tiny-denoise.pth"\nsize = 10\nsha256 = "{sha(b"something else")}"\n'
        + f'repo_id = "test/nafnet-models"\nrepo_type = "model"\nrevision = "{REV_M}"\n'
    )


def test_a_refused_entry_keeps_the_file_another_entry_verified(hub: Hub) -> None:
    _with_duplicate(hub)
    path = hub.snapshot(MODEL_DIR, REV_M, "tiny-denoise.pth")
    assert hub.cli("models", "download", "tiny-denoise").returncode == 0
    for command in (["models", "download", "tiny-dup"], ["models", "verify", "tiny-dup"]):
        r = hub.cli(*command)
        assert r.returncode == 1 and "SHA-256" in r.stderr, r.stderr
    r = hub.cli("models", "download", "tiny-dup")
    assert "kept it: it is the verified file of tiny-denoise" in r.stderr
    assert path.read_bytes() == hub.blobs["denoise"]
    r = hub.cli("models", "remove", "tiny-dup")
    assert r.returncode == 0 and "also the file of tiny-denoise" in r.stderr and path.is_file()
    hub.server.stop()
    r = hub.cli("models", "download", "tiny-denoise", HF_HUB_OFFLINE="1")
    assert r.returncode == 0 and Path(r.stdout.strip()) == path, r.stderr


def test_a_refused_download_keeps_a_file_that_another_entry_can_verify(hub: Hub) -> None:
    _with_duplicate(hub)
    r = hub.cli("models", "download", "tiny-dup")  # the first to ask downloads it, and refuses it
    assert r.returncode == 1 and "kept it" in r.stderr
    hub.server.stop()
    r = hub.cli("models", "download", "tiny-denoise", HF_HUB_OFFLINE="1")
    assert r.returncode == 0, r.stderr


def test_a_refused_file_keeps_a_blob_another_name_links_to(hub: Hub) -> None:
    """tiny-bad.pth has tiny-denoise.pth's content (one blob, two snapshot links) but its entry expects
    another hash: its link goes, the blob stays for tiny-denoise."""
    assert hub.cli("models", "download", "tiny-denoise").returncode == 0
    r = hub.cli("models", "download", "tiny-bad")
    assert r.returncode == 1 and "deleted it" in r.stderr
    assert not hub.snapshot(MODEL_DIR, REV_M, "tiny-bad.pth").exists()
    assert len(hub.complete_blobs(MODEL_DIR)) == 1
    hub.server.stop()
    assert hub.cli("models", "download", "tiny-denoise", HF_HUB_OFFLINE="1").returncode == 0
