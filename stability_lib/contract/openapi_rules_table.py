"""The rules of the OpenAPI breaking-change diff: levels, the rule table, and the Change it reports (pure)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from ..core.errors import StabilityError

__all__ = ["SpecError", "Level", "Rule", "RULES", "RULES_BY_ID", "Change", "count_levels"]


class SpecError(StabilityError):
    """A document is not an OpenAPI 3.x spec we can compare."""


class Level(str, enum.Enum):
    """How much a change can break a client."""

    ERR = "ERR"  # breaking
    WARN = "WARN"  # possibly breaking
    INFO = "INFO"  # compatible, listed for the record

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Rule:
    id: str
    level: Level
    description: str


_E, _W, _I = Level.ERR, Level.WARN, Level.INFO

RULES: tuple[Rule, ...] = (
    # Paths and operations
    Rule("path-removed", _E, "A path and all its operations were removed."),
    Rule("operation-removed", _E, "An operation (method on a path) was removed."),
    Rule(
        "operation-removed-before-sunset",
        _E,
        "An operation was removed before the x-sunset date the baseline announced.",
    ),
    Rule(
        "deprecated-operation-removed-without-sunset",
        _W,
        "A deprecated operation was removed, but no x-sunset date had been announced.",
    ),
    Rule("deprecated-operation-removed", _I, "A deprecated operation was removed after its x-sunset date."),
    Rule("operation-added", _I, "A new operation was added."),
    Rule("operation-deprecated", _I, "An operation was marked deprecated (still present)."),
    # Responses
    Rule("response-success-status-removed", _E, "A 2xx/3xx response status (or default) is no longer documented."),
    Rule("response-status-removed", _W, "A 4xx/5xx response status is no longer documented."),
    Rule("response-status-added", _I, "A new response status is documented."),
    Rule("response-media-type-removed", _E, "A response media type was removed."),
    Rule("response-media-type-added", _I, "A response media type was added."),
    Rule("response-property-removed", _E, "A response property was removed."),
    Rule("response-property-added", _I, "A response property was added."),
    Rule("response-type-changed", _E, "A response value may now have a type clients did not expect."),
    Rule("response-type-narrowed", _I, "A response value's type was narrowed (compatible)."),
    Rule("response-format-changed", _E, "A response value's format changed."),
    Rule("response-format-removed", _W, "A response value no longer declares its format."),
    Rule("response-property-became-optional", _E, "A response property is no longer required (may be absent)."),
    Rule("response-property-became-required", _I, "A response property became required."),
    Rule("response-property-became-nullable", _E, "A response value may now be null."),
    Rule("response-enum-value-added", _W, "A response enum gained a value (or lost its enum) clients may not handle."),
    Rule("response-enum-value-removed", _I, "A response enum lost a value."),
    Rule("response-variant-added", _W, "A response anyOf/oneOf gained a variant: more shapes can be returned."),
    Rule("response-variant-removed", _I, "A response anyOf/oneOf lost a variant."),
    # Response headers (names compared case-insensitively; a header's schema is compared as a response value)
    Rule("response-required-header-removed", _E, "A response header documented as required was removed."),
    Rule(
        "response-optional-header-removed",
        _W,
        "An optional response header was removed. oasdiff >= 1.30 lists this at INFO; kept at WARN on purpose: "
        "clients do read documented optional headers (rate limits, pagination links), and they lose them.",
    ),
    Rule("response-header-became-optional", _E, "A response header is no longer required (may be absent)."),
    Rule("response-header-added", _I, "A response header was added."),
    Rule("response-header-became-required", _I, "A response header became required."),
    # Request: parameters
    Rule("request-parameter-added-required", _E, "A new required parameter was added."),
    Rule("request-parameter-became-required", _E, "An optional parameter became required."),
    Rule("request-parameter-added", _I, "A new optional parameter was added."),
    Rule("request-parameter-became-optional", _I, "A required parameter became optional."),
    Rule("request-parameter-removed", _W, "A parameter was removed: clients that send it may be rejected."),
    Rule(
        "request-parameter-removed-before-sunset",
        _E,
        "A parameter was removed before the x-sunset date the baseline announced for it (as for operations).",
    ),
    Rule("deprecated-request-parameter-removed", _I, "A deprecated parameter was removed after its x-sunset date."),
    # Request: body
    Rule(
        "request-body-removed",
        _E,
        "The request body was removed: clients that send one may be rejected (oasdiff: ERR).",
    ),
    Rule("request-body-became-required", _E, "The request body became required (or a required one was added)."),
    Rule("request-body-added", _I, "An optional request body was added."),
    Rule("request-body-became-optional", _I, "The request body became optional."),
    Rule("request-media-type-removed", _E, "A request media type is no longer accepted."),
    Rule("request-media-type-added", _I, "A request media type is now accepted."),
    # Request: schema
    Rule("request-property-added-required", _E, "A new required request property was added."),
    Rule("request-property-became-required", _E, "An optional request property became required."),
    Rule("request-property-added", _I, "A new optional request property was added."),
    Rule("request-property-became-optional", _I, "A required request property became optional."),
    Rule("request-property-removed", _W, "A request property was removed: clients that send it may be rejected."),
    Rule("request-type-changed", _E, "A request value no longer accepts a type it accepted."),
    Rule("request-type-widened", _I, "A request value accepts more types (compatible)."),
    Rule("request-format-changed", _E, "A request value's format changed."),
    Rule("request-format-added", _W, "A request value now declares a format (may reject values accepted before)."),
    Rule("request-property-became-not-nullable", _E, "A request value no longer accepts null."),
    Rule("request-enum-value-removed", _E, "A request enum lost a value clients may send."),
    Rule(
        "request-enum-added",
        _E,
        "A request value (body property or parameter) is now restricted to an enum (oasdiff: ERR).",
    ),
    Rule("request-enum-value-added", _I, "A request enum gained a value."),
    Rule("request-pattern-added", _E, "A request string now has to match a pattern."),
    Rule("request-pattern-changed", _W, "A request string's pattern changed (may reject values accepted before)."),
    Rule("request-minimum-raised", _E, "A request number's minimum (or exclusiveMinimum) was raised or added."),
    Rule("request-maximum-lowered", _E, "A request number's maximum (or exclusiveMaximum) was lowered or added."),
    Rule("request-min-length-raised", _E, "A request string's minLength was raised."),
    Rule("request-max-length-lowered", _E, "A request string's maxLength was lowered or added."),
    Rule("request-min-items-raised", _E, "A request array's minItems was raised."),
    Rule("request-max-items-lowered", _E, "A request array's maxItems was lowered or added."),
    Rule("request-constraint-relaxed", _I, "A request constraint was relaxed (compatible)."),
    Rule("request-variant-removed", _E, "A request anyOf/oneOf lost a variant: fewer shapes are accepted."),
    Rule("request-variant-added", _I, "A request anyOf/oneOf gained a variant."),
    Rule(
        "request-all-of-added",
        _E,
        "A request schema gained an allOf subschema: a request must satisfy it too, even when the merged "
        "properties look the same (oasdiff: request-body-all-of-added / request-property-all-of-added, ERR).",
    ),
    Rule(
        "request-all-of-removed",
        _W,
        "A request schema lost an allOf subschema: the composition changed (oasdiff before 1.30: "
        "request-body-all-of-removed / request-property-all-of-removed, WARN). Kept at WARN on purpose although "
        "oasdiff 1.30 stopped failing on a dropped allOf conjunct: a part may carry constraints the merged "
        "properties do not show, and a client cannot tell which.",
    ),
    Rule(
        "request-readonly-pattern-added",
        _W,
        "A readOnly request property now has to match a pattern. Clients may still send it (echoing a resource "
        "back), so it is reported. WARN on purpose, not ERR as for other properties: servers should ignore "
        "readOnly input (oasdiff >= 1.31 lists it at INFO, earlier versions at ERR).",
    ),
    Rule(
        "request-readonly-pattern-changed",
        _W,
        "A readOnly request property's pattern changed. Reported for the same reason as "
        "request-readonly-pattern-added, at the same level as request-pattern-changed.",
    ),
    # Security
    Rule("security-added", _E, "An operation that needed no authentication now requires it."),
    Rule("security-changed", _E, "A security requirement clients satisfied is no longer accepted (scheme or scopes)."),
    Rule("security-relaxed", _I, "Security requirements were relaxed (alternative added or removed)."),
    Rule("security-scheme-changed", _E, "A security scheme's type, location or name changed."),
    # Servers: hosts differ between environments, so only the base path every operation's URL starts with counts
    Rule(
        "server-base-path-changed",
        _E,
        "No base path of the servers (or Swagger 2 basePath) stayed: every operation's URL moved.",
    ),
    Rule("server-base-path-removed", _W, "A base path of the servers was removed; another one stayed."),
    # The diff itself
    Rule("unresolved-ref", _W, "A $ref could not be resolved: that part of the spec was not compared."),
    Rule("schema-depth-limit", _W, "A schema is nested too deeply: it was compared only down to the limit."),
)
RULES_BY_ID: dict[str, Rule] = {r.id: r for r in RULES}


@dataclass(frozen=True)
class Change:
    """One difference between baseline and candidate, with the rule that judged it.

    ``path``/``method`` name the operation ("" when the change is not about one);
    ``location`` is a JSON-pointer-like location inside the operation.
    """

    level: Level
    rule: str
    path: str
    method: str
    location: str
    message: str

    def serialize(self) -> dict[str, str]:
        return {
            "level": self.level.value,
            "rule": self.rule,
            "path": self.path,
            "method": self.method,
            "location": self.location,
            "message": self.message,
        }


def count_levels(changes: Iterable[Change]) -> dict[str, int]:
    counts = {lvl.value: 0 for lvl in Level}
    for c in changes:
        counts[c.level.value] += 1
    return counts
