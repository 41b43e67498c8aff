from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def candidate_url() -> Iterator[str]:
    from stability_lib.demo import serve

    with serve(variant="candidate", seed=1) as url:
        yield url


@pytest.fixture(scope="session")
def repo():
    from support import REPO

    return REPO
