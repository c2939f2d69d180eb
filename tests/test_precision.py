"""Precision that fits the machine: bf16 on a CPU without native bf16 runs with a one-line warning giving
the measured slowdown (library returns it, the command prints it once); auto picks per device and says
why. The capability check is monkeypatched: this machine may well have native bf16."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from nafcli.inference import settings
from nafcli.inference.restorer import Restorer
from nafcli.inference.settings import choose_precision

CPU = torch.device("cpu")


@pytest.fixture
def no_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "native_bf16", lambda device: False)
    monkeypatch.setattr(settings, "measured_slowdown", lambda precision, device_type="cpu": 14.2)


def test_cpu_flags_decide_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "cpu_flags", lambda: frozenset({"avx2", "fma"}))  # the AVX2-only AMD
    assert not settings.native_bf16(CPU)
    monkeypatch.setattr(settings, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))  # Zen 4
    assert settings.native_bf16(CPU)
    monkeypatch.setattr(settings, "cpu_flags", lambda: frozenset({"amx_bf16", "amx_tile"}))  # Xeon with AMX
    assert settings.native_bf16(CPU)


def test_bf16_without_native_bf16_warns_with_the_measured_slowdown(no_native_bf16: None) -> None:
    choice = choose_precision("bf16", CPU)
    assert choice.precision == "bf16"
    assert choice.warning is not None and "\n" not in choice.warning
    assert "no native bf16" in choice.warning and "14x slower than fp32" in choice.warning
    auto = choose_precision("auto", CPU)
    assert auto.precision == "fp32" and auto.warning is None and "no native bf16" in auto.reason
    assert settings.check_precision("bf16", CPU) == "bf16"  # validation only: no measurement, no warning


def test_native_bf16_has_nothing_to_warn_about(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "native_bf16", lambda device: True)
    assert choose_precision("bf16", CPU).warning is None
    auto = choose_precision("auto", CPU)
    assert auto.precision == "bf16" and "natively" in auto.reason


def test_emulated_but_not_slower_is_not_warned_about(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "native_bf16", lambda device: False)
    monkeypatch.setattr(settings, "measured_slowdown", lambda precision, device_type="cpu": 1.1)
    assert choose_precision("bf16", CPU).warning is None


def test_measured_slowdown_is_a_ratio() -> None:
    settings.measured_slowdown.cache_clear()
    factor = settings.measured_slowdown("bf16", "cpu")
    assert factor > 0 and settings.measured_slowdown("bf16", "cpu") == factor  # measured once


def test_restorer_returns_the_warning(no_native_bf16: None) -> None:
    from nafcli.archs import NAFNetSpec
    from nafcli.weights import load

    spec = NAFNetSpec(width=8, enc_blk_nums=(1,), middle_blk_num=1, dec_blk_nums=(1,))
    r = Restorer(load(config=(spec.arch, spec.config()), pretrained=False), device="cpu", precision="bf16")
    assert r.precision == "bf16" and "14x slower" in (r.precision_choice.warning or "")
    _, info = r.run(torch.rand((1, 3, 16, 16)))
    assert info.warnings == []  # said once per run by the caller, not once per image


def test_cli_prints_the_warning_once(no_native_bf16: None, tmp_path: Path, tiny_nafnet_pth: Path) -> None:
    from nafcli.cli.main import app

    for i in range(3):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(tmp_path / f"img{i}.png")
    res = CliRunner().invoke(app, ["denoise", str(tmp_path), "-w", str(tiny_nafnet_pth), "-p", "bf16",
                                   "--device", "cpu", "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    warnings = [ln for ln in res.stderr.splitlines() if "no native bf16" in ln]
    assert len(warnings) == 1 and warnings[0].startswith("warning: precision bf16")
    assert len(list((tmp_path / "out").glob("*.png"))) == 3


# -- fp32 on CUDA is IEEE float32: TF32 off while the forward runs -----------------------------------
# The switches exist in CPU builds of torch too, so what the context does to them is checked here; that
# the GPU's output then matches the reference to 1e-4 is tests/test_bench.py's CUDA test.


def _tf32_state() -> tuple[object, object]:
    return settings._IEEE_FP32._read()


def test_exact_fp32_turns_tf32_off_on_cuda_and_restores_it() -> None:
    before = _tf32_state()
    cuda = torch.device("cuda")
    with settings.exact_fp32(cuda, "fp32"):
        inside = _tf32_state()
        with settings.exact_fp32(cuda, "fp32"):  # nested: still off
            assert _tf32_state() == inside
        assert _tf32_state() == inside  # the inner exit did not restore early
    assert inside in (("ieee", "ieee"), (False, False))
    assert _tf32_state() == before


@pytest.mark.parametrize(("device", "precision"), [("cpu", "fp32"), ("cuda", "bf16"), ("cuda", "fp16")])
def test_exact_fp32_leaves_other_runs_alone(device: str, precision: str) -> None:
    before = _tf32_state()
    with settings.exact_fp32(torch.device(device), precision):
        assert _tf32_state() == before


def test_exact_fp32_restores_after_the_last_of_overlapping_threads() -> None:
    """Two compute threads (a multi-GPU batch) whose forwards overlap: the first to leave must not turn
    TF32 back on under the second; the last one restores the user's setting, also after an error."""
    import threading

    before = _tf32_state()
    cuda = torch.device("cuda")
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[tuple[object, object]] = []

    def a() -> None:
        with settings.exact_fp32(cuda, "fp32"):
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def b() -> None:
        a_in.wait(5)
        try:
            with settings.exact_fp32(cuda, "fp32"):
                b_in.set()
                a_out.wait(5)
                seen.append(_tf32_state())  # a has left; b still runs
                raise RuntimeError("a failing forward")
        except RuntimeError:
            pass

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen and seen[0] != before and seen[0] in (("ieee", "ieee"), (False, False))
    assert _tf32_state() == before
