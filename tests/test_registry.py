"""The built-in registry against the reference manifests, and the validation of NAFCLI_WEIGHTS_TOML files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import tomllib
from helpers.models import REPO, SHARED

from nafcli.archs import NAFNetSpec, NAFSSRSpec
from nafcli.archs.state_dict import expected_shapes
from nafcli.errors import RegistryError, UnknownModelError
from nafcli.weights.registry import builtin_path, data_dir, load_registry


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NAFCLI_WEIGHTS_TOML", raising=False)


@pytest.fixture
def manifests() -> dict[str, dict]:
    folder = SHARED / "reference" / "manifests"
    if not folder.is_dir():
        pytest.skip("../shared/reference/manifests is absent")
    return {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}


def test_builtin_has_the_13_official_models(manifests: dict[str, dict]) -> None:
    reg = load_registry()
    assert sorted(reg.ids()) == sorted(manifests)
    assert len(reg) == 13


@pytest.mark.parametrize("model_id", sorted([
    "nafnet-sidd-width32", "nafnet-sidd-width64", "nafnet-gopro-width32", "nafnet-gopro-width64",
    "nafnet-reds-width64", "nafssr-t-x2", "nafssr-t-x4", "nafssr-s-x2", "nafssr-s-x4", "nafssr-b-x2",
    "nafssr-b-x4", "nafssr-l-x2", "nafssr-l-x4"]))  # fmt: skip
def test_entry_builds_the_manifest_state_dict(model_id: str, manifests: dict[str, dict]) -> None:
    """The hyperparameters in weights.toml build exactly the official keys and shapes (meta device)."""
    entry = load_registry().get(model_id)
    man = manifests[model_id]
    assert entry.spec.config() == man["config"]
    shapes = expected_shapes(entry.spec)
    want = {k: tuple(s) for k, s in man["state_dict"]}
    assert shapes == want
    params = sum(math.prod(s) for s in shapes.values())
    assert params == man["params"] == entry.params
    assert entry.tlc == (man["official_class"] in ("NAFNetLocal", "NAFSSR"))


def test_defaults_and_sources() -> None:
    reg = load_registry()
    assert reg.default_for("denoise").id == "nafnet-sidd-width32"
    assert reg.default_for("deblur").id == "nafnet-gopro-width32"
    assert reg.default_for("stereo-sr").id == "nafssr-l-x4"
    on_hub = {e.id for e in reg if e.on_hub}
    assert on_hub == {
        "nafnet-sidd-width32", "nafnet-sidd-width64", "nafnet-gopro-width32", "nafnet-gopro-width64",
        "nafnet-reds-width64", "nafssr-l-x4",
    }  # fmt: skip
    for e in reg:
        if e.on_hub:
            assert e.sha256 and len(e.sha256) == 64 and e.size and len(e.revision or "") == 40
        else:
            assert e.url == "https://github.com/megvii-research/NAFNet/blob/main/docs/StereoSR.md"
        assert e.license == "MIT" and e.psnr and e.benchmark
    l4 = reg.get("nafssr-l-x4")
    assert isinstance(l4.spec, NAFSSRSpec) and l4.spec.scale == 4 and l4.repo_type == "space"
    assert isinstance(reg.get("nafnet-gopro-width64").spec, NAFNetSpec)


def test_demo_paths_resolve_against_package_data() -> None:
    e = load_registry().get("nafssr-l-x4")
    assert e.demo_inputs == (data_dir() / "samples/lr_img_l.png", data_dir() / "samples/lr_img_r.png")
    assert e.demo_outputs[0].name == "lr_img_l.nafssr-l-x4.png"
    assert load_registry().get("nafnet-sidd-width64").demo_inputs == (data_dir() / "samples/noisy.png",)


def test_builtin_file_is_the_packaged_one() -> None:
    """The loader finds weights.toml inside the package (what a wheel install has)."""
    p = builtin_path()
    assert p.parent.name == "nafcli" and p.is_file()
    assert tomllib.loads(p.read_text()) == tomllib.loads((REPO / "weights.toml").read_text())


def test_unknown_id_suggests_the_closest() -> None:
    with pytest.raises(UnknownModelError, match="did you mean nafnet-sidd-width32"):
        load_registry().get("nafnet-sid-width32")
    assert load_registry().get("NAFNet-SIDD-width32").id == "nafnet-sidd-width32"


# --- NAFCLI_WEIGHTS_TOML --------------------------------------------------------------------------

GOOD = """
[models.tiny]
task = "denoise"
arch = "nafnet"
width = 8
enc_blk_nums = [1, 1]
middle_blk_num = 1
dec_blk_nums = [1, 1]
file = "tiny.pth"
size = 10
sha256 = "{sha}"
repo_id = "me/tiny"
repo_type = "model"
revision = "{rev}"
default = true
demo_inputs = ["in/a.png"]
"""
SHA = "ab" * 32
REV = "0123456789abcdef0123456789abcdef01234567"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "weights.toml"
    p.write_text(text)
    return p


def test_env_file_replaces_builtin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _write(tmp_path, GOOD.format(sha=SHA, rev=REV))
    monkeypatch.setenv("NAFCLI_WEIGHTS_TOML", str(p))
    reg = load_registry()
    assert reg.ids() == ["tiny"]
    e = reg.get("tiny")
    assert e.spec == NAFNetSpec(width=8, enc_blk_nums=(1, 1), middle_blk_num=1, dec_blk_nums=(1, 1))
    assert e.demo_inputs == (tmp_path.resolve() / "in/a.png",)
    assert e.tlc is False and e.default


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.replace("file =", 'colour = "red"\nfile ='), "unknown field 'colour'"),
        (lambda s: s.replace('file = "tiny.pth"\n', ""), "missing field 'file'"),
        (lambda s: s.replace(SHA, "abc123"), "bad sha256 'abc123'"),
        (lambda s: s.replace(REV, "main"), "bad revision 'main'"),
        (lambda s: s.replace('task = "denoise"', 'task = "paint"'), "unknown task 'paint'"),
        (lambda s: s.replace('arch = "nafnet"', 'arch = "unet"'), "unknown arch 'unet'"),
        (lambda s: s.replace('arch = "nafnet"', 'arch = "nafssr"'), "cannot do task"),
        (lambda s: s.replace("middle_blk_num = 1\n", ""), "missing hyperparameter 'middle_blk_num'"),
        (lambda s: s.replace("width = 8", 'width = 8\nnum_blks = 3'), "unknown field 'num_blks'"),
        (lambda s: s.replace('repo_type = "model"\n', ""), "missing field 'repo_type'"),
        (lambda s: s.replace('repo_type = "model"', 'repo_type = "zoo"'), "bad repo_type 'zoo'"),
        (lambda s: s.replace("size = 10", 'size = "ten"'), "field 'size' must be an integer"),
        (lambda s: s + s.replace("[models.tiny]", "[models.tiny2]"), "2 defaults"),
        (lambda s: s.replace("default = true", "default = false"), "no entry with default = true"),
        (lambda s: s.replace("[models.tiny]", "[models.tiny"), "not valid TOML"),
    ],
)
def test_validation_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit, message: str) -> None:
    p = _write(tmp_path, edit(GOOD.format(sha=SHA, rev=REV)))
    monkeypatch.setenv("NAFCLI_WEIGHTS_TOML", str(p))
    with pytest.raises(RegistryError) as info:
        load_registry()
    text = str(info.value)
    assert message in text
    assert str(p) in text and "\n" not in text


def test_missing_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAFCLI_WEIGHTS_TOML", str(tmp_path / "nope.toml"))
    with pytest.raises(RegistryError, match="not found.*NAFCLI_WEIGHTS_TOML"):
        load_registry()


def test_manual_only_entry_needs_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = GOOD.format(sha=SHA, rev=REV)
    for line in ('repo_id = "me/tiny"\n', 'repo_type = "model"\n', f'revision = "{REV}"\n'):
        text = text.replace(line, "")
    monkeypatch.setenv("NAFCLI_WEIGHTS_TOML", str(_write(tmp_path, text)))
    with pytest.raises(RegistryError, match="'repo_id' or 'url'"):
        load_registry()
    (tmp_path / "weights.toml").write_text(text.replace("file =", 'url = "https://example.org/x"\nfile ='))
    e = load_registry().get("tiny")
    assert not e.on_hub and e.where == "https://example.org/x"
