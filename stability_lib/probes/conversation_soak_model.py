"""The pure per-message part of the conversation soak (issue 19): request/reply bookkeeping, compact records.

No sockets, no event loop, no clock: the shell (``probes.conversation_soak``) passes ``now`` and every
received text frame, and sends what a ``SessionLedger`` returns. The per-message path is lean on
purpose (a soak runs tens of thousands of messages per second on one core): the request is one
``%``-format of a template compiled once, the reply is found by one dict lookup on its correlation
value, the checks are conditions compiled once, and the record is four array appends (21 bytes per
message), not an object per message.

Message statuses (``MessageStatus``): ``ok``; ``content_mismatch`` (the reply came and a ``check``
failed); ``timeout`` (no reply within ``reply_timeout_s``); ``failed_by_message`` (a ``fail_on``
message ended the session while the request waited); ``connection_lost`` (the connection ended while
it waited); ``stopped`` (our own duration cap or Ctrl-C ended it: not the service's failure, left out
of the failure rate).
"""

from __future__ import annotations

import enum
import json
import math
import uuid
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .conditions import ABSENT, Condition, holds, lookup, lookup_all, parse_path
from .conversation_spec import ConversationSoakConfig, compile_conditions
from .message_checks import no_element
from .templates import TemplateError, render_template, template_placeholders

__all__ = [
    "MessageStatus",
    "MessageFailure",
    "SoakPlan",
    "MessageLog",
    "SessionLedger",
    "walk",
]

MAX_REASONS = 50  # distinct failure labels kept; the rest count under "other"
MAX_EXAMPLES = 20  # failures kept with their detail (expected / got)
MAX_LATE_KEYS = 1024  # per session: timed-out ids remembered so a late reply is named as late
DETAIL_CAP = 160


class MessageStatus(enum.IntEnum):
    OK = 0
    CONTENT_MISMATCH = 1
    TIMEOUT = 2
    FAILED_BY_MESSAGE = 3
    CONNECTION_LOST = 4
    STOPPED = 5

    @property
    def label(self) -> str:
        return self.name.lower()


def _cap(value: Any, limit: int = DETAIL_CAP) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


@dataclass(frozen=True)
class MessageFailure:
    """One failed message with what was wrong (kept for the first few failures only)."""

    session: int
    seq: int
    status: str
    reason: str
    expected: str | None = None
    got: str | None = None


class _Format:
    """A JSON template compiled to one ``%`` format: ``{msg_id}``, ``{seq}``, ``{session}`` filled per message.

    Context placeholders are rendered once. A string that is exactly ``{seq}`` or ``{session}`` keeps
    its integer type (as ``render_template`` does); ``msg_id`` is made of digits and ``-`` only, so it
    needs no JSON escaping.
    """

    def __init__(self, template: Any, context: Mapping[str, Any]) -> None:
        token = uuid.uuid4().hex
        marks = {name: f"@{token}{name}@" for name in ("msg_id", "seq", "session")}
        dumped = json.dumps(render_template(template, {**context, **marks}), separators=(",", ":"))
        fmt = dumped.replace("%", "%%")
        order: list[tuple[int, str]] = []
        for name, mark in marks.items():
            if name != "msg_id":  # a whole-string integer placeholder loses its quotes
                fmt = fmt.replace(f'"{mark}"', f"\0{name}\0")
            fmt = fmt.replace(mark, f"\0{name}\0")
        pieces = fmt.split("\0")
        for index in range(1, len(pieces), 2):
            order.append((index, pieces[index]))
            pieces[index] = "%s"
        self.fmt = "".join(pieces)
        self.names = tuple(name for _, name in order)

    def render(self, msg_id: str, seq: int, session: int) -> str:
        values = {"msg_id": msg_id, "seq": seq, "session": session}
        return self.fmt % tuple(values[name] for name in self.names)


@dataclass(frozen=True)
class _Check:
    path: tuple[str, ...]
    raw_path: str
    cond: Condition
    arg: Any  # rendered once when it has no per-message placeholder
    templated: bool
    star: bool


