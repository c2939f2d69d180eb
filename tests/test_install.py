"""``python -m nafcli`` and ``import nafcli`` find the real package from any folder, even the parent of a
clone named ``nafcli`` (README "Run the tests": the editable install is a path entry, not an import hook
that a namespace directory in the current folder would beat)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from nafcli._version import __version__


def test_a_folder_named_nafcli_in_the_current_directory_does_not_shadow_the_package(tmp_path: Path) -> None:
    clone = tmp_path / "nafcli"  # what `git clone .../nafcli` leaves: a folder without __init__.py
    (clone / "docs").mkdir(parents=True)
    (clone / "README.md").write_text("a clone\n")
    (clone / "weights.toml").write_text("[models.decoy]\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)

    version = run("-m", "nafcli", "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"nafcli {__version__}", version.stderr
    api = run("-c", "import nafcli; print(nafcli.__version__, nafcli.__file__)")
    assert api.returncode == 0, api.stderr
    got_version, origin = api.stdout.split()
    assert got_version == __version__ and Path(origin).parent != clone
    listing = run("-m", "nafcli", "models", "list", "--json")  # the packaged registry, not the clone's file
    assert listing.returncode == 0 and '"nafnet-sidd-width32"' in listing.stdout, listing.stderr
