"""serve(): background instances, side by side, repeatable, cleaned up."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from demo_client import make_account

from stability_lib.demo import DemoStartError, FaultSpecError, serve


def test_two_instances_side_by_side_are_independent() -> None:
    with serve(variant="baseline") as baseline, serve(variant="candidate") as candidate:
        assert baseline != candidate
        assert baseline.startswith("http://127.0.0.1:") and candidate.startswith("http://127.0.0.1:")
        assert httpx.get(f"{baseline}/health").json()["variant"] == "baseline"
        assert httpx.get(f"{candidate}/health").json()["faults"] == []
        with httpx.Client(base_url=baseline) as client:
            account = make_account(client)
        # separate databases and separate token secrets
        login = httpx.post(
            f"{candidate}/api/auth/login", json={"username": account.username, "password": account.password}
        )
        assert login.status_code == 401
        assert httpx.get(f"{candidate}/api/threads", headers=account.headers).status_code == 401


def test_serve_can_run_again_and_stops_listening_on_exit() -> None:
    ports = []
    for _ in range(3):
        with serve() as url:
            assert httpx.get(f"{url}/health").status_code == 200
            ports.append(int(url.rsplit(":", 1)[1]))
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/health")
    assert len(ports) == 3


def test_temporary_database_is_removed_and_a_given_one_is_kept(tmp_path: Path, monkeypatch) -> None:
    import tempfile

    # A private temp root: other tests running in parallel create their own demo folders.
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    with serve() as url:
        health = httpx.get(f"{url}/health").json()
        temp_dirs_before = {Path(p) for p in _demo_temp_dirs()}
        assert health["database"] == "ok" and temp_dirs_before
    assert not (temp_dirs_before & {Path(p) for p in _demo_temp_dirs()})

    db = tmp_path / "kept.sqlite3"
    with serve(db_path=db) as url, httpx.Client(base_url=url) as client:
        account = make_account(client)
    assert db.exists()
    with serve(db_path=db) as url:  # same file, new process secret: login works, old token does not
        login = httpx.post(f"{url}/api/auth/login", json={"username": account.username, "password": account.password})
        assert login.status_code == 200
        assert httpx.get(f"{url}/api/threads", headers=account.headers).status_code == 401


def _demo_temp_dirs() -> list[str]:
    import tempfile

    return [str(p) for p in Path(tempfile.gettempdir()).glob("stability-demo-*")]


def test_bad_configuration_fails_before_serving() -> None:
    with pytest.raises(FaultSpecError), serve(variant="nightly"):
        pass
    with pytest.raises(FaultSpecError), serve(faults=["ws_1011_rate=2"]):
        pass


def test_a_taken_port_is_a_start_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(DemoStartError), serve(port=port):
            pass
