"""A warm kernel whose manager cannot even be made ends its start as "no kernel": the notebook that
waits for it goes on (and starts its own), never waits for ever, and no traceback reaches stderr."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from stability_lib.execution import kernels


def test_a_manager_that_cannot_be_made_is_no_kernel_not_a_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken_manager_class() -> Any:
        def make(**_kw: Any) -> Any:  # what a traitlets race raised in a real run
            raise TypeError("import_item accepts strings, not '<class 'traitlets.traitlets.MetaHasTraits'>'.")

        return make

    monkeypatch.setattr(kernels, "tracked_kernel_manager", broken_manager_class)
    ended = threading.Event()
    warm = kernels._WarmKernel(tmp_path, ended.set)
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(warm.wait()), daemon=True)
    waiter.start()
    waiter.join(timeout=60)  # a bound on a hang, not a timing: the start fails at once
    assert not waiter.is_alive(), "wait() never returned: the warm kernel's thread died without saying it was done"
    assert got == [None] and ended.is_set()
    assert "Traceback" not in capsys.readouterr().err
