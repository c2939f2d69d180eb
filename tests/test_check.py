"""`nafcli check`: the shipped demo data, the comparison itself, and the command on a test registry."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from helpers.models import PIPELINE, SHARED
from helpers.schemas import validate
from typer.testing import CliRunner

from nafcli.quality.check import PASS_DB, run_check, samples_dir

SAMPLES = SHARED / "samples"


def test_demo_images_ship_in_the_package(shared):
    shipped = samples_dir()
    names = sorted(p.name for p in (shared / "samples").iterdir())
    for name in names:
        assert (shipped / name).read_bytes() == (shared / "samples" / name).read_bytes(), name
    assert "megvii-model" in (shipped / "LICENSE").read_text()
    assert "MIT" in (shipped / "README.md").read_text()


def test_builtin_registry_demo_files_are_the_shipped_samples(monkeypatch):
    monkeypatch.delenv("NAFCLI_WEIGHTS_TOML", raising=False)
    from nafcli.weights.registry import load_registry

    checkable = [e for e in load_registry() if e.demo_outputs]
    assert {e.id for e in checkable} >= {"nafnet-sidd-width64", "nafnet-gopro-width64", "nafssr-l-x4"}
    for e in checkable:
        assert len(e.demo_inputs) == len(e.demo_outputs) == (2 if e.task == "stereo-sr" else 1)
        for p in (*e.demo_inputs, *e.demo_outputs):
            assert p.is_file() and p.parent == samples_dir(), p


def _perturbed(src: Path, dst: Path, scale: float = 0.2) -> Path:
    """The same architecture with different values: loads fine, restores differently."""
    sd = torch.load(src, map_location="cpu", weights_only=True)["params"]
    g = torch.Generator().manual_seed(1)
    torch.save({"params": {k: v + scale * torch.randn(v.shape, generator=g) for k, v in sd.items()}}, dst)
    return dst


def _restorer(weights: Path, tlc: bool | None = None):
    from nafcli.inference.restorer import Restorer

    return Restorer.from_file(weights, tlc=tlc, device="cpu", tile=0)


def test_run_check_passes_on_the_reference_pipeline_output(pipeline_index):
    c = pipeline_index["denoise-nafnet"]
    r = run_check(_restorer(PIPELINE / c["weights"]), [SHARED / p for p in c["inputs"]],
                  [PIPELINE / p for p in c["outputs"]], model_id="x")
    assert r.status == "pass" and r.ok
    assert r.psnr is not None and r.psnr >= 60  # equal to within rounding


def test_run_check_stereo_scores_each_view(pipeline_index):
    c = pipeline_index["sr-nafssr-x4"]
    r = run_check(_restorer(PIPELINE / c["weights"]), [SHARED / p for p in c["inputs"]],
                  [PIPELINE / p for p in c["outputs"]], model_id="x")
    assert r.status == "pass"
    assert len(r.views) == 2 and min(r.views) >= 60
    assert r.psnr == pytest.approx(sum(r.views) / 2)


def test_run_check_fails_with_wrong_weights(pipeline_index, tmp_path: Path):
    c = pipeline_index["denoise-nafnet"]
    wrong = _perturbed(PIPELINE / c["weights"], tmp_path / "wrong.pth")
    r = run_check(_restorer(wrong), [SHARED / p for p in c["inputs"]], [PIPELINE / p for p in c["outputs"]],
                  model_id="x")
    assert r.status == "fail" and not r.ok
    assert r.psnr is not None and r.psnr < PASS_DB


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# -- the command, on a test registry ----------------------------------------------------------------


def _entry_toml(mid: str, case: dict, weights: Path, task: str, *, default: bool, demo: bool = True) -> str:
    arch = "nafssr" if task == "stereo-sr" else "nafnet"
    cfg = case["config"]
    hyper = "\n".join(f"{k} = {v}" for k, v in cfg.items())
    tlc = "true" if case["official_class"] in ("NAFNetLocal", "NAFSSR") else "false"
    lines = [f"[models.{mid}]", f'task = "{task}"', f'arch = "{arch}"', f"tlc = {tlc}", hyper,
             f'file = "{weights.name}"', f'sha256 = "{sha256(weights)}"', 'url = "https://example.invalid/weights"',
             f"default = {'true' if default else 'false'}"]
    if demo:
        ins = ", ".join(f'"{SHARED / p}"' for p in case["inputs"])
        outs = ", ".join(f'"{PIPELINE / p}"' for p in case["outputs"])
        lines += [f"demo_inputs = [{ins}]", f"demo_outputs = [{outs}]"]
    return "\n".join(lines) + "\n\n"


@pytest.fixture
def test_registry(shared, pipeline_index, tmp_path: Path, monkeypatch) -> Path:
    """A registry of the small reference models, a wrong-weights model, one without a published output and
    one not downloaded; the cache in tmp_path, the first four imported into it."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("NAFCLI_CACHE", str(tmp_path / "nafcli-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    idx = pipeline_index
    wrong = _perturbed(PIPELINE / idx["denoise-nafnet"]["weights"], tmp_path / "wrong.pth")
    toml = (
        _entry_toml("small-denoise", idx["denoise-nafnet"], PIPELINE / "denoise-nafnet.pth", "denoise", default=True)
        + _entry_toml("small-deblur", idx["deblur-nafnet-local"], PIPELINE / "deblur-nafnet-local.pth", "deblur",
                      default=True)
        + _entry_toml("small-sr", idx["sr-nafssr-x4"], PIPELINE / "sr-nafssr-x4.pth", "stereo-sr", default=True)
        + _entry_toml("wrong-denoise", idx["denoise-nafnet"], wrong, "denoise", default=False)
        + _entry_toml("no-demo", idx["denoise-nafnet"], PIPELINE / "denoise-nafnet.pth", "denoise", default=False,
                      demo=False)
        + _entry_toml("absent", idx["denoise-nafnet"], PIPELINE / "denoise-nafnet.pth", "denoise", default=False)
    )
    path = tmp_path / "weights.toml"
    path.write_text(toml)
    monkeypatch.setenv("NAFCLI_WEIGHTS_TOML", str(path))
    from nafcli.weights import hub
    from nafcli.weights.registry import load_registry

    reg = load_registry()
    for mid, src in [("small-denoise", PIPELINE / "denoise-nafnet.pth"),
                     ("small-deblur", PIPELINE / "deblur-nafnet-local.pth"),
                     ("small-sr", PIPELINE / "sr-nafssr-x4.pth"), ("wrong-denoise", wrong),
                     ("no-demo", PIPELINE / "denoise-nafnet.pth")]:
        hub.import_file(reg.get(mid), src)  # "downloaded": a verified file in the cache
    return path


