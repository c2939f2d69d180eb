"""Loader: wrappers, formats, detection, and one error type per failure."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from helpers.models import TINY_NAFNET, TINY_NAFSSR, random_state_dict
from safetensors.torch import save_file

from nafcli.archs import MonoModel, NAFNetSpec, NAFSSRSpec, StereoModel, detect
from nafcli.errors import (
    CheckpointError,
    InconsistentShapesError,
    NotACheckpointError,
    TruncatedCheckpointError,
    UnknownArchitectureError,
)
from nafcli.weights import load
from nafcli.weights.checkpoint import build_model, read_state_dict, save_safetensors


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {"params": sd},
        lambda sd: {"params_ema": sd},
        lambda sd: {"state_dict": sd},
        lambda sd: sd,
        lambda sd: {"params": {f"module.{k}": v for k, v in sd.items()}},
        lambda sd: {f"module.{k}": v for k, v in sd.items()},
    ],
    ids=["params", "params_ema", "state_dict", "bare", "params+module", "bare+module"],
)
def test_pth_wrappers_are_unwrapped(tmp_path: Path, tiny_nafnet_sd, wrap):
    p = tmp_path / "w.pth"
    torch.save(wrap(tiny_nafnet_sd), p)
    assert _same(read_state_dict(p), tiny_nafnet_sd)


def test_params_ema_is_preferred_over_params(tmp_path: Path, tiny_nafnet_sd):
    other = {k: v + 1 for k, v in tiny_nafnet_sd.items()}
    p = tmp_path / "w.pth"
    torch.save({"params": other, "params_ema": tiny_nafnet_sd}, p)
    assert _same(read_state_dict(p), tiny_nafnet_sd)


def test_legacy_pickle_format(tmp_path: Path, tiny_nafnet_sd):
    p = tmp_path / "legacy.pth"
    torch.save({"params": tiny_nafnet_sd}, p, _use_new_zipfile_serialization=False)
    assert _same(read_state_dict(p), tiny_nafnet_sd)


def test_safetensors_recognised_by_content_not_extension(tmp_path: Path, tiny_nafnet_sd):
    p = tmp_path / "weights.bin"
    save_file(tiny_nafnet_sd, str(p))
    assert _same(read_state_dict(p), tiny_nafnet_sd)
    q = tmp_path / "copy.safetensors"
    save_safetensors(tiny_nafnet_sd, q)
    assert _same(read_state_dict(q), tiny_nafnet_sd)


@pytest.mark.parametrize(
    "config",
    [
        TINY_NAFNET,
        {"width": 16, "enc_blk_nums": [2, 1, 3], "middle_blk_num": 2, "dec_blk_nums": [1, 2, 1]},
        {"width": 32, "enc_blk_nums": [1, 1, 1, 28], "middle_blk_num": 1, "dec_blk_nums": [1, 1, 1, 1]},
    ],
)
def test_detects_nafnet_hyperparameters(config):
    sd = random_state_dict("nafnet", config)
    spec = detect(sd)
    assert isinstance(spec, NAFNetSpec)
    assert spec.config() == config


@pytest.mark.parametrize("scale,width,blocks", [(2, 8, 2), (4, 16, 3), (3, 8, 1)])
def test_detects_nafssr_hyperparameters(scale, width, blocks):
    sd = random_state_dict("nafssr", {"up_scale": scale, "width": width, "num_blks": blocks})
    spec = detect(sd)
    assert isinstance(spec, NAFSSRSpec)
    assert (spec.up_scale, spec.width, spec.num_blks) == (scale, width, blocks)


def test_load_builds_typed_descriptors(tiny_nafnet_pth):
    mono = load(weights=tiny_nafnet_pth)
    assert isinstance(mono, MonoModel) and mono.views == 1
    assert (mono.scale, mono.spec.size_multiple, mono.in_channels, mono.tlc) == (1, 4, 3, False)
    stereo = load(weights=random_state_dict("nafssr", TINY_NAFSSR))
    assert isinstance(stereo, StereoModel) and stereo.views == 2
    assert (stereo.scale, stereo.spec.size_multiple, stereo.tlc) == (2, 1, True)


def test_tlc_is_an_option_not_a_property_of_the_file():
    sd = random_state_dict("nafnet", TINY_NAFNET, std=1.0)
    x = torch.rand(1, 3, 64, 80)
    plain = load(weights=sd, tlc=False)
    local = load(weights=sd, tlc=True)
    local.module.set_tlc(True)
    for blk in local.module.encoders[0]:
        blk.sca[0].window = (16, 16)  # a window smaller than the map, so TLC changes the result
    with torch.inference_mode():
        a, b = plain.module(x), local.module(x)
    assert (a - b).abs().max() > 1e-4
    local.set_tlc(False)
    with torch.inference_mode():
        assert torch.equal(plain.module(x), local.module(x))


def test_loaded_weights_are_the_files(tiny_nafnet_sd):
    model = load(weights={"params": tiny_nafnet_sd})
    assert _same(model.module.state_dict(), tiny_nafnet_sd)


# --- failures ---------------------------------------------------------------------------------------


def _one_line(err: Exception) -> str:
    msg = str(err)
    assert "\n" not in msg and msg
    return msg


def test_text_file_is_not_a_checkpoint(tmp_path: Path):
    p = tmp_path / "notes.pth"
    p.write_text("hello, these are not weights\n")
    with pytest.raises(NotACheckpointError) as e:
        load(weights=p)
    assert str(p) in _one_line(e.value)


def test_empty_file_is_not_a_checkpoint(tmp_path: Path):
    p = tmp_path / "empty.pth"
    p.write_bytes(b"")
    with pytest.raises(NotACheckpointError):
        read_state_dict(p)


def test_missing_file(tmp_path: Path):
    with pytest.raises(CheckpointError, match="no such file"):
        read_state_dict(tmp_path / "absent.pth")


def test_pickled_objects_are_refused(tmp_path: Path):
    p = tmp_path / "module.pth"
    torch.save(torch.nn.Conv2d(1, 1, 1), p)  # a whole module, not a state dict
    with pytest.raises(NotACheckpointError) as e:
        read_state_dict(p)
    _one_line(e.value)


def test_plain_pickle_of_a_non_dict(tmp_path: Path):
    p = tmp_path / "list.pth"
    torch.save([1, 2, 3], p)
    with pytest.raises(NotACheckpointError):
        read_state_dict(p)
    q = tmp_path / "raw.pkl"
    q.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(NotACheckpointError):
        read_state_dict(q)


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.999])
def test_truncated_pth(tmp_path: Path, tiny_nafnet_pth, fraction):
    data = tiny_nafnet_pth.read_bytes()
    p = tmp_path / "cut.pth"
    p.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(TruncatedCheckpointError) as e:
        read_state_dict(p)
    assert "truncated" in _one_line(e.value)


@pytest.mark.parametrize("fraction", [0.001, 0.5, 0.99])
def test_truncated_safetensors(tmp_path: Path, tiny_nafnet_sd, fraction):
    full = tmp_path / "full.safetensors"
    save_file(tiny_nafnet_sd, str(full))
    data = full.read_bytes()
    p = tmp_path / "cut.safetensors"
    p.write_bytes(data[: max(16, int(len(data) * fraction))])
    with pytest.raises(TruncatedCheckpointError):
        read_state_dict(p)


def test_unknown_architecture(tmp_path: Path):
    p = tmp_path / "other.pth"
    torch.save({"params": {"conv_first.weight": torch.zeros(8, 3, 3, 3), "conv_first.bias": torch.zeros(8)}}, p)
    with pytest.raises(UnknownArchitectureError) as e:
        load(weights=p)
    assert "unknown architecture" in _one_line(e.value)


def test_inconsistent_shapes(tiny_nafnet_sd):
    sd = dict(tiny_nafnet_sd)
    sd["encoders.0.0.conv1.weight"] = torch.zeros(12, 8, 1, 1)
    with pytest.raises(InconsistentShapesError) as e:
        load(weights=sd)
    assert "encoders.0.0.conv1.weight" in _one_line(e.value)


def test_missing_and_extra_tensors(tiny_nafnet_sd):
    sd = dict(tiny_nafnet_sd)
    del sd["ending.bias"]
    with pytest.raises(InconsistentShapesError, match="ending.bias"):
        load(weights=sd)
    sd = dict(tiny_nafnet_sd)
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(InconsistentShapesError, match="extra.weight"):
        load(weights=sd)


def test_expected_spec_mismatch(tiny_nafnet_sd):
    other = NAFNetSpec(width=16, enc_blk_nums=(1, 1), middle_blk_num=1, dec_blk_nums=(1, 1))
    with pytest.raises(InconsistentShapesError, match="expected NAFNet width 16"):
        build_model(tiny_nafnet_sd, source="state dict", tlc=False, expected=other)
