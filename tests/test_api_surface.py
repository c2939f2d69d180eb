"""What ``import nafcli`` shows a Python user: the public API in ``dir`` (tab completion, ``help``), nothing
of the module's own imports, every listed name usable, and torch still not imported by listing them."""

from __future__ import annotations

import subprocess
import sys

API = {"Restorer", "load", "restore_paths", "super_resolve", "detect", "read_state_dict", "ModelChoice",
       "RunSettings", "OutputOptions", "VideoOptions", "NafcliError", "__version__"}


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_dir_lists_the_api_without_importing_torch() -> None:
    out = _run("import sys, nafcli; print(' '.join(dir(nafcli))); print('torch' in sys.modules)")
    names, torch_loaded = out.splitlines()
    listed = set(names.split())
    assert API <= listed
    assert not listed & {"Any", "TYPE_CHECKING", "annotations", "import_module"}
    assert "__doc__" in listed and "__file__" in listed
    assert torch_loaded == "False"


def test_every_listed_name_resolves() -> None:
    code = ("import nafcli\n"
            "public = [n for n in dir(nafcli) if not n.startswith('__')] + ['__version__']\n"
            "print(' '.join(n for n in public if getattr(nafcli, n, None) is None))\n"
            "print(len(public))")
    missing, count = _run(code).splitlines()
    assert missing == ""
    assert int(count) == len(API)
