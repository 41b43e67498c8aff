"""``python -m stability_lib.demo``: prints its URL, serves, stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 20.0


@contextmanager
def demo_process(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "stability_lib.demo", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()  # blocks until the URL line (or EOF)
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=START_TIMEOUT_S)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_prints_its_url_serves_and_stops_cleanly(stop_signal: signal.Signals) -> None:
    with demo_process("--variant", "candidate", "--port", "0") as (process, url):
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{url}/health", timeout=5).json()["status"] == "ok"
        process.send_signal(stop_signal)
        assert process.wait(timeout=START_TIMEOUT_S) == 0


def test_faults_come_from_variant_environment_and_flags() -> None:
    env = {"STABILITY_DEMO_FAULTS": "api_break=field_removed; slow=login:30"}
    flags = ["--variant", "baseline", "--fault", "slow=login:10", "--fault", "auth_bypass", "--seed", "9"]
    with demo_process(*flags, env=env) as (process, url):
        health = httpx.get(f"{url}/health", timeout=5).json()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=START_TIMEOUT_S) == 0
    assert health["variant"] == "baseline"
    assert health["faults"] == [
        "ws_1011_rate=0.05",
        "slow=login:10",  # the flag wins over the environment
        "api_break=field_removed",
        "auth_bypass",
        "seed=9",
    ]


def test_a_given_database_file_is_used(tmp_path: Path) -> None:
    db = tmp_path / "demo.sqlite3"
    with demo_process("--db", str(db)) as (process, url):
        registered = httpx.post(
            f"{url}/api/auth/register", json={"username": "kept", "password": "password123"}, timeout=5
        )
        assert registered.status_code == 201
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=START_TIMEOUT_S) == 0
    assert db.exists() and db.stat().st_size > 0


def test_a_bad_fault_is_a_clear_error() -> None:
    with demo_process("--fault", "ws_1011_rate=7") as (process, url):
        assert url == ""
        _, stderr = process.communicate(timeout=START_TIMEOUT_S)
        assert process.returncode == 2
    assert "ws_1011_rate" in stderr


def test_launched_on_a_socket_bound_by_its_launcher_it_serves_a_request_made_before_it_started() -> None:
    # `stability demo` binds each service's socket itself, so the URL is known at once and the
    # kernels start while the services boot; a connection made that early waits in the backlog.
    from stability_lib.demo.launch import DemoProcess

    service = DemoProcess("baseline", wait=False)
    try:
        assert service.proc.poll() is None
        health = httpx.get(f"{service.url}/health", timeout=START_TIMEOUT_S)  # sent before it printed its URL
        assert health.json()["variant"] == "baseline"
        assert service.wait_ready() == service.url
    finally:
        service.stop()
    assert service.proc.returncode == 0
    with pytest.raises(httpx.ConnectError):  # the launcher kept no copy of the socket
        httpx.get(f"{service.url}/health", timeout=5)