class SoakPlan:
    """A ``ConversationSoakConfig`` compiled with the caller's context: what every session does."""

    def __init__(self, config: ConversationSoakConfig, context: Mapping[str, Any] | None = None) -> None:
        self.config = config
        self.context: dict[str, Any] = dict(context or {})
        missing = sorted(config.placeholders() - set(self.context))
        if missing:
            raise TemplateError(f"template placeholder {{{missing[0]}}} has no value")
        self.send = _Format(config.send, self.context)
        ((raw_path, template),) = config.correlate.items()
        self.correlate_path = parse_path(raw_path)
        self.correlate_raw = raw_path
        self._correlate_template = template
        self._correlate_name = template[1:-1] if template in ("{msg_id}", "{seq}") else None
        self.checks = tuple(
            _Check(
                path,
                raw,
                cond,
                render_template(cond.arg, self.context) if not self._per_message(cond.arg) else cond.arg,
                self._per_message(cond.arg),
                "*" in path,
            )
            for (path, cond), raw in zip(compile_conditions(config.check, allow_star=True), config.check, strict=True)
        )
        # Constant string/integer equalities on plain paths (most checks of a soak) are tried inline first.
        self._quick = tuple(
            (c.path, c.arg)
            for c in self.checks
            if c.cond.op == "equals" and not c.templated and not c.star and c.path and c.arg.__class__ in (str, int)
        )
        self._rest = tuple(c for c in self.checks if (c.path, c.arg) not in self._quick)
        self.fail_on = tuple(
            (
                str(rule.name or "fail_on"),
                rule.correlated,  # only for a message that answers one of the session's requests
                compile_conditions(render_template(rule.match, self.context), allow_star=False),
            )
            for rule in config.fail_on
        )
        self.headers = {str(k): str(v) for k, v in render_template(config.headers, self.context).items()}
        self._init_send = config.init_send
        self.init_expect = (
            compile_conditions(render_template(config.init_expect, self.context), allow_star=False)
            if config.init_expect is not None
            else None
        )

    def init_messages(self, session: int) -> list[str]:
        """The texts sent once after the handshake, before the first request."""
        context = {**self.context, "session": session}
        return [json.dumps(render_template(t, context), separators=(",", ":")) for t in self._init_send]

    @staticmethod
    def _per_message(arg: Any) -> bool:
        return bool(template_placeholders(arg) & {"msg_id", "seq", "session"})

    def correlation_key(self, msg_id: str, seq: int, session: int) -> Any:
        if self._correlate_name == "msg_id":
            return msg_id
        if self._correlate_name == "seq":
            return seq
        return render_template(
            self._correlate_template, {**self.context, "msg_id": msg_id, "seq": seq, "session": session}
        )

    def check_reply(self, message: Any, msg_id: str, seq: int, session: int) -> tuple[str, Any, Any] | None:
        """The first failing check as (path, expected, got), or None when the reply is right."""
        for path, arg in self._quick:
            value = walk(message, path)
            if value.__class__ is not arg.__class__ or value != arg:  # 1.0 for 1 is decided below
                return self._first_failure(self.checks, message, msg_id, seq, session)
        return self._first_failure(self._rest, message, msg_id, seq, session) if self._rest else None

    def _first_failure(
        self, checks: Sequence[_Check], message: Any, msg_id: str, seq: int, session: int
    ) -> tuple[str, Any, Any] | None:
        local: dict[str, Any] | None = None
        for check in checks:
            arg = check.arg
            if check.templated:
                if local is None:
                    local = {**self.context, "msg_id": msg_id, "seq": seq, "session": session}
                arg = render_template(arg, local)
            cond = check.cond
            if check.star:
                values = lookup_all(message, check.path)
                if not values:  # no element to check: fails, but where no element may have something
                    if holds(cond, ABSENT, arg):
                        continue
                    shown = arg if cond.op == "equals" else {cond.op: arg}
                    return check.raw_path, shown, str(no_element(message, check.path))
                if cond.op == "exists" and arg is True:
                    if all(v is ABSENT for v in values):
                        return check.raw_path, {"exists": True}, "absent"
                    continue
            else:
                values = [lookup(message, check.path)]
            for value in values:
                if not holds(cond, value, arg):
                    return (
                        check.raw_path,
                        arg if cond.op == "equals" else {cond.op: arg},
                        ("absent" if value is ABSENT else value),
                    )
        return None

    def failing_rule(self, message: Any, ours: bool) -> str | None:
        """The first fail_on rule the message meets; a ``correlated`` rule only when the message is ``ours``
        (it carries the id of one of the session's requests)."""
        for name, correlated, conditions in self.fail_on:
            if correlated and not ours:
                continue
            if all(holds(cond, lookup(message, path), cond.arg) for path, cond in conditions):
                return name
        return None


