"""The values a conversation machine (``probes.conversation``) exchanges with its driver: the
``Frame`` received or sent, the actions the driver performs (``Send``, ``Close``), the
``FrameRecord`` of each received frame in the transcript with its ``Disposition``, and the
``ConversationOutcome`` a session ends with. Plain frozen data, no behaviour beyond labels."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Frame",
    "Send",
    "Close",
    "Action",
    "Disposition",
    "FrameRecord",
    "ConversationOutcomeKind",
    "ConversationOutcome",
]


@dataclass(frozen=True)
class Frame:
    """One WebSocket data frame, as received or to be sent."""

    kind: Literal["text", "binary"]
    data: str | bytes

    @classmethod
    def of(cls, raw: str | bytes) -> Frame:
        return cls("binary", bytes(raw)) if isinstance(raw, (bytes, bytearray, memoryview)) else cls("text", raw)

    @property
    def size(self) -> int:
        return len(self.data) if isinstance(self.data, bytes) else len(self.data.encode("utf-8", "replace"))


@dataclass(frozen=True)
class Send:
    """Send this frame now."""

    frame: Frame


@dataclass(frozen=True)
class Close:
    """Close the connection with this code: the conversation is over."""

    code: int


Action = Send | Close


class Disposition(str, enum.Enum):
    """What a received frame did."""

    MATCHED = "matched"  # advanced a stream
    IGNORED = "ignored"  # an ignore rule, a stream's extra: ignore, or late_replies: ignore took it
    UNSOLICITED = "unsolicited"  # nobody claimed it and unmatched: ignore
    FAILED = "failed"  # it ended the conversation
    AFTER_END = "after_end"  # arrived after the outcome: recorded, changes nothing

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class FrameRecord:
    """One received frame in the transcript: never the payload, only what it was and what it did."""

    index: int
    at_s: float
    kind: str
    label: str
    size: int
    disposition: Disposition
    sha256: str | None = None  # binary frames only
    stream: str | None = None
    item: int | None = None
    rule: str | None = None


class ConversationOutcomeKind(str, enum.Enum):
    OK = "ok"
    TIMEOUT = "timeout"
    UNEXPECTED_EVENT = "unexpected_event"
    CONTENT_MISMATCH = "content_mismatch"
    FAILED_BY_MESSAGE = "failed_by_message"
    SUBPROTOCOL_MISMATCH = "subprotocol_mismatch"
    BAD_FRAME = "bad_frame"
    TEMPLATE_ERROR = "template_error"
    CLOSED = "closed"  # the peer closed first: the engine maps the code with outcome_for_close

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ConversationOutcome:
    kind: ConversationOutcomeKind
    detail: str = ""  # what goes in the parentheses of the label
    stream: str | None = None
    item: int | None = None
    path: str | None = None
    expected: str | None = None
    got: str | None = None
    rule: str | None = None
    close_code: int | None = None

    @property
    def label(self) -> str:
        return f"{self.kind.value}({self.detail})" if self.detail else self.kind.value

    @property
    def ok(self) -> bool:
        return self.kind is ConversationOutcomeKind.OK
