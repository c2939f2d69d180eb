"""nafcli.weights.load, the one way to get a model: by path, by state dict, by registry id, by config;
the task and scale checks; one source only; where the TLC setting comes from."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.models import TINY_NAFNET, TINY_NAFSSR, random_state_dict

from nafcli.archs import MonoModel, NAFNetSpec, NAFSSRSpec, StereoModel
from nafcli.errors import UnknownModelError, UsageError
from nafcli.weights import load
from nafcli.weights.loader import describe_choice, resolve_entry, resolve_tlc
from nafcli.weights.registry import load_registry

TINY_SR_X4 = {**TINY_NAFSSR, "up_scale": 4}


def _toml_entry(mid: str, task: str, arch: str, config: dict, *, default: bool = False, tlc: bool | None = None) -> str:
    lines = [f"[models.{mid}]", f'task = "{task}"', f'arch = "{arch}"', f'file = "{mid}.pth"',
             f'url = "https://example.invalid/{mid}"', f"default = {'true' if default else 'false'}"]
    lines += [f"{k} = {v}" for k, v in config.items()]
    if tlc is not None:
        lines.append(f"tlc = {'true' if tlc else 'false'}")
    return "\n".join(lines) + "\n\n"


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry of tiny models (random weights build in milliseconds); the cache in tmp_path."""
    toml = tmp_path / "weights.toml"
    toml.write_text(
        _toml_entry("tiny-denoise", "denoise", "nafnet", TINY_NAFNET, default=True)
        + _toml_entry("tiny-deblur", "deblur", "nafnet", TINY_NAFNET, default=True)
        + _toml_entry("tiny-deblur-plain", "deblur", "nafnet", TINY_NAFNET, tlc=False)
        + _toml_entry("tiny-sr-x2", "stereo-sr", "nafssr", TINY_NAFSSR, default=True)
        + _toml_entry("tiny-sr-x4", "stereo-sr", "nafssr", TINY_SR_X4)
    )
    monkeypatch.setenv("NAFCLI_WEIGHTS_TOML", str(toml))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "NAFCLI_CACHE"):
        monkeypatch.delenv(var, raising=False)
    return toml


@pytest.fixture
def nafnet_file(tmp_path: Path) -> Path:
    p = tmp_path / "nafnet.pth"
    torch.save({"params": random_state_dict("nafnet", TINY_NAFNET)}, p)
    return p


@pytest.fixture
def nafssr_file(tmp_path: Path) -> Path:
    p = tmp_path / "nafssr_x2.pth"
    torch.save({"params": random_state_dict("nafssr", TINY_NAFSSR)}, p)
    return p


def _same_weights(a: torch.nn.Module, b: dict[str, torch.Tensor]) -> bool:
    sd = a.state_dict()
    return sd.keys() == b.keys() and all(torch.equal(sd[k], b[k]) for k in sd)


def _tlc_on(model) -> bool:  # noqa: ANN001
    """Whether the network itself runs the TLC local mean (not only the flag)."""
    pools = [m for m in model.module.modules() if type(m).__name__ == "MeanPool"]
    assert pools
    on = {p.window is not None for p in pools}
    assert len(on) == 1
    return on.pop()


# -- the sources -------------------------------------------------------------------------------------


def test_load_by_path(nafnet_file: Path) -> None:
    model = load(weights=nafnet_file)
    assert isinstance(model, MonoModel) and model.views == 1
    assert model.spec == NAFNetSpec(width=8, enc_blk_nums=(1, 1), middle_blk_num=1, dec_blk_nums=(1, 1))
    assert model.source == str(nafnet_file) and model.label == str(nafnet_file)
    assert model.model_id is None and model.task is None
    assert _same_weights(model.module, torch.load(nafnet_file, weights_only=True)["params"])
    assert not model.module.training and not any(p.requires_grad for p in model.module.parameters())


def test_load_by_path_as_a_string_and_stereo(nafssr_file: Path) -> None:
    model = load(weights=str(nafssr_file))
    assert isinstance(model, StereoModel) and model.views == 2 and model.scale == 2
    assert model.spec == NAFSSRSpec(up_scale=2, width=8, num_blks=2)