def walk(message: Any, path: tuple[str, ...]) -> Any:
    """``lookup`` with a fast path for objects all the way down (the common case, per message)."""
    value = message
    for segment in path:
        if value.__class__ is not dict:
            return lookup(message, path)
        value = value.get(segment, ABSENT)
    return value


class MessageLog:
    """Every resolved message of a soak, in arrays: send offset, latency (NaN: no reply), status, session."""

    def __init__(self) -> None:
        self.sent_at = array("d")
        self.latency = array("d")
        self.status = array("B")
        self.session = array("I")
        self.reasons: dict[str, int] = {}
        self.examples: list[MessageFailure] = []

    def __len__(self) -> int:
        return len(self.status)

    def failure(
        self,
        session: int,
        seq: int,
        sent_at: float,
        latency: float,
        status: MessageStatus,
        reason: str,
        expected: Any = None,
        got: Any = None,
    ) -> None:
        self.sent_at.append(sent_at)
        self.latency.append(latency)
        self.status.append(status)
        self.session.append(session)
        if status is MessageStatus.STOPPED:
            return
        label = reason if reason in self.reasons or len(self.reasons) < MAX_REASONS else "other"
        self.reasons[label] = self.reasons.get(label, 0) + 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(
                MessageFailure(
                    session,
                    seq,
                    status.label,
                    reason,
                    None if expected is None else _cap(expected),
                    None if got is None else _cap(got),
                )
            )


