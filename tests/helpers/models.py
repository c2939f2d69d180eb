"""Where the reference data lives, and tiny models in the authors' checkpoint format."""

from __future__ import annotations

from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
#: ../shared relative to the repository root: the reference data (read-only)
SHARED = REPO.parent / "shared"
#: small random-weight checkpoints of the end-to-end cases (authors' format)
PIPELINE = SHARED / "reference" / "pipeline"

TINY_NAFNET = {"width": 8, "enc_blk_nums": [1, 1], "middle_blk_num": 1, "dec_blk_nums": [1, 1]}
TINY_NAFSSR = {"up_scale": 2, "width": 8, "num_blks": 2}


def random_state_dict(arch: str, config: dict, seed: int = 0, std: float = 0.1) -> dict[str, torch.Tensor]:
    """A state dict with random values for ``config`` (what the authors' training would save)."""
    from nafcli.archs import spec_from_config

    torch.manual_seed(seed)
    module = spec_from_config(arch, config).build(tlc=False)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * std)
    return {k: v.clone() for k, v in module.state_dict().items()}
