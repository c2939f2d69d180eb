"""Shared fixtures: where ../shared lives, tiny checkpoints in the authors' format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    if not (SHARED / "reference").is_dir():
        pytest.skip(f"{SHARED} is absent: the reference data lives beside the repository")
    return SHARED


@pytest.fixture(scope="session")
def golden_index(shared: Path) -> dict:
    return json.loads((shared / "reference" / "golden" / "index.json").read_text())


@pytest.fixture(scope="session")
def pipeline_index(shared: Path) -> dict:
    return json.loads((shared / "reference" / "pipeline" / "index.json").read_text())


TINY_NAFNET = {"width": 8, "enc_blk_nums": [1, 1], "middle_blk_num": 1, "dec_blk_nums": [1, 1]}
TINY_NAFSSR = {"up_scale": 2, "width": 8, "num_blks": 2}


def random_state_dict(arch: str, config: dict, seed: int = 0, std: float = 0.1) -> dict[str, torch.Tensor]:
    """A state dict with random values for ``config`` (what the authors' training would save)."""
    from nafcli.model import spec_from_config

    torch.manual_seed(seed)
    module = spec_from_config(arch, config).build(tlc=False)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * std)
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.fixture
def tiny_nafnet_sd() -> dict[str, torch.Tensor]:
    return random_state_dict("nafnet", TINY_NAFNET)


@pytest.fixture
def tiny_nafnet_pth(tmp_path: Path, tiny_nafnet_sd) -> Path:
    p = tmp_path / "tiny.pth"
    torch.save({"params": tiny_nafnet_sd}, p)
    return p
