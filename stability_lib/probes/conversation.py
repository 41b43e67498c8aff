"""The sans-I/O conversation machine of a WebSocket step (issue 13, design section 5).

No asyncio, no sockets, no clock: the driver passes ``now`` (seconds, any monotonic origin) and
every received frame, and performs the actions the machine returns. The same split as the
websockets library (protocol object vs. the I/O loop around it)::

    conv = Conversation(step, context, ids=make_ids(step, salt))
    actions = conv.start(now, subprotocol=ws.subprotocol)
    while not conv.done:
        perform(actions)                     # Send -> ws.send(frame.data); Close -> ws.close(code)
        wait for a frame until conv.next_deadline
        actions = conv.receive(frame, now) or conv.tick(now) or conv.closed(code, now)
    perform(actions)                         # final sends, then Close

An ``expect`` item ``close: <code(s)>`` is met by ``closed(code)`` only, never by a message: an
accepted code ends the conversation ok, another code (or none) ends it ``closed`` naming both.

Outcome kinds are strings of ``ConversationOutcomeKind``; ``ok``, ``timeout`` and
``unexpected_event`` have the names of ``probes.sessions.OutcomeKind``; the others are new.
The values exchanged (frames, actions, records, outcomes) live in ``probes.conversation_types`` and
the condition test in ``probes.message_checks``; both are re-exported here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .conditions import ABSENT, Condition, bytes_holds, json_equal, lookup, parse_path
from .conversation_spec import BinarySend, ExpectItem, MatchRule, StreamSpec, compile_conditions
from .conversation_types import (
    Action,
    Close,
    ConversationOutcome,
    ConversationOutcomeKind,
    Disposition,
    Frame,
    FrameRecord,
    Send,
)
from .message_checks import DETAIL_CAP, _cap, check_body, first_failure, parse_json
from .scenario import WsStep
from .templates import TemplateError, render_template

__all__ = [
    "Frame",
    "Send",
    "Close",
    "Action",
    "Disposition",
    "FrameRecord",
    "ConversationOutcomeKind",
    "ConversationOutcome",
    "Conversation",
    "make_ids",
    "first_failure",
    "check_body",
    "DETAIL_CAP",
]

LABEL_CAP = 80


def make_ids(step: WsStep, salt: str) -> dict[str, str | int]:
    """Fresh ids for one session: 8 hex characters (string) or a per-session counter (int)."""
    ids: dict[str, str | int] = {}
    for counter, (name, kind) in enumerate(sorted(step.ids.items()), start=1):
        ids[name] = counter if kind == "int" else hashlib.sha256(f"{salt}\0{name}".encode()).hexdigest()[:8]
    return ids


def binary_payload(spec: BinarySend, seed: str) -> bytes:
    if spec.base64 is not None:
        return base64.b64decode(spec.base64)
    if spec.hex is not None:
        return bytes.fromhex(spec.hex)
    if spec.repeat is not None and spec.size is not None:
        unit = spec.repeat.encode("utf-8") or b"\0"
        return (unit * (spec.size // len(unit) + 1))[: spec.size]
    assert spec.random is not None
    return random.Random(f"{seed}\0{spec.name}").randbytes(spec.random)  # reproducible: seeded per session


@dataclass
class _StreamState:
    spec: StreamSpec
    correlate: list[list[tuple[tuple[str, ...], Any]]]
    since: float  # time of the stream's last progress (item deadlines count from here)
    position: int = 0
    seen: int = 0  # messages matched for the current item (count)

    @property
    def finished(self) -> bool:
        return self.position >= len(self.spec.ordered)

    @property
    def current(self) -> ExpectItem:
        return self.spec.ordered[self.position]


def _expected_got(
    kind: ConversationOutcomeKind, state: _StreamState, got: str, close_code: int | None = None
) -> ConversationOutcome:
    """The outcome of a stream whose current item met something else: what it expected, what came."""
    expected = state.current.label()
    return ConversationOutcome(
        kind,
        f"expected={expected}, got={got}",
        stream=state.spec.name,
        item=state.position,
        expected=expected,
        got=got,
        close_code=close_code,
    )


@dataclass
class _Waiting:
    group_index: int
    entered: float
    timeout_s: float | None
    streams: list[_StreamState] = field(default_factory=list)


class Conversation:
    """One session's exchange on one WebSocket step. Not thread-safe; one per session."""

    def __init__(
        self,
        step: WsStep,
        context: Mapping[str, Any],
        *,
        ids: Mapping[str, str | int] | None = None,
        seed: str = "",
    ) -> None:
        self.step = step
        self._context: dict[str, Any] = {**context, **(ids or {})}
        self._seed = seed
        self._position = 0
        self._started: float | None = None
        self._waiting: _Waiting | None = None
        self._finished_streams: list[_StreamState] = []
        self._blobs: dict[str, bytes] = {}
        self._records: list[FrameRecord] = []
        self._received = 0
        self.captured: dict[str, Any] = {}
        self.sent: list[tuple[str, int]] = []  # (kind, size) of every frame we sent
        self.outcome: ConversationOutcome | None = None
        self._label_paths = [parse_path(p) for p in step.label_paths]
        self._compiled: dict[int, tuple[tuple[tuple[str, ...], Condition], ...]] = {}

    # -- driver API ------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.outcome is not None

    @property
    def records(self) -> list[FrameRecord]:
        return list(self._records)

    @property
    def awaiting_capture(self) -> bool:
        """A reply still awaited carries a value to capture: often the id of something a request just
        created, which a finally step needs to undo it. A driver that is stopped now reads on briefly."""
        waiting = self._waiting
        if self.done or waiting is None:
            return False
        return any(not state.finished and state.current.capture for state in waiting.streams)

    @property
    def next_deadline(self) -> float | None:
        """The driver calls ``tick`` by then at the latest (None when done)."""
        if self.done or self._started is None:
            return None
        deadlines = [self._started + self.step.timeout_s]
        waiting = self._waiting
        if waiting is not None:
            if waiting.timeout_s is not None:
                deadlines.append(waiting.entered + waiting.timeout_s)
            for state in waiting.streams:
                if not state.finished and state.current.timeout_s is not None:
                    deadlines.append(state.since + state.current.timeout_s)
        return min(deadlines)

    def start(self, now: float, subprotocol: str | None = None) -> list[Action]:
        """After the handshake: the sends up to the first expect (or an early failure)."""
        if self._started is not None:
            raise RuntimeError("start() called twice")
        self._started = now
        wanted = self.step.require_subprotocol or (self.step.subprotocols[0] if self.step.subprotocols else None)
        if wanted is not None and subprotocol != wanted:
            return self._end(
                ConversationOutcome(
                    ConversationOutcomeKind.SUBPROTOCOL_MISMATCH, f"wanted={wanted}, got={subprotocol or 'none'}"
                )
            )
        return self._run_sends(now)

    def tick(self, now: float) -> list[Action]:
        """Time passed: end with a timeout when a deadline is over."""
        deadline = self.next_deadline
        if deadline is None or now < deadline:
            return []
        return self._end(
            ConversationOutcome(ConversationOutcomeKind.TIMEOUT, self._awaiting_label(now), **self._awaiting_where())
        )

    def closed(self, code: int | None, now: float) -> list[Action]:
        """The peer closed (code None: no close frame). Awaited by a ``close`` item, an accepted code ends
        the conversation ok (the close is a matched frame of the transcript); any other close is ``closed``,
        naming what a close item expected. The engine maps the code to its close outcomes."""
        if self.done:
            return []
        state = self._awaiting_close()
        if state is None:
            self.outcome = ConversationOutcome(
                ConversationOutcomeKind.CLOSED, str(code if code is not None else 1006), close_code=code
            )
            return []
        got = f"close {code}" if code is not None else "no close frame (1006)"
        accepted = code in state.current.close_codes
        disposition = Disposition.MATCHED if accepted else Disposition.FAILED
        at = round(now - self._started, 6) if self._started is not None else 0.0
        self._records.append(
            FrameRecord(self._received, at, "close", got, 0, disposition, None, state.spec.name, state.position)
        )
        self._received += 1
        if accepted:
            state.position += 1
            self.outcome = ConversationOutcome(ConversationOutcomeKind.OK)
        else:
            self.outcome = _expected_got(ConversationOutcomeKind.CLOSED, state, got, close_code=code)
        return []

    def receive(self, frame: Frame, now: float) -> list[Action]:
        """Classify one received frame; returns what to send next (and Close when it is over)."""
        index = self._received
        self._received += 1
        if self.done:
            self._record(index, now, frame, self._label_of(frame, None), Disposition.AFTER_END)
            return []
        if self._received > self.step.max_frames:
            self._record(index, now, frame, "<too many>", Disposition.FAILED)
            return self._end(ConversationOutcome(ConversationOutcomeKind.BAD_FRAME, "too_many"))
        message: Any = ABSENT
        if frame.kind == "text":
            if self.step.frames == "json":
                message, why = parse_json(frame.data)
                if why:
                    self._record(index, now, frame, "<not json>", Disposition.FAILED)
                    return self._end(ConversationOutcome(ConversationOutcomeKind.BAD_FRAME, "not_json", got=why))
            else:
                message = frame.data
        label = self._label_of(frame, message)
        return self._classify(index, now, frame, message, label)

    # -- classification (design 5, rules 2-6) ------------------------------------------------------
    def _classify(self, index: int, now: float, frame: Frame, message: Any, label: str) -> list[Action]:
        for rule in self.step.fail_on:
            if self._rule_holds(rule, frame, message, needs_correlation=rule.correlated):
                self._record(index, now, frame, label, Disposition.FAILED, rule=rule.name)
                return self._end(
                    ConversationOutcome(
                        ConversationOutcomeKind.FAILED_BY_MESSAGE, str(rule.name), rule=rule.name, got=label
                    )
                )
        waiting = self._waiting
        if waiting is not None:
            for state in self._offer_order(waiting.streams, frame, message):
                item = state.position if not state.finished else None  # before _offer advances it
                try:
                    verdict = self._offer(state, frame, message, label, now)
                except TemplateError as exc:  # a check names a capture that never came
                    verdict = (
                        Disposition.FAILED,
                        ConversationOutcome(
                            ConversationOutcomeKind.TEMPLATE_ERROR,
                            _cap(str(exc), 120),
                            stream=state.spec.name,
                            item=item,
                        ),
                    )
                if verdict is None:
                    continue
                disposition, outcome = verdict
                self._record(index, now, frame, label, disposition, stream=state.spec.name, item=item)
                if outcome is not None:
                    return self._end(outcome)
                if all(s.finished for s in waiting.streams):
                    self._finished_streams.extend(waiting.streams)
                    self._waiting = None
                    self._position += 1
                    return self._run_sends(now)
                return []
        for state in self._finished_streams:
            if state.correlate and self._belongs(state, message):
                if self.step.late_replies == "ignore":
                    self._record(index, now, frame, label, Disposition.IGNORED, stream=state.spec.name)
                    return []
                self._record(index, now, frame, label, Disposition.FAILED, stream=state.spec.name)
                return self._end(
                    ConversationOutcome(
                        ConversationOutcomeKind.UNEXPECTED_EVENT,
                        f"expected=nothing, got=late reply to {state.spec.name}",
                        stream=state.spec.name,
                        expected="nothing",
                        got=label,
                    )
                )
        for rule in self.step.ignore:
            if self._rule_holds(rule, frame, message, needs_correlation=False):
                self._record(index, now, frame, label, Disposition.IGNORED, rule=rule.name)
                return []
        if self.step.unmatched == "fail":
            self._record(index, now, frame, label, Disposition.FAILED)
            expected = self._awaiting_label(now)
            return self._end(
                ConversationOutcome(
                    ConversationOutcomeKind.UNEXPECTED_EVENT,
                    f"expected={expected}, got={label}",
                    expected=expected,
                    got=label,
                )
            )
        self._record(index, now, frame, label, Disposition.UNSOLICITED)
        return []

    def _offer_order(self, streams: Sequence[_StreamState], frame: Frame, message: Any) -> Sequence[_StreamState]:
        """The streams a frame is offered to, first those whose awaited item it is, and among those first the
        ones whose check it meets. Streams that share a correlation (``unordered``: one stream per item) all
        claim the frame; offered in list order, the first would call an item of another stream extra (ignored
        or failed) and that stream would never see its reply: a protocol that answers on two channels in no
        fixed order failed for no fault of its own. Two items with the same ``match`` and different checks
        (a kernel's status busy, then idle) took their frames in list order, not by content."""
        if len(streams) < 2:
            return streams
        awaited = [s for s in streams if self._awaits(s, frame, message)]
        if len(awaited) > 1:  # items that differ by their check only (status busy, status idle): the one it meets
            awaited.sort(key=lambda s: not self._meets_check(s, frame, message))
        if not awaited or awaited[0] is streams[0]:
            return streams
        return [*awaited, *(s for s in streams if s not in awaited)]

    def _meets_check(self, state: _StreamState, frame: Frame, message: Any) -> bool:
        try:
            return self._check(state.current, frame, message) is None
        except TemplateError:  # a check naming a capture that never came: _offer says so if the frame goes there
            return False

    def _awaits(self, state: _StreamState, frame: Frame, message: Any) -> bool:
        if state.finished or (state.correlate and not self._belongs(state, message)):
            return False
        return self._item_matches(state.current, frame, message, use_check=False)

    def _offer(
        self, state: _StreamState, frame: Frame, message: Any, label: str, now: float
    ) -> tuple[Disposition, ConversationOutcome | None] | None:
        """None: the frame does not belong to this stream. Otherwise what it did there."""
        correlated = bool(state.correlate)
        if (correlated and not self._belongs(state, message)) or (state.finished and not correlated):
            return None
        if state.finished:
            return (
                (Disposition.IGNORED, None)
                if self.step.late_replies == "ignore"
                else (
                    Disposition.FAILED,
                    ConversationOutcome(
                        ConversationOutcomeKind.UNEXPECTED_EVENT,
                        f"expected=nothing, got=late reply to {state.spec.name}",
                        stream=state.spec.name,
                        expected="nothing",
                        got=label,
                    ),
                )
            )
        current = state.current
        if self._item_matches(current, frame, message, use_check=False):
            failure = self._check(current, frame, message)
            if failure is not None:
                path, expected, got = failure
                return Disposition.FAILED, ConversationOutcome(
                    ConversationOutcomeKind.CONTENT_MISMATCH,
                    f"{state.spec.name}: {path}",
                    stream=state.spec.name,
                    item=state.position,
                    path=path,
                    expected=_cap(expected),
                    got=_cap(got),
                )
            self._capture(current, message)
            state.seen += 1
            state.since = now
            if state.seen >= current.count:
                state.position += 1
                state.seen = 0
            return Disposition.MATCHED, None
        for later in state.spec.ordered[state.position + 1 :]:
            if self._item_matches(later, frame, message, use_check=False):
                return Disposition.FAILED, _expected_got(ConversationOutcomeKind.UNEXPECTED_EVENT, state, label)
        if not correlated:
            return None
        if state.spec.extra == "ignore":
            return Disposition.IGNORED, None
        return Disposition.FAILED, _expected_got(ConversationOutcomeKind.UNEXPECTED_EVENT, state, label)

    # -- matching ------------------------------------------------------------------------------------
    def _belongs(self, state: _StreamState, message: Any) -> bool:
        if message is ABSENT:
            return False
        return any(
            all(json_equal(lookup(message, path), value) for path, value in alternative)
            for alternative in state.correlate
        )

    def _conditions_fail(self, conditions: Mapping[str, Any], message: Any, star: bool) -> tuple[str, Any, Any] | None:
        compiled = self._compiled.get(id(conditions))
        if compiled is None:  # the mappings live in self.step, so their ids are stable meanwhile
            compiled = self._compiled[id(conditions)] = compile_conditions(conditions, allow_star=star)
        return first_failure(compiled, list(conditions), message, self._context)

    def _item_matches(self, item: ExpectItem, frame: Frame, message: Any, use_check: bool) -> bool:
        if item.close is not None or item.frame != frame.kind:  # a close item is met by the close only
            return False
        if frame.kind == "binary":
            spec = item.match.get("bytes")
            return spec is None or bytes_holds(spec, frame.data, self._blobs)[0]  # type: ignore[arg-type]
        try:
            return self._conditions_fail(item.match, message, star=False) is None
        except TemplateError:
            return False

    def _check(self, item: ExpectItem, frame: Frame, message: Any) -> tuple[str, Any, Any] | None:
        if frame.kind == "binary":
            spec = item.check.get("bytes")
            if spec is None:
                return None
            held, expected, got = bytes_holds(spec, frame.data, self._blobs)  # type: ignore[arg-type]
            return None if held else ("bytes", expected, got)
        return self._conditions_fail(item.check, message, star=True)

    def _rule_holds(self, rule: MatchRule, frame: Frame, message: Any, needs_correlation: bool) -> bool:
        if frame.kind != "text" or message is ABSENT:
            return False
        if needs_correlation:
            streams = [*(self._waiting.streams if self._waiting else []), *self._finished_streams]
            if not any(s.correlate and self._belongs(s, message) for s in streams):
                return False
        try:
            return self._conditions_fail(rule.match, message, star=False) is None
        except TemplateError:
            return False

    def _capture(self, item: ExpectItem, message: Any) -> None:
        for var, path in item.capture.items():
            value = lookup(message, parse_path(path))
            if value is not ABSENT:  # absent: a later send that needs it ends in template_error
                self.captured[var] = value
                self._context[var] = value

    # -- sending ---------------------------------------------------------------------------------------
    def _run_sends(self, now: float) -> list[Action]:
        actions: list[Action] = []
        items = self.step.conversation
        try:
            while self._position < len(items):
                item = items[self._position]
                if item.expect is not None:
                    self._enter(item.expect, now)
                    return actions
                actions.append(
                    Send(
                        self._render_send(
                            item.kind,
                            item.send
                            if item.kind == "send"
                            else (item.send_text if item.kind == "send_text" else item.send_binary),
                        )
                    )
                )
                self._position += 1
            for template in self.step.final_send:
                actions.append(Send(Frame("text", json.dumps(render_template(template, self._context)))))
        except TemplateError as exc:
            return actions + self._end(ConversationOutcome(ConversationOutcomeKind.TEMPLATE_ERROR, _cap(str(exc), 120)))
        except RecursionError:  # a captured value that parsed just under the limit cannot be encoded again
            detail = "a send nested too deeply to encode (a captured value): not sent"
            return actions + self._end(ConversationOutcome(ConversationOutcomeKind.TEMPLATE_ERROR, detail))
        return actions + self._end(ConversationOutcome(ConversationOutcomeKind.OK))

    def _render_send(self, kind: str, value: Any) -> Frame:
        if kind == "send_binary":
            data = binary_payload(value, self._seed)
            if value.name:
                self._blobs[value.name] = data
            frame = Frame("binary", data)
        elif kind == "send_text":
            frame = Frame("text", str(render_template(value, self._context)))
        else:
            frame = Frame("text", json.dumps(render_template(value, self._context)))
        self.sent.append((frame.kind, frame.size))
        return frame

    def _enter(self, group: Any, now: float) -> None:
        streams = []
        for spec in group.streams:
            correlate = [
                [(parse_path(path), render_template(template, self._context)) for path, template in alternative.items()]
                for alternative in spec.correlate
            ]
            streams.append(_StreamState(spec, correlate, since=now))
        self._waiting = _Waiting(self._position, now, group.timeout_s, streams)

    def _end(self, outcome: ConversationOutcome) -> list[Action]:
        if self.outcome is None:
            self.outcome = outcome
        return [Close(self.step.close_code)]

    # -- labels and records ----------------------------------------------------------------------------
    def _label_of(self, frame: Frame, message: Any) -> str:
        if frame.kind == "binary":
            return f"<binary {frame.size} bytes>"
        if message is ABSENT:
            return "<untyped>"
        for path in self._label_paths:
            value = lookup(message, path)
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                return _cap(str(value), LABEL_CAP)
        return "<untyped>"

    def _awaiting(self, now: float) -> tuple[_StreamState | None, str]:
        waiting = self._waiting
        if waiting is None:
            return None, "nothing"
        pending = [s for s in waiting.streams if not s.finished]
        if not pending:
            return None, "nothing"
        # The stream whose own deadline is earliest is the one that timed out; else the first pending.
        timed = [s for s in pending if s.current.timeout_s is not None]
        chosen = min(timed, key=lambda s: s.since + (s.current.timeout_s or 0)) if timed else pending[0]
        return chosen, chosen.current.label()

    def _awaiting_close(self) -> _StreamState | None:
        """The stream whose close item is all that is still awaited, if any."""
        pending = [s for s in self._waiting.streams if not s.finished] if self._waiting is not None else []
        return pending[0] if len(pending) == 1 and pending[0].current.close is not None else None

    def _awaiting_label(self, now: float) -> str:
        state, label = self._awaiting(now)
        if state is None:
            return f"{self.step.name}:{label}"
        return f"{self.step.name}:{state.spec.name}:{label}"

    def _awaiting_where(self) -> dict[str, Any]:
        state, _ = self._awaiting(0.0)
        return {} if state is None else {"stream": state.spec.name, "item": state.position}

    def _record(
        self,
        index: int,
        now: float,
        frame: Frame,
        label: str,
        disposition: Disposition,
        stream: str | None = None,
        item: int | None = None,
        rule: str | None = None,
    ) -> None:
        digest = hashlib.sha256(frame.data).hexdigest() if isinstance(frame.data, bytes) else None
        at = now - self._started if self._started is not None else 0.0
        self._records.append(
            FrameRecord(index, round(at, 6), frame.kind, label, frame.size, disposition, digest, stream, item, rule)
        )

    def counts(self) -> dict[str, int]:
        """Received frames by disposition, for the session record."""
        out: dict[str, int] = {}
        for record in self._records:
            out[record.disposition.value] = out.get(record.disposition.value, 0) + 1
        return out


def transcript_frames(lines: Sequence[Mapping[str, Any]]) -> list[tuple[float, Frame]]:
    """Received frames of a recorded transcript (``{"dir": "in", "t": ..., "msg": ...}`` lines)."""
    return [(float(line["t"]), Frame("text", json.dumps(line["msg"]))) for line in lines if line.get("dir") == "in"]
