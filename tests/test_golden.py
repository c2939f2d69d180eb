"""Golden parity: the authors' outputs for small random-weight models, within 1e-4 (float32, CPU)."""

from __future__ import annotations

import pytest
import torch
from helpers.models import SHARED
from safetensors.torch import load_file

from nafcli.weights import load

GOLDEN = SHARED / "reference" / "golden"
CASES = ["nafnet-small", "nafnet-small-batch", "nafnet-local-small", "nafnet-local-small-mixed",
         "nafssr-small-x2", "nafssr-small-x4"]


@pytest.mark.parametrize("name", CASES)
def test_golden_case(name, golden_index):
    case = golden_index[name]
    tlc = case["official_class"] in ("NAFNetLocal", "NAFSSR")
    model = load(weights=GOLDEN / case["weights"], tlc=tlc)
    assert model.spec.config() == case["config"]
    io = load_file(str(GOLDEN / case["io"]))
    with torch.inference_mode():
        out = model.module(io["input"])
    assert list(out.shape) == case["output_shape"]
    assert (out - io["output"]).abs().max().item() <= 1e-4


def test_golden_index_is_fully_covered(golden_index):
    assert sorted(golden_index) == sorted(CASES)
