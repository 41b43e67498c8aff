"""Run the sample service: in a background thread (``serve``) or in the foreground (CLI)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from ..core.errors import RunError
from ._app import MAX_WS_FRAME_BYTES, create_app, install_log_filter
from ._faults import Faults, variant_faults
from ._socket import HOST, listening_socket

__all__ = ["serve", "DemoStartError", "DemoInstance", "prepare_instance", "HOST"]

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0

FaultsInput = Faults | Mapping[str, Any] | str | Iterable[str] | None


class DemoStartError(RunError):
    """The sample service did not start (port taken, bad database path...)."""


@dataclass(frozen=True)
class DemoInstance:
    """Everything one run of the service needs: a bound socket, a config, cleanup."""

    sock: socket.socket
    server: uvicorn.Server
    temp_dir: Path | None
    faults: Faults

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.sock.getsockname()[1]}"

    def cleanup(self) -> None:
        app: Any = self.server.config.app  # our FastAPI app (uvicorn types it as any ASGI app)
        app.state.store.close()
        with contextlib.suppress(OSError):
            self.sock.close()
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def prepare_instance(
    *,
    variant: str = "candidate",
    faults: FaultsInput = None,
    port: int = 0,
    seed: int | None = None,
    db_path: str | Path | None = None,
    sock: socket.socket | None = None,
) -> DemoInstance:
    """Resolve faults, bind 127.0.0.1:port (or take ``sock``, a listening socket bound by
    whoever started us), open the database and build the server.

    ``faults`` composes on top of the variant's; ``seed`` (when given) replaces
    the seed of the faults.
    """
    resolved = Faults.coerce(faults, base=variant_faults(variant))
    if seed is not None:
        resolved = Faults.coerce({"seed": seed}, base=resolved)
    temp_dir: Path | None = None
    if db_path is None:
        temp_dir = Path(tempfile.mkdtemp(prefix="stability-demo-"))
        database = temp_dir / "demo.sqlite3"
    else:
        database = Path(db_path)
    try:
        sock = sock if sock is not None else listening_socket(port)
    except OSError as exc:
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
        raise DemoStartError(f"cannot start the sample service on {HOST}:{port}: {exc}") from exc
    try:
        app = create_app(variant=variant, faults=resolved, db_path=database, seed=resolved.seed)
    except Exception as exc:
        sock.close()
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
        raise DemoStartError(f"cannot start the sample service on {HOST}:{port}: {exc}") from exc
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws_max_size=MAX_WS_FRAME_BYTES,
        timeout_graceful_shutdown=2,
    )
    install_log_filter()  # after Config: it reconfigures logging
    return DemoInstance(sock=sock, server=uvicorn.Server(config), temp_dir=temp_dir, faults=resolved)


@contextlib.contextmanager
def serve(
    variant: str = "candidate",
    faults: FaultsInput = None,
    port: int = 0,
    seed: int | None = None,
    db_path: str | Path | None = None,
) -> Iterator[str]:
    """Run the sample service in a background thread; yield its base URL.

    Binds 127.0.0.1 only (``port=0``: a free port). Without ``db_path`` the
    database lives in a temporary folder removed on exit. Several instances may
    run at once in one process.
    """
    instance = prepare_instance(variant=variant, faults=faults, port=port, seed=seed, db_path=db_path)
    thread = threading.Thread(
        target=instance.server.run,
        kwargs={"sockets": [instance.sock]},
        name=f"stability-demo-{instance.url}",
        daemon=True,
    )
    try:
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not instance.server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                instance.server.should_exit = True
                raise DemoStartError(f"the sample service did not start on {instance.url}")
            time.sleep(0.01)
        yield instance.url
    finally:
        instance.server.should_exit = True
        thread.join(_STOP_TIMEOUT_S)
        instance.cleanup()
