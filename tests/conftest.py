"""Shared fixtures: where ../shared lives, tiny checkpoints in the authors' format (the helpers they
use are in ``helpers/``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers.models import SHARED, TINY_NAFNET, random_state_dict


@pytest.fixture(autouse=True, scope="session")
def _private_compile_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Compiled kernels and compile timings go to a folder of the test session, never the user's cache
    (``--compile`` auto records what it measures)."""
    import os

    os.environ["NAFCLI_CACHE_DIR"] = str(tmp_path_factory.mktemp("nafcli-cache"))


@pytest.fixture(autouse=True, scope="session")
def _ctrl_c_reaches_the_tests() -> None:
    """Ctrl-C as in a terminal, however the suite was started: a shell without job control starts a
    background command (``.ci/run &``) with SIGINT ignored, Python then installs no KeyboardInterrupt
    handler, the processes the tests start inherit the ignoring, and the Ctrl-C tests (which send SIGINT
    or call ``_thread.interrupt_main``) see runs that never stop. A handler of our own is reset to the
    default in every child at exec."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


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


@pytest.fixture
def tiny_nafnet_sd() -> dict[str, torch.Tensor]:
    return random_state_dict("nafnet", TINY_NAFNET)


@pytest.fixture
def tiny_nafnet_pth(tmp_path: Path, tiny_nafnet_sd) -> Path:
    p = tmp_path / "tiny.pth"
    torch.save({"params": tiny_nafnet_sd}, p)
    return p
