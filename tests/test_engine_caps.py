"""How far ``allow_over_caps`` lifts a soak (issue 19), and the open files a large soak needs.

10,000 sessions held at once fit one process (benchmarks/bench_engine.py --held 10000), so
``allow_over_caps`` may lift soak concurrency to 10,000 and no further. A process whose
open-file limit is too low for the soak's sockets would see its own EMFILE as the target's
connect errors: the soak raises its soft limit, or refuses to start, saying why.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest
from pydantic import ValidationError

from stability_lib.probes.scenario import ScenarioConfig


def _scenario(**soak: Any) -> ScenarioConfig:
    return ScenarioConfig.model_validate(
        {
            "users": {"password": "pw-not-used", "count": 1},
            "golden_path": {
                "steps": [
                    {
                        "kind": "ws",
                        "name": "chat",
                        "path": "/ws",
                        "send": {"type": "hi"},
                        "end_event": "bye",
                    }
                ]
            },
            "soak": soak,
        }
    )


def test_allow_over_caps_lifts_soak_concurrency_to_ten_thousand_and_no_further() -> None:
    with pytest.raises(ValidationError, match=r"soak.concurrency=201 is over the cap of 200"):
        _scenario(concurrency=201)
    assert _scenario(concurrency=10_000, sessions=10_000, allow_over_caps=True).soak.concurrency == 10_000
    with pytest.raises(ValidationError, match=r"soak.concurrency=10001 is over the hard limit of 10000"):
        _scenario(concurrency=10_001, allow_over_caps=True)


def _in_fresh_process(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX open-file limits")
def test_a_large_soak_raises_its_open_file_limit_or_refuses_saying_why() -> None:
    done = _in_fresh_process(
        """
        import resource
        from stability_lib.probes.soak import ensure_open_files
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (300, hard))
        print(ensure_open_files(1000), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        resource.setrlimit(resource.RLIMIT_NOFILE, (300, 600))  # the hard limit cannot be raised again
        try:
            ensure_open_files(1000)
        except OSError as exc:
            print("refused:", exc)
        """
    )
    assert done.returncode == 0, done.stderr
    raised, refused = done.stdout.splitlines()
    assert raised == "1256 1256"
    assert refused == (
        "refused: soak.concurrency=1000 needs about 1256 open files; this process may open at most 600 "
        "(ulimit -n); lower soak.concurrency or raise the limit"
    )