class SessionLedger:
    """One session's requests awaiting replies. Not thread-safe; one per session.

    ``origin`` is the soak's start on the caller's clock: send offsets in the log count from it.
    """

    def __init__(self, plan: SoakPlan, index: int, log: MessageLog, origin: float) -> None:
        self.plan = plan
        self.index = index
        self.log = log
        self.origin = origin
        self.pending: dict[Any, tuple[float, int, str, Any]] = {}  # key -> (sent at, seq, msg_id, key); in send order
        self.sent = 0
        self.ok = 0
        self.failed = 0
        self.unmatched: dict[str, int] = {}
        self.outcome: str | None = None  # set when the session must end because of a message
        self.started: float | None = None
        self.ready = plan.init_expect is None  # false until the init_expect message came
        self.opened_at: float | None = None
        self._late: set[Any] = set()
        self._limit = plan.config.messages_per_session
        self._window = plan.config.in_flight
        rate = plan.config.rate_per_session
        self._interval = 1.0 / rate if rate else 0.0

    # -- sending -----------------------------------------------------------------------------------
    @property
    def finished_sending(self) -> bool:
        return self.sent >= self._limit or self.outcome is not None

    @property
    def done(self) -> bool:
        return self.outcome is not None or (self.sent >= self._limit and not self.pending)

    def stop_sending(self) -> None:
        """Send nothing more (the soak's duration is over); pending requests may still be answered."""
        self._limit = min(self._limit, self.sent)

    def open(self, now: float) -> list[str]:
        """The connection is open: what to send first (``init_send``)."""
        self.opened_at = now
        return self.plan.init_messages(self.index)

    def init_overdue(self, now: float) -> bool:
        """Ends the session when ``init_expect`` did not come in time; True when it did so."""
        if self.ready or self.opened_at is None or self.outcome is not None:
            return False
        if now - self.opened_at < self.plan.config.init_timeout_s:
            return False
        self.end("init_timeout", MessageStatus.CONNECTION_LOST)
        return True

    def due_at(self) -> float | None:
        """When the next request is due (None: nothing more to send, or the window is full)."""
        if not self.ready or self.finished_sending or len(self.pending) >= self._window:
            return None
        if self.started is None or not self._interval:
            return -math.inf
        return self.started + self.sent * self._interval

    def request(self, now: float) -> str:
        """The next request's text; it is pending from ``now``."""
        if self.started is None:
            self.started = now
        self.sent += 1
        seq = self.sent
        msg_id = f"{self.index}-{seq}"
        key = self.plan.correlation_key(msg_id, seq, self.index)
        self.pending[key] = (now, seq, msg_id, key)
        return self.plan.send.render(msg_id, seq, self.index)

    # -- receiving ---------------------------------------------------------------------------------
    def _count(self, kind: str) -> None:
        self.unmatched[kind] = self.unmatched.get(kind, 0) + 1
        if self.plan.config.unmatched == "fail" and self.outcome is None:
            self.end(f"unmatched_message({kind})", MessageStatus.CONNECTION_LOST)

    def receive_text(self, data: str | bytes | bytearray | memoryview, now: float) -> None:
        """One received text frame: resolves the request it answers, or counts it as unmatched."""
        try:
            message = json.loads(data if isinstance(data, str) else bytes(data).decode())  # str: no detect_encoding
        except (ValueError, RecursionError):  # RecursionError: nested too deeply for the parser
            self._count("not_json")
            return
        plan = self.plan
        key = walk(message, plan.correlate_path)
        # A correlation value is a string or a number (msg_id, seq): true would equal 1 in a dict, not in JSON.
        hashable = key.__hash__ is not None and key.__class__ is not bool
        if plan.fail_on:
            rule = plan.failing_rule(message, hashable and (key in self.pending or key in self._late))
            if rule is not None:
                self.end(f"failed_by_message({rule})", MessageStatus.FAILED_BY_MESSAGE)
                return
        if not self.ready:
            assert plan.init_expect is not None
            if all(holds(cond, lookup(message, path), cond.arg) for path, cond in plan.init_expect):
                self.ready = True
            else:
                self._count("before_init")
            return
        entry = self.pending.pop(key, None) if hashable else None
        if entry is None:
            self._count("late_reply" if hashable and key in self._late else "unsolicited")
            return
        sent_at, seq, msg_id, _ = entry
        failure = plan.check_reply(message, msg_id, seq, self.index) if plan.checks else None
        log = self.log
        if failure is None:
            self.ok += 1
            log.sent_at.append(sent_at - self.origin)
            log.latency.append(now - sent_at)
            log.status.append(0)
            log.session.append(self.index)
            return
        self.failed += 1
        path, expected, got = failure
        log.failure(
            self.index,
            seq,
            sent_at - self.origin,
            now - sent_at,
            MessageStatus.CONTENT_MISMATCH,
            f"content_mismatch({path})",
            expected,
            got,
        )

    def receive_other(self, kind: str) -> None:
        """A frame that is not one text message (``binary``)."""
        self._count(kind)

    # -- time and ends -----------------------------------------------------------------------------
    def oldest_pending(self) -> float | None:
        for sent_at, _, _, _ in self.pending.values():
            return sent_at
        return None

    def expire(self, now: float) -> int:
        """Fail the requests older than the reply timeout; how many did."""
        limit = now - self.plan.config.reply_timeout_s
        expired = [key for key, (sent_at, _, _, _) in self.pending.items() if sent_at <= limit]
        for key in expired:
            sent_at, seq, _, _ = self.pending.pop(key)
            self.failed += 1
            self.log.failure(self.index, seq, sent_at - self.origin, math.nan, MessageStatus.TIMEOUT, "timeout")
            if len(self._late) < MAX_LATE_KEYS:
                self._late.add(key)
        return len(expired)

    def end(self, reason: str, status: MessageStatus) -> None:
        """The session ends: every pending request resolves with ``status`` (``stopped`` is not a failure)."""
        if self.outcome is None:
            self.outcome = reason
        for sent_at, seq, _, _ in self.pending.values():
            if status is not MessageStatus.STOPPED:
                self.failed += 1
            self.log.failure(self.index, seq, sent_at - self.origin, math.nan, status, reason)
        self.pending.clear()