def test_check_command_passes_on_faithful_models(test_registry):
    from nafcli.cli.main import app

    result = CliRunner().invoke(app, ["check", "small-denoise", "small-deblur", "small-sr", "--json", "-d", "cpu"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert [m["id"] for m in data["models"]] == ["small-denoise", "small-deblur", "small-sr"]
    for m in data["models"]:
        assert m["status"] == "pass", m
        assert m["psnr"] == "inf" or m["psnr"] >= 60
    assert len(data["models"][2]["views"]) == 2


def test_check_command_reports_every_outcome_and_fails_on_wrong_weights(test_registry):
    from nafcli.cli.main import app

    result = CliRunner().invoke(app, ["check", "wrong-denoise", "no-demo", "absent", "-d", "cpu", "-q"])
    assert result.exit_code == 1, result.output
    rows = {ln.split()[0]: ln for ln in result.stdout.splitlines()[1:]}
    assert "FAIL" in rows["wrong-denoise"]
    assert "not checkable" in rows["no-demo"]
    assert "not downloaded" in rows["absent"]
    as_json = json.loads(CliRunner().invoke(app, ["check", "small-denoise", "wrong-denoise", "absent", "-d", "cpu",
                                                  "-q", "--json"]).stdout)
    by_id = {m["id"]: m for m in as_json["models"]}
    assert by_id["small-denoise"]["status"] == "pass"
    assert by_id["wrong-denoise"]["status"] == "fail" and by_id["wrong-denoise"]["psnr"] < PASS_DB
    assert by_id["absent"]["status"] == "not-downloaded" and by_id["absent"]["psnr"] is None
    assert as_json["ok"] is False
    validate("check", as_json)  # docs/json.md
    every = json.loads(CliRunner().invoke(app, ["check", "-d", "cpu", "-q", "--json"]).stdout)
    assert {m["status"] for m in every["models"]} == {"pass", "fail", "not-checkable", "not-downloaded"}
    validate("check", every)


def test_check_default_is_every_registry_model(test_registry, monkeypatch):
    from nafcli.quality import check

    seen: list[str] = []

    def fake(entry, **kw):
        seen.append(entry.id)
        return check.CheckResult(entry.id, "not-downloaded")

    monkeypatch.setattr(check, "check_entry", fake)
    check.check_models()
    assert seen == ["small-denoise", "small-deblur", "small-sr", "wrong-denoise", "no-demo", "absent"]


def test_check_unknown_id_is_one_line(test_registry):
    from nafcli.cli.main import app

    result = CliRunner().invoke(app, ["check", "small-denoize"])
    assert result.exit_code == 2
    assert "unknown model 'small-denoize'" in result.stderr and "small-denoise" in result.stderr


def test_eval_with_a_registry_model_equals_eval_with_its_file(test_registry, tmp_path: Path):
    """`nafcli eval --model ID` loads the registry model as the other commands do (TLC from the entry)."""
    import shutil

    from nafcli.cli.main import app

    inp, target = tmp_path / "in", tmp_path / "gt"
    inp.mkdir()
    target.mkdir()
    shutil.copy(SAMPLES / "noisy.png", inp / "noisy.png")
    shutil.copy(SAMPLES / "noisy.nafnet-sidd-width64.png", target / "noisy.png")
    common = ["--input", str(inp), "--target", str(target), "-d", "cpu", "--json", "-q"]
    by_id = CliRunner().invoke(app, ["eval", "--model", "small-denoise", *common])
    by_file = CliRunner().invoke(app, ["eval", "--weights", str(PIPELINE / "denoise-nafnet.pth"), *common])
    assert by_id.exit_code == 0, by_id.output
    a, b = json.loads(by_id.stdout), json.loads(by_file.stdout)
    assert a["model"] == "small-denoise"
    assert a["mean"] == b["mean"]
    wrong_task = CliRunner().invoke(app, ["eval", "--model", "small-denoise", "--task", "sr", *common])
    assert wrong_task.exit_code == 2


def test_check_a_file_obtained_by_hand(test_registry, tmp_path: Path):
    """--weights FILE: as -m ID, or the model it is found to be; a file that fits no checkable model, or
    several, is exit code 1 with the reason."""
    from nafcli.cli.main import app

    def check(*args: str):
        return CliRunner().invoke(app, ["check", *args, "-d", "cpu", "-q"])

    by_hash = check("--weights", str(PIPELINE / "sr-nafssr-x4.pth"), "--json")
    assert by_hash.exit_code == 0, by_hash.output
    (row,) = json.loads(by_hash.stdout)["models"]
    assert row["id"] == "small-sr" and row["status"] == "pass" and "sr-nafssr-x4.pth" in row["message"]

    named = check("--weights", str(PIPELINE / "denoise-nafnet.pth"), "-m", "small-denoise")
    assert named.exit_code == 0 and "PASS" in named.stdout, named.output
    wrong = check("--weights", str(tmp_path / "wrong.pth"), "-m", "small-denoise")
    assert wrong.exit_code == 1 and "FAIL" in wrong.stdout
    # four registry models share the denoise file's architecture, three its hash and name: no guess
    ambiguous = check("--weights", str(PIPELINE / "denoise-nafnet.pth"))
    assert ambiguous.exit_code == 1 and "cannot tell which model" in ambiguous.stderr and "-m ID" in ambiguous.stderr
    unpublished = check("--weights", str(PIPELINE / "denoise-nafnet.pth"), "-m", "no-demo")
    assert unpublished.exit_code == 1 and "not checkable" in unpublished.stdout
    # the file was given: the way out is not "check a file with --weights FILE"
    assert "so a file of another model cannot be" in unpublished.stderr and "--weights" not in unpublished.stderr
    other_arch = check("--weights", str(PIPELINE / "sr-nafssr-x4.pth"), "-m", "small-denoise")
    assert other_arch.exit_code == 1 and "holds NAFSSR" in other_arch.stderr
    assert check("--weights", str(tmp_path / "absent.pth")).exit_code == 1
    assert check("small-denoise", "--weights", str(PIPELINE / "denoise-nafnet.pth")).exit_code == 2


def test_check_exits_1_when_it_checked_nothing(test_registry):
    from nafcli.cli.main import app
    from nafcli.quality.check import CheckResult, exit_code

    named = CliRunner().invoke(app, ["check", "no-demo", "absent", "-d", "cpu"])
    assert named.exit_code == 1
    assert "nothing was checked: only small-denoise, small-deblur, small-sr, wrong-denoise, absent can be checked" \
        in named.stderr
    # without ids, models not downloaded or without an output are listed; one that ran decides
    listed = [CheckResult("a", "not-downloaded"), CheckResult("b", "not-checkable")]
    assert exit_code(listed) == 1
    assert exit_code([*listed, CheckResult("c", "pass")]) == 0
    assert exit_code([*listed, CheckResult("c", "pass"), CheckResult("d", "fail")]) == 1
    assert exit_code([CheckResult("c", "pass"), CheckResult("a", "not-downloaded", requested=True)]) == 1