def test_load_by_state_dict() -> None:
    sd = random_state_dict("nafnet", TINY_NAFNET, seed=3)
    model = load(weights=sd)
    assert model.source == "state dict" and _same_weights(model.module, sd)
    wrapped = load(weights={"params_ema": {f"module.{k}": v for k, v in sd.items()}})  # as files wrap them
    assert _same_weights(wrapped.module, sd)


def test_load_by_registry_id_random_weights(registry: Path) -> None:
    model = load(model="tiny-sr-x4", pretrained=False)
    assert isinstance(model, StereoModel) and model.scale == 4
    assert model.spec == NAFSSRSpec(up_scale=4, width=8, num_blks=2)
    assert model.model_id == "tiny-sr-x4" and model.label == "tiny-sr-x4" and model.task == "stereo-sr"
    assert "random weights" in model.source
    again = load(model="TINY-SR-X4", pretrained=False)  # ids are case-insensitive; the seed is fixed
    assert _same_weights(again.module, model.module.state_dict())
    other = load(model="tiny-sr-x4", pretrained=False, seed=1)
    assert not _same_weights(other.module, model.module.state_dict())


def test_load_by_task_default_and_scale(registry: Path) -> None:
    assert load(task="denoise", pretrained=False).model_id == "tiny-denoise"
    assert load(task="stereo-sr", pretrained=False).model_id == "tiny-sr-x2"
    assert load(task="stereo-sr", scale=4, pretrained=False).model_id == "tiny-sr-x4"
    with pytest.raises(UsageError, match="name a model"):
        load(pretrained=False)


def test_load_registry_file_from_the_cache(registry: Path, nafnet_file: Path) -> None:
    """pretrained=True: the entry's file from the cache (here imported), checked against the entry."""
    from nafcli.weights import hub

    hub.import_file(load_registry().get("tiny-denoise"), nafnet_file)
    model = load(model="tiny-denoise")
    assert model.model_id == "tiny-denoise" and model.task == "denoise"
    assert _same_weights(model.module, load(weights=nafnet_file).module.state_dict())
    assert "random weights" not in model.source


def test_load_by_config() -> None:
    model = load(config=("nafnet", TINY_NAFNET))
    assert isinstance(model, MonoModel) and model.spec.config() == TINY_NAFNET
    assert "random weights" in model.source and model.model_id is None
    stereo = load(config=("nafssr", TINY_SR_X4), task="stereo-sr")
    assert isinstance(stereo, StereoModel) and stereo.scale == 4 and stereo.task == "stereo-sr"
    with pytest.raises(UsageError, match="--arch-config: unknown hyperparameter 'depth'"):
        load(config=("nafnet", {**TINY_NAFNET, "depth": 3}))
    with pytest.raises(UsageError, match="--arch-config: missing hyperparameter 'middle_blk_num'"):
        load(config=("nafnet", {k: v for k, v in TINY_NAFNET.items() if k != "middle_blk_num"}))
    with pytest.raises(UsageError, match="unknown architecture 'unet'"):
        load(config=("unet", {}))


# -- refusals ----------------------------------------------------------------------------------------


def test_a_stereo_file_is_refused_for_denoise(nafssr_file: Path) -> None:
    with pytest.raises(UsageError) as e:
        load(task="denoise", weights=nafssr_file)
    assert e.value.exit_code == 2
    msg = str(e.value)
    assert str(nafssr_file) in msg and "not for denoise" in msg and "use 'nafcli sr'" in msg


def test_a_mono_file_is_refused_for_stereo_sr(nafnet_file: Path) -> None:
    with pytest.raises(UsageError) as e:
        load(task="stereo-sr", weights=nafnet_file)
    assert e.value.exit_code == 2
    msg = str(e.value)
    assert "not for stereo-sr" in msg and "use 'nafcli denoise'" in msg


def test_task_refusal_for_registry_ids_and_configs(registry: Path) -> None:
    with pytest.raises(UsageError, match="model tiny-denoise is for denoise, not deblur"):
        load(task="deblur", model="tiny-denoise", pretrained=False)
    with pytest.raises(UsageError, match="not for denoise"):
        load(task="denoise", config=("nafssr", TINY_NAFSSR))
    # deblur and denoise share the architecture: a NAFNet file serves either
    assert load(task="deblur", weights=random_state_dict("nafnet", TINY_NAFNET)).task == "deblur"


