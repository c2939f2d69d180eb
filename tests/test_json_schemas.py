"""Every command's --json output validated against its JSON Schema (docs/schemas/, documented in
docs/json.md): denoise and deblur (done, skipped, failed, refused), sr (pairs, a single image, a file that
pairs with nothing), eval (mono, stereo, with and without a model), models list and bench; check's are
validated in test_check.py, with its registry of every outcome.

The schemas are JSON Schema (2020-12), so any tool can check nafcli's output; the tests use jsonschema,
the reference Python implementation, rather than a checker of our own that would need tests of its own.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.images import TINY_WEIGHTS, write_broken
from helpers.models import PIPELINE, REPO, SHARED
from helpers.schemas import all_schemas, schema, validate
from PIL import Image as PILImage
from typer.testing import CliRunner

from nafcli.cli.main import app

SR_WEIGHTS = PIPELINE / "sr-nafssr-x4.pth"
needs_weights = pytest.mark.skipif(not TINY_WEIGHTS.exists(), reason="../shared/reference/pipeline is not here")


def _cli(*args: str | Path):  # noqa: ANN202
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def _lines(result) -> list[dict]:  # noqa: ANN001
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def _img(path: Path, h: int = 16, w: int = 24, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def test_the_schemas_are_valid_json_schema_and_documented() -> None:
    from jsonschema import Draft202012Validator

    doc = (REPO / "docs" / "json.md").read_text(encoding="utf-8")
    assert {p.name for p in all_schemas()} == {f"{n}.schema.json" for n in
                                               ("restore", "sr", "eval", "check", "models-list", "bench")}
    for path in all_schemas():
        Draft202012Validator.check_schema(schema(path.name.removesuffix(".schema.json")))
        assert f"schemas/{path.name}" in doc, f"docs/json.md does not link {path.name}"
        body = schema(path.name.removesuffix(".schema.json"))
        fields = body.get("properties") or body.get("items", {}).get("properties", {})
        for field in fields:
            assert re.search(rf"`{re.escape(field)}`", doc), f"docs/json.md does not describe {field!r}"


@needs_weights
def test_denoise_records(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    _img(folder / "a.png")
    _img(folder / "b.png", seed=1)
    shutil.copy(folder / "b.png", folder / "b_denoised.png")  # b's output exists: skipped
    write_broken(folder / "broken")  # failed
    _img(folder / "c.png", seed=2)
    PILImage.open(folder / "c.png").save(folder / "c.jpg")  # c.png + c.jpg with --format png: refused
    result = _cli("denoise", folder, "-r", "-w", TINY_WEIGHTS, "-d", "cpu", "--format", "png", "--json")
    records = _lines(result)
    assert {r["status"] for r in records} == {"done", "skipped", "failed"}
    assert any(r["output"] is None or "also the output of" in (r["error"] or "") for r in records)
    for r in records:
        validate("restore", r)
    done = next(r for r in records if r["status"] == "done")
    assert isinstance(done["input"], str) and done["input_size"] == done["output_size"] == [24, 16]


@pytest.mark.skipif(not (PIPELINE / "deblur-nafnet-local.pth").is_file(), reason="../shared is absent")
def test_deblur_records(tmp_path: Path) -> None:
    result = _cli("deblur", _img(tmp_path / "a.png"), "-w", PIPELINE / "deblur-nafnet-local.pth", "-d", "cpu",
                  "--json")
    (record,) = _lines(result)
    assert record["status"] == "done"
    validate("restore", record)


@pytest.mark.skipif(not SR_WEIGHTS.is_file(), reason="../shared/reference/pipeline is absent")
def test_sr_records(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs"
    _img(pairs / "s_L.png")
    _img(pairs / "s_R.png", seed=1)
    _img(pairs / "lonely.png", seed=2)  # pairs with nothing: a failed single-image record
    folder = _lines(_cli("sr", pairs, "-w", SR_WEIGHTS, "-d", "cpu", "--json"))
    single = _lines(_cli("sr", _img(tmp_path / "mono.png"), "-w", SR_WEIGHTS, "-d", "cpu", "--json"))
    again = _lines(_cli("sr", pairs / "s_L.png", pairs / "s_R.png", "-w", SR_WEIGHTS, "-d", "cpu", "--json"))
    for r in folder + single + again:
        validate("sr", r)
    pair = next(r for r in folder if r["status"] == "done")
    assert isinstance(pair["input"], list) and len(pair["output"]) == 2
    assert pair["input_size"] == [24, 16] and pair["output_size"] == [96, 64]  # x4: sizes say which
    assert next(r for r in folder if r["status"] == "failed")["output"] is None
    assert isinstance(single[0]["input"], str) and isinstance(single[0]["output"], str)
    assert again[0]["status"] == "skipped" and isinstance(again[0]["output"], list)


def test_eval_records(shared, tmp_path: Path) -> None:
    samples = SHARED / "samples"
    inp, target = tmp_path / "in", tmp_path / "gt"
    inp.mkdir()
    target.mkdir()
    shutil.copy(samples / "noisy.png", inp / "noisy.png")
    shutil.copy(samples / "noisy.nafnet-sidd-width64.png", target / "noisy.png")
    run = json.loads(_cli("eval", "--weights", PIPELINE / "denoise-nafnet.pth", "--input", inp, "--target", target,
                          "-d", "cpu", "--json", "-q").stdout)
    scored = json.loads(_cli("eval", "--restored", target, "--target", target, "--json", "-q").stdout)
    assert scored["images"][0]["psnr"] == "inf"  # identical images
    lr, hr = tmp_path / "lr", tmp_path / "hr"
    lr.mkdir()
    hr.mkdir()
    for side, s in (("L", "l"), ("R", "r")):
        shutil.copy(samples / f"lr_img_{s}.png", lr / f"p_{side}.png")
        shutil.copy(PIPELINE / f"sr-nafssr-x4.lr_img_{s}.png", hr / f"p_{side}.png")
    stereo = json.loads(_cli("eval", "--weights", SR_WEIGHTS, "--input", lr, "--target", hr, "--task", "sr",
                             "-d", "cpu", "--json", "-q").stdout)
    for record in (run, scored, stereo):
        validate("eval", record)
    bad = dict(stereo, images=[dict(stereo["images"][0], source=stereo["images"][0]["source"][0])])
    with pytest.raises(AssertionError):
        validate("eval", bad)  # a stereo record with a mono source is refused: the schema has teeth


def test_models_list_records(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NAFCLI_WEIGHTS_TOML", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    validate("models-list", json.loads(_cli("models", "list", "--json").stdout))


def test_bench_records() -> None:
    config = 'nafnet:{"width": 8, "enc_blk_nums": [1, 1], "middle_blk_num": 1, "dec_blk_nums": [1, 1]}'
    result = _cli("bench", "--arch-config", config, "--size", "32", "-n", "1", "-p", "fp32", "--no-reference",
                  "--device", "cpu", "--threads", str(torch.get_num_threads()), "--json")
    validate("bench", json.loads(result.stdout))
