"""Faults of the sample service: what can go wrong, parsed from strings or a dict.

Pure: no I/O. A ``Faults`` value is the whole fault configuration of one server;
``VARIANTS`` names the three builds the demo plays (``baseline``, ``candidate``,
``regressed``). Explicit faults compose on top of a variant:
``Faults.parse(["slow=login:50"], base=VARIANTS["candidate"])``.

String syntax (command line ``--fault``, one item each; environment
``STABILITY_DEMO_FAULTS``, items separated by ``;``)::

    ws_1011_rate=0.05        probability per user_message of a close with 1011
    ws_drop_rate=0.1         probability per user_message of a cut without close frame (1006)
    slow=login:50            extra latency in ms on one operation (repeatable)
    leak_rate=0.2            probability a response carries another user's message
    api_break=field_removed  field_removed | param_required | endpoint_removed (repeatable)
    auth_bypass              an invalid token is accepted (also auth_bypass=true)
    max_length_500           a username of exactly the maximum length (64) makes registration
                             answer 500 (an off-by-one; also max_length_500=true)
    seed=7                   seed of the service's random generator
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from ..core.errors import ParamsError

__all__ = [
    "ApiBreak",
    "SlowOperation",
    "Faults",
    "FaultSpecError",
    "VARIANTS",
    "FAULTS_ENV_VAR",
    "variant_faults",
    "split_fault_text",
]

# Name of the environment variable read by ``python -m stability_lib.demo``.
FAULTS_ENV_VAR = "STABILITY_DEMO_FAULTS"

_MAX_SLOW_MS = 60_000.0  # a fault that sleeps minutes is a hang, not a slowdown
_MAX_SPEC_CHARS = 200
# Faults that are on or off: ``name`` alone or ``name=true|false``.
_FLAGS = ("auth_bypass", "max_length_500")


class FaultSpecError(ParamsError):
    """A fault specification (string or dict) is not valid."""


class ApiBreak(str, enum.Enum):
    """A breaking change of the HTTP contract."""

    FIELD_REMOVED = "field_removed"  # ``created_at`` disappears from thread responses
    PARAM_REQUIRED = "param_required"  # ``limit`` becomes required on GET /api/threads
    ENDPOINT_REMOVED = "endpoint_removed"  # GET /api/threads/{id}/messages disappears
    EVENT_CHANGED = "event_changed"  # WebSocket agent_completed loses duration_ms; its step becomes a string
    SCHEMA_CHANGED = "schema_changed"  # messages.role narrowed to VARCHAR(16), an index dropped

    def __str__(self) -> str:
        return self.value


class SlowOperation(str, enum.Enum):
    """An operation that the ``slow`` fault can delay."""

    LOGIN = "login"
    THREAD_CREATE = "thread_create"
    MESSAGE_STORE = "message_store"
    AGENT_DATA = "agent_data"
    AGENT_OPTIMIZATION = "agent_optimization"
    AGENT_REPORTING = "agent_reporting"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Faults:
    """Complete fault configuration of one sample-service instance.

    ``slow_ms`` is a sorted tuple of ``(operation, milliseconds)`` pairs so the
    value stays hashable; use ``delay_ms(op)`` to read it.
    """

    ws_1011_rate: float = 0.0
    ws_drop_rate: float = 0.0
    leak_rate: float = 0.0
    slow_ms: tuple[tuple[SlowOperation, float], ...] = ()
    api_breaks: frozenset[ApiBreak] = field(default_factory=frozenset)
    auth_bypass: bool = False
    max_length_500: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("ws_1011_rate", "ws_drop_rate", "leak_rate"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= float(value) <= 1.0):
                raise FaultSpecError(f"{name} must be a probability in [0, 1], got {value!r}")
        ops = [op for op, _ in self.slow_ms]
        if len(ops) != len(set(ops)):
            raise FaultSpecError("slow_ms names an operation twice")
        for op, ms in self.slow_ms:
            if not isinstance(op, SlowOperation):
                raise FaultSpecError(f"unknown slow operation {op!r}")
            if not (0.0 <= ms <= _MAX_SLOW_MS):
                raise FaultSpecError(f"slow {op.value} must be 0..{_MAX_SLOW_MS:g} ms, got {ms!r}")
        if not all(isinstance(b, ApiBreak) for b in self.api_breaks):
            raise FaultSpecError(f"unknown api_break in {sorted(map(str, self.api_breaks))}")

    # -- reading -------------------------------------------------------------

    def delay_ms(self, operation: SlowOperation) -> float:
        """Extra latency injected into ``operation`` (0 when none)."""
        for op, ms in self.slow_ms:
            if op is operation:
                return ms
        return 0.0

    def breaks(self, kind: ApiBreak) -> bool:
        return kind in self.api_breaks

    @property
    def is_healthy(self) -> bool:
        """True when no fault is active (the seed does not count)."""
        return replace(self, seed=0) == Faults()

    def to_specs(self) -> tuple[str, ...]:
        """The string items that ``Faults.parse`` turns back into this value."""
        specs: list[str] = []
        if self.ws_1011_rate:
            specs.append(f"ws_1011_rate={self.ws_1011_rate:g}")
        if self.ws_drop_rate:
            specs.append(f"ws_drop_rate={self.ws_drop_rate:g}")
        if self.leak_rate:
            specs.append(f"leak_rate={self.leak_rate:g}")
        specs.extend(f"slow={op.value}:{ms:g}" for op, ms in self.slow_ms)
        specs.extend(f"api_break={b.value}" for b in sorted(self.api_breaks, key=lambda b: b.value))
        specs.extend(flag for flag in _FLAGS if getattr(self, flag))
        if self.seed:
            specs.append(f"seed={self.seed}")
        return tuple(specs)

    # -- building ------------------------------------------------------------

    @classmethod
    def parse(cls, specs: str | Iterable[str], base: Faults | None = None) -> Faults:
        """Apply string items (``"slow=login:50"``) on top of ``base`` (default: no faults).

        A single string may hold several items separated by ``;`` (the
        environment syntax). Later items win for rates and per-operation delays;
        ``api_break`` items accumulate.
        """
        items = split_fault_text(specs) if isinstance(specs, str) else [s.strip() for s in specs]
        faults = base if base is not None else cls()
        for item in items:
            if item:
                key, _, value = item.partition("=")
                faults = faults._with(key.strip(), value.strip(), had_value="=" in item)
        return faults

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], base: Faults | None = None) -> Faults:
        """Apply a params-style dict on top of ``base``.

        Accepted shapes: ``{"ws_1011_rate": 0.05, "slow": {"login": 50} or
        ["login:50"], "api_break": "field_removed" or [...], "auth_bypass": true, "max_length_500": true,
        "leak_rate": 0.2, "ws_drop_rate": 0.1, "seed": 7}``.
        """
        if not isinstance(raw, Mapping):
            raise FaultSpecError(f"faults must be a mapping, got {type(raw).__name__}")
        items: list[str] = []
        for key, value in raw.items():
            if key == "slow":
                pairs = value.items() if isinstance(value, Mapping) else None
                if pairs is not None:
                    items.extend(f"slow={op}:{ms}" for op, ms in pairs)
                else:
                    items.extend(f"slow={v}" for v in _as_list(key, value))
            elif key in ("api_break", "api_breaks"):
                items.extend(f"api_break={v}" for v in _as_list(key, value))
            elif key in _FLAGS:
                if not isinstance(value, bool):
                    raise FaultSpecError(f"{key} must be true or false, got {value!r}")
                items.append(f"{key}={'true' if value else 'false'}")
            elif isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise FaultSpecError(f"{key} must be a number, got {value!r}")
            else:
                items.append(f"{key}={value}")
        return cls.parse(items, base=base)

    @classmethod
    def coerce(
        cls, value: Faults | Mapping[str, Any] | str | Iterable[str] | None, base: Faults | None = None
    ) -> Faults:
        """Build from any accepted form on top of ``base``.

        A ``Faults`` value is overlaid (its active faults are added to ``base``);
        strings and dicts are applied item by item.
        """
        base = base if base is not None else cls()
        if value is None:
            return base
        if isinstance(value, Faults):
            return base.overlay(value)
        if isinstance(value, Mapping):
            return cls.from_dict(value, base=base)
        return cls.parse(value, base=base)

    def overlay(self, other: Faults) -> Faults:
        """``other``'s active faults on top of this one's (inactive fields keep ours)."""
        slow = dict(self.slow_ms)
        slow.update(dict(other.slow_ms))
        return Faults(
            ws_1011_rate=other.ws_1011_rate or self.ws_1011_rate,
            ws_drop_rate=other.ws_drop_rate or self.ws_drop_rate,
            leak_rate=other.leak_rate or self.leak_rate,
            slow_ms=_sorted_slow(slow),
            api_breaks=self.api_breaks | other.api_breaks,
            auth_bypass=self.auth_bypass or other.auth_bypass,
            max_length_500=self.max_length_500 or other.max_length_500,
            seed=other.seed or self.seed,
        )

    def _with(self, key: str, value: str, *, had_value: bool) -> Faults:
        if key in ("ws_1011_rate", "ws_drop_rate", "leak_rate"):
            rate: dict[str, Any] = {key: _probability(key, value)}
            return replace(self, **rate)
        if key == "slow":
            op_text, sep, ms_text = value.partition(":")
            if not sep:
                raise FaultSpecError(f"slow needs OPERATION:MS, got {value!r}")
            op = _enum_value(SlowOperation, op_text.strip(), "slow operation")
            ms = _number("slow", ms_text)
            if not 0.0 <= ms <= _MAX_SLOW_MS:
                raise FaultSpecError(f"slow {op.value} must be 0..{_MAX_SLOW_MS:g} ms, got {ms:g}")
            slow = dict(self.slow_ms)
            slow[op] = ms
            return replace(self, slow_ms=_sorted_slow(slow))
        if key == "api_break":
            return replace(self, api_breaks=self.api_breaks | {_enum_value(ApiBreak, value, "api_break")})
        if key in _FLAGS:
            on = _flag(key, value) if had_value else True
            return replace(self, auth_bypass=on) if key == "auth_bypass" else replace(self, max_length_500=on)
        if key == "seed":
            try:
                return replace(self, seed=int(value))
            except ValueError:
                raise FaultSpecError(f"seed must be an integer, got {value[:40]!r}") from None
        raise FaultSpecError(
            f"unknown fault {key[:40]!r}; known: ws_1011_rate, ws_drop_rate, slow, leak_rate, "
            "api_break, auth_bypass, max_length_500, seed"
        )


def split_fault_text(text: str) -> list[str]:
    """Split the environment syntax (``"a=1; b=2"``, newlines allowed) into items."""
    return [part.strip() for part in text.replace("\n", ";").split(";") if part.strip()]


def _sorted_slow(slow: Mapping[SlowOperation, float]) -> tuple[tuple[SlowOperation, float], ...]:
    return tuple(sorted(((op, ms) for op, ms in slow.items() if ms > 0), key=lambda p: p[0].value))


def _as_list(key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise FaultSpecError(f"{key} must be a string or a list of strings, got {value!r}")


def _number(key: str, text: str) -> float:
    if len(text) > _MAX_SPEC_CHARS:
        raise FaultSpecError(f"{key}: value too long")
    try:
        value = float(text)
    except ValueError:
        raise FaultSpecError(f"{key} needs a number, got {text[:40]!r}") from None
    if not math.isfinite(value):
        raise FaultSpecError(f"{key} needs a finite number, got {text[:40]!r}")
    return value


def _probability(key: str, text: str) -> float:
    value = _number(key, text)
    if not 0.0 <= value <= 1.0:
        raise FaultSpecError(f"{key} must be a probability in [0, 1], got {value:g}")
    return value


def _flag(key: str, text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise FaultSpecError(f"{key} must be true or false, got {text[:40]!r}")


def _enum_value(enum_type: type[ApiBreak] | type[SlowOperation], text: str, what: str) -> Any:
    try:
        return enum_type(text)
    except ValueError:
        known = ", ".join(member.value for member in enum_type)
        raise FaultSpecError(f"unknown {what} {text[:40]!r}; known: {known}") from None


# The builds the demo plays. ``baseline`` is the build before the fix of the
# 1011 crash; ``candidate`` is the fix; ``regressed`` is the fix plus a new
# slowdown, a breaking API change and a data leak between users.
VARIANTS: Mapping[str, Faults] = MappingProxyType(
    {
        "baseline": Faults(ws_1011_rate=0.05),
        "candidate": Faults(),
        "regressed": Faults(
            slow_ms=((SlowOperation.AGENT_REPORTING, 100.0),),
            api_breaks=frozenset({ApiBreak.FIELD_REMOVED}),
            leak_rate=0.25,
        ),
    }
)


def variant_faults(variant: str) -> Faults:
    """The faults of a named variant; ``FaultSpecError`` for an unknown name."""
    try:
        return VARIANTS[variant]
    except KeyError:
        raise FaultSpecError(f"unknown variant {variant[:40]!r}; known: {', '.join(VARIANTS)}") from None
