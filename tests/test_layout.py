"""The layout's promises that hold at run time: the library never loads the sample service, and finds it
through its entry points (the static check of every import is lint-imports, run by make test)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from stability_lib.core.errors import RunError
from stability_lib.execution.sample_service import sample_service_hook


def test_importing_every_library_module_never_loads_the_sample_service() -> None:
    # Files, not pkgutil.walk_packages: walking would import stability_lib.demo itself to list it.
    code = (
        "import importlib, pathlib, sys, stability_lib\n"
        "root = pathlib.Path(stability_lib.__file__).parent\n"
        "names = ['.'.join(('stability_lib',) + p.relative_to(root).with_suffix('').parts).removesuffix('.__init__')\n"
        "         for p in root.rglob('*.py') if 'demo' not in p.relative_to(root).parts]\n"
        "for name in names: importlib.import_module(name)\n"
        "assert len(names) > 30, names\n"
        "print(sorted(m for m in sys.modules if m.startswith('stability_lib.demo')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_sample_service_registers_its_hooks() -> None:
    from stability_lib.demo.launch import interactive_run, run_demo

    assert sample_service_hook("run") is run_demo
    assert sample_service_hook("interactive") is interactive_run


def test_a_missing_hook_is_a_run_error_that_says_how_to_fix_it() -> None:
    with pytest.raises(RunError, match="pip install -e"):
        sample_service_hook("no-such-hook")


def test_one_check_commands_do_not_load_the_probe_and_report_stack() -> None:
    # `stability diff` / `junit` start fast: importing the package loads no httpx, pandas or papermill.
    import subprocess
    import sys

    code = (
        "import sys, stability_lib as sl; "
        "heavy = [m for m in ('httpx', 'websockets', 'pandas', 'papermill', 'matplotlib') if m in sys.modules]; "
        "assert not heavy, heavy; sl.sections; assert 'httpx' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
