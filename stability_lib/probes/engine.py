"""The probes' engine: what goes over the wire, kept thin. Split along its seams:

- ``http_steps``: one templated HTTP request (whole-request deadline, capped and redacted body) and a
  test user's setup (register and login, or a static token; prerequisite steps);
- ``ws_session``: one WebSocket session (the old one-send form, or a conversation driven through the
  sans-I/O machine in ``conversation``);
- ``teardown``: steps of any kind in a unit's context, and the ``finally`` steps that undo a unit;
- ``soak``: N sessions at bounded concurrency and time.

Everything other code imported from here still is importable from here (``run_soak``,
``run_soak_sync`` and the rest keep their signatures).
"""

from __future__ import annotations

from .http_steps import (
    CappedBody,
    HttpStepResult,
    PreparedUser,
    UserSetup,
    auth_headers,
    fetch_capped,
    new_http_client,
    new_nonce,
    prepare_user,
    redact,
    run_http_step,
    shared_ssl_context,
)
from .soak import SETUP_CONCURRENCY, SoakResult, new_run_id, prepare_users, run_blocking, run_soak, run_soak_sync
from .ws_session import WsExchange, abort_connection, close_connection, run_ws_exchange, run_ws_session, ws_url

__all__ = [
    "CappedBody",
    "HttpStepResult",
    "PreparedUser",
    "UserSetup",
    "SoakResult",
    "WsExchange",
    "SETUP_CONCURRENCY",
    "new_run_id",
    "new_nonce",
    "ws_url",
    "redact",
    "auth_headers",
    "fetch_capped",
    "run_http_step",
    "prepare_user",
    "prepare_users",
    "new_http_client",
    "shared_ssl_context",
    "run_ws_session",
    "run_ws_exchange",
    "close_connection",
    "abort_connection",
    "run_soak",
    "run_soak_sync",
    "run_blocking",
]
