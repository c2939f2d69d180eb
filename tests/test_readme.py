"""What the README tells a new user that the code decides: the first run's download (which model, how
large: from the registry), the way without a network, and the CPU its figures were measured on."""

from __future__ import annotations

import re

from helpers.models import REPO

from nafcli.weights.registry import load_registry

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_the_first_run_download_is_each_tasks_default_and_its_size(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv("NAFCLI_WEIGHTS_TOML", raising=False)
    said = {task: (mid, int(mb)) for mid, mb, task in
            re.findall(r"`([a-z0-9-]+)`, (\d+) MB,(?: for)? `(denoise|deblur|sr)`", README)}
    assert set(said) == {"denoise", "deblur", "sr"}, said
    reg = load_registry()
    for command, task in (("denoise", "denoise"), ("deblur", "deblur"), ("sr", "stereo-sr")):
        entry = reg.default_for(task)
        assert said[command] == (entry.id, round(entry.size / 1e6)), command
    assert "needs the network once" in README
    for way in ("--offline", "HF_HUB_OFFLINE=1", "nafcli models import", "--weights"):
        assert way in README.split("## Usage")[0], way  # said in the quick start, where a new user reads


def test_figures_name_the_cpu_they_were_measured_on() -> None:
    assert README.count("AMD EPYC") >= 2 and "Zen 4" in README
    assert "9.5 s on a 2-core\nAVX2 CPU" in README or "9.5 s on a 2-core AVX2 CPU" in README
