"""Where the library finds the bundled sample service without importing it.

The sample service (stability_lib.demo) registers two hooks under the entry-point group
``stability_proof.sample_service`` in pyproject.toml: ``run`` (the ``stability demo`` command) and
``interactive`` (a section notebook run by hand in JupyterLab). They are looked up only when asked for,
so no library module imports the demo and there is no import cycle through it (checked by lint-imports).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from ..core.errors import RunError

__all__ = ["SAMPLE_SERVICE_GROUP", "sample_service_hook"]

SAMPLE_SERVICE_GROUP = "stability_proof.sample_service"


def sample_service_hook(name: str) -> Callable[..., Any]:
    """The sample service's ``name`` hook, or RunError saying how to get it (it is registered at install)."""
    found = sorted(entry_points(group=SAMPLE_SERVICE_GROUP, name=name), key=lambda ep: ep.value)
    if not found:
        raise RunError(
            f"the bundled sample service is not installed (no {name!r} in entry points {SAMPLE_SERVICE_GROUP}); "
            "reinstall the package: pip install -e ."
        )
    hook: Callable[..., Any] = found[0].load()
    return hook