def test_scale_refusal(registry: Path, nafssr_file: Path) -> None:
    with pytest.raises(UsageError, match="is a x2 model but --scale 4 was given"):
        load(weights=nafssr_file, scale=4)
    with pytest.raises(UsageError, match="tiny-sr-x4 is a x4 model but --scale 2 was given"):
        load(model="tiny-sr-x4", scale=2, pretrained=False)
    with pytest.raises(UnknownModelError, match="no stereo-sr model of scale x3"):
        load(task="stereo-sr", scale=3, pretrained=False)
    assert load(weights=nafssr_file, scale=2).scale == 2


def test_give_only_one_source(registry: Path, nafnet_file: Path) -> None:
    with pytest.raises(UsageError, match="give only one of --model, --weights$") as e:
        load(model="tiny-denoise", weights=nafnet_file)
    assert e.value.exit_code == 2
    with pytest.raises(UsageError, match="give only one of --weights, --arch-config$"):
        load(weights=nafnet_file, config=("nafnet", TINY_NAFNET))
    with pytest.raises(UsageError, match="give only one of --model, --weights, --arch-config$"):
        load(model="tiny-denoise", weights=nafnet_file, config=("nafnet", TINY_NAFNET), pretrained=False)


def test_describe_choice_checks_without_loading(registry: Path, nafnet_file: Path) -> None:
    assert describe_choice(weights=nafnet_file) == str(nafnet_file)
    assert describe_choice(task="stereo-sr", scale=4) == "tiny-sr-x4"
    with pytest.raises(UnknownModelError, match="did you mean tiny-denoise"):
        describe_choice(model="tiny-denoize")
    with pytest.raises(UsageError, match="give only one of"):
        describe_choice(model="tiny-denoise", weights=nafnet_file)
    with pytest.raises(UsageError, match="is for deblur, not denoise"):
        describe_choice(task="denoise", model="tiny-deblur")


# -- TLC: explicit > registry entry > task > architecture ------------------------------------------


def test_resolve_tlc_order(registry: Path) -> None:
    nafnet = NAFNetSpec(width=8, enc_blk_nums=(1, 1), middle_blk_num=1, dec_blk_nums=(1, 1))
    nafssr = NAFSSRSpec(up_scale=2, width=8, num_blks=2)
    plain_deblur = resolve_entry(model="tiny-deblur-plain")  # a deblur entry that says tlc = false
    local_deblur = resolve_entry(model="tiny-deblur")  # the deblur default: TLC as the task says
    assert (plain_deblur.tlc, local_deblur.tlc) == (False, True)
    # 1. the caller's choice wins over everything
    assert resolve_tlc(True, spec=nafnet, entry=plain_deblur, task="denoise") is True
    assert resolve_tlc(False, spec=nafssr, entry=local_deblur, task="deblur") is False
    # 2. then the registry entry, over the task
    assert resolve_tlc(None, spec=nafnet, entry=plain_deblur, task="deblur") is False
    # 3. then the task, over the architecture
    assert resolve_tlc(None, spec=nafnet, task="deblur") is True
    assert resolve_tlc(None, spec=nafssr, task="stereo-sr") is True
    assert resolve_tlc(None, spec=nafnet, task="denoise") is False
    # 4. then the architecture's first task: NAFNet denoises (off), NAFSSR is stereo SR (on)
    assert resolve_tlc(None, spec=nafnet) is False
    assert resolve_tlc(None, spec=nafssr) is True


def test_load_applies_the_tlc_order(registry: Path, nafnet_file: Path, nafssr_file: Path) -> None:
    cases = [
        (load(weights=nafnet_file), False),  # architecture
        (load(weights=nafssr_file), True),
        (load(weights=nafnet_file, task="deblur"), True),  # task
        (load(weights=nafnet_file, task="deblur", tlc=False), False),  # explicit
        (load(weights=nafssr_file, tlc=False), False),
        (load(model="tiny-deblur", pretrained=False), True),  # entry (the task's setting)
        (load(model="tiny-deblur-plain", pretrained=False), False),  # entry over task
        (load(model="tiny-deblur-plain", tlc=True, pretrained=False), True),  # explicit over entry
        (load(task="denoise", pretrained=False), False),
        (load(config=("nafnet", TINY_NAFNET), task="deblur"), True),
        (load(config=("nafnet", TINY_NAFNET)), False),
    ]
    for model, want in cases:
        assert model.tlc is want, model.label
        assert _tlc_on(model) is want, model.label  # the network does what the flag says
