"""The legacy ``expect`` list of a WebSocket step: a state machine over the types of received events,
in order, until the end event. Pure (fed with event types; no I/O). The conversation machine
(``conversation.py``) is the general form; this one stays for the old step shape and the soak's
fast path."""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "FeedStatus",
    "FeedResult",
    "EventExpectation",
]


class FeedStatus(str, enum.Enum):
    CONTINUE = "continue"
    DONE = "done"
    UNEXPECTED = "unexpected"


@dataclass(frozen=True)
class FeedResult:
    status: FeedStatus
    expected: str | None = None
    got: str | None = None


@functools.lru_cache(maxsize=256)
def _type_sets(
    expected: tuple[str, ...], end_event: str, fail_events: tuple[str, ...]
) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(fail, expected, decisive) type sets, shared by every session of a step (a soak holds thousands)."""
    fail, expected_types = frozenset(fail_events), frozenset(expected)
    return fail, expected_types, fail | expected_types | {end_event}


class EventExpectation:
    """State machine over received event types: in order, until the end event.

    Expected types must arrive in the listed order. An expected type out of order, the
    end event before all expected ones, or a ``fail_events`` type is unexpected. Other
    types are ignored or unexpected per ``other_events``. ``None`` stands for a message
    that is not JSON or has no type key.
    """

    UNTYPED = "<untyped>"
    __slots__ = (
        "_expected",
        "_end",
        "_end_timeout",
        "_other_fail",
        "_fail",
        "_expected_types",
        "_index",
        "_done",
        "decisive_types",
    )

    def __init__(
        self,
        expected: Sequence[tuple[str, float]],
        end_event: str,
        end_timeout_s: float,
        *,
        other_events: str = "ignore",
        fail_events: Iterable[str] = ("error",),
    ) -> None:
        self._expected = list(expected)
        self._end = end_event
        self._end_timeout = end_timeout_s
        self._other_fail = other_events == "fail"
        self._fail, self._expected_types, decisive = _type_sets(
            tuple(t for t, _ in self._expected), end_event, tuple(fail_events)
        )
        self._index = 0
        self._done = False
        # The types ``feed`` can do more with than CONTINUE (None: every type can, other_events: fail).
        # A driver may skip ``feed`` for any other type (untyped included): nothing would change.
        self.decisive_types: frozenset[str] | None = None if self._other_fail else decisive

    @property
    def waiting_for(self) -> str:
        if self._index < len(self._expected):
            return self._expected[self._index][0]
        return self._end

    @property
    def current_timeout_s(self) -> float:
        if self._index < len(self._expected):
            return self._expected[self._index][1]
        return self._end_timeout

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, event_type: str | None) -> FeedResult:
        got = event_type if event_type is not None else self.UNTYPED
        if self._done:
            return FeedResult(FeedStatus.DONE)
        if event_type is not None and event_type in self._fail:
            return FeedResult(FeedStatus.UNEXPECTED, self.waiting_for, got)
        if self._index < len(self._expected) and event_type == self._expected[self._index][0]:
            self._index += 1
            if event_type == self._end and self._index == len(self._expected):
                self._done = True
                return FeedResult(FeedStatus.DONE)
            return FeedResult(FeedStatus.CONTINUE)
        if event_type == self._end:
            if self._index == len(self._expected):
                self._done = True
                return FeedResult(FeedStatus.DONE)
            return FeedResult(FeedStatus.UNEXPECTED, self.waiting_for, got)
        if event_type is not None and event_type in self._expected_types:
            return FeedResult(FeedStatus.UNEXPECTED, self.waiting_for, got)
        if self._other_fail:
            return FeedResult(FeedStatus.UNEXPECTED, self.waiting_for, got)
        return FeedResult(FeedStatus.CONTINUE)
