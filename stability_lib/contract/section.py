"""Contract section: is the candidate's API, WebSocket messages and database schema backward compatible?

Config (``ContractConfig``), the claims and the run. The two OpenAPI specs are loaded (live
URL, file, or a file at a git ref) by ``contract.spec_source``. The diffs themselves are pure and live in
``contract.openapi_diff``, ``contract.ws_messages`` and ``contract.db_schema``.

"No breaking changes" is only claimed from a diff that could have found one: two
real specs, with at least one operation in the baseline. Anything less is
INCONCLUSIVE, with the reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..core.errors import StabilityError
from ..core.models import Claim, EvidenceRef, Figure, Status
from .db_schema import DB_RULES
from .openapi_diff import (
    RULES,
    Change,
    Level,
    Rule,
    SpecError,
    count_levels,
    count_operations,
    diff_openapi,
)
from .spec_source import LoadedSpec, SpecSource, _Strict, load_spec
from .ws_messages import WS_RULES

__all__ = [
    "RULE_TABLES",
    "DbCompareConfig",
    "ContractConfig",
    "ContractResult",
    "WsComparison",
    "DbComparison",
    "contract_claims",
    "run_contract",
]

SECTION = "contract"
# Every rule the section judges by, for the report's table: id, level, description.
RULE_TABLES: dict[str, tuple[Rule, ...]] = {"openapi": RULES, "websocket": WS_RULES, "database": DB_RULES}
EVIDENCE_FILE = "contract.json"
# Events and changes kept in evidence are capped; counts are always complete.
MAX_CHANGES_IN_EVIDENCE = 2000


# --------------------------------------------------------------------------- config


class DbCompareConfig(_Strict):
    baseline: str = Field(..., description="SQLAlchemy URL or SQLite file path of the baseline database.")
    candidate: str = Field(..., description="SQLAlchemy URL or SQLite file path of the candidate database.")


class ContractConfig(_Strict):
    enabled: bool = True
    openapi_path: str = Field("/api/openapi.json", description="Where each target serves its OpenAPI document.")
    baseline_spec: SpecSource | None = Field(None, description="Default: fetched from the baseline target.")
    candidate_spec: SpecSource | None = Field(None, description="Default: fetched from the candidate target.")
    fail_on: Literal["ERR", "WARN"] = Field(
        "WARN",
        description=(
            "Lowest level of change that fails the check. WARN (default): no breaking changes in oasdiff's "
            "sense, possibly-breaking ones included; ERR: only changes that certainly break a client. "
            "The old key fail_on_warn: true|false is still read as WARN|ERR."
        ),
    )
    compare_ws_events: bool = Field(
        True,
        description=(
            "Compare the WebSocket events that the scenario's sessions receive from the baseline and "
            "the candidate (the fields and types of each event type). It needs a live baseline target "
            "and a scenario: left at its default, the comparison is skipped when either is missing "
            "(a spec-file-only run) and the evidence says why; set true to demand it (INCONCLUSIVE "
            "without events), false to switch it off."
        ),
    )
    ws_event_key: str = Field("type", description="Field of a WebSocket message that names its event type.")
    database: DbCompareConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_old_fail_on_warn(cls, data: Any) -> Any:
        # Params files written before fail_on still say fail_on_warn: true|false.
        if not isinstance(data, dict) or "fail_on_warn" not in data:
            return data
        data = dict(data)
        old = data.pop("fail_on_warn")
        if not isinstance(old, bool):
            raise ValueError("fail_on_warn must be true or false (or use fail_on: ERR|WARN)")
        level = "WARN" if old else "ERR"
        given = data.get("fail_on")
        if given is not None and str(given).strip().upper() != level:
            raise ValueError(f"fail_on: {given} contradicts fail_on_warn: {str(old).lower()}; keep only fail_on")
        data["fail_on"] = level
        return data

    @field_validator("fail_on", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @property
    def fail_on_warn(self) -> bool:
        return self.fail_on == "WARN"


# --------------------------------------------------------------------------- loading


def _join_url(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + "/" + path.lstrip("/")


# --------------------------------------------------------------------------- claims


_UNCOMPARED_RULES = frozenset({"unresolved-ref", "schema-depth-limit"})


def _fails_on(fail_on: Level | str, fail_on_warn: bool | None) -> Level:
    if fail_on_warn is not None:  # the old keyword, still accepted
        return Level.WARN if fail_on_warn else Level.ERR
    level = Level(str(fail_on).strip().upper())
    if level is Level.INFO:
        raise ValueError("fail_on must be ERR or WARN")
    return level


def _failing_levels(levels: Iterable[Level], fail_on: Level) -> list[Level]:
    return [lvl for lvl in levels if lvl is Level.ERR or (fail_on is Level.WARN and lvl is Level.WARN)]


def contract_claims(
    changes: Sequence[Change] | None,
    *,
    fail_on: Level | str = Level.WARN,
    fail_on_warn: bool | None = None,
    operations_compared: int | None = None,
    reason: str = "",
    section: str = SECTION,
    evidence_file: str = EVIDENCE_FILE,
    required: bool = True,
) -> list[Claim]:
    """The claim "No breaking API changes".

    ``changes=None`` means no diff ran (a spec could not be had: say why in
    ``reason``): INCONCLUSIVE. A baseline with no operations gives the diff
    nothing to find: INCONCLUSIVE too. Otherwise FAIL on any change at or above
    ``fail_on`` (WARN by default: "breaking" in oasdiff's sense includes WARN; the
    old ``fail_on_warn`` keyword, when given, decides instead), else PASS. The
    statistic says which level the check fails on and which levels failed it.
    """
    threshold = _fails_on(fail_on, fail_on_warn)
    statement = "No breaking API changes"
    claim_id = f"{section}.no_breaking_api_changes"
    evidence = (EvidenceRef(section=section, file=evidence_file, records=("openapi",)),)
    if changes is None:
        return [
            Claim(
                claim_id,
                section,
                statement,
                Status.INCONCLUSIVE,
                f"no diff: {reason or 'a spec could not be obtained'}",
                required,
                evidence,
            )
        ]
    counts = count_levels(changes)
    ops = f" across {operations_compared} operations compared" if operations_compared is not None else ""
    statistic = f"{counts['ERR']} ERR, {counts['WARN']} WARN, {counts['INFO']} INFO{ops}"
    if operations_compared is not None and operations_compared <= 0:
        return [
            Claim(
                claim_id,
                section,
                statement,
                Status.INCONCLUSIVE,
                f"{statistic}: the baseline spec has no operations",
                required,
                evidence,
            )
        ]
    failing_levels = _failing_levels(Level, threshold)
    # A schema the diff could not follow is no evidence either way: INCONCLUSIVE below, never FAIL.
    failing = [c for c in changes if c.level in failing_levels and c.rule not in _UNCOMPARED_RULES]
    rule_text = "fails on WARN and above" if threshold is Level.WARN else "fails on ERR only"
    if failing:
        failed_by = ", ".join(
            f"{n} {lvl.value}" for lvl in failing_levels if (n := sum(c.level is lvl for c in failing))
        )
        statistic += f"; {rule_text}: failed by {failed_by}"
    else:
        statistic += f"; {rule_text}"
    details = {
        "counts": counts,
        "fail_on": threshold.value,
        "failed_by": {lvl.value: n for lvl in failing_levels if (n := sum(c.level is lvl for c in failing))},
        "failing": [f"{c.level} {c.rule} {c.method} {c.path} {c.location}".strip() for c in failing[:20]],
    }
    # A schema the diff could not follow (an external $ref, a depth limit) was never compared:
    # "nothing breaking found" would be a claim without evidence.
    blind = [c for c in changes if c.rule in _UNCOMPARED_RULES]
    if failing:
        status = Status.FAIL
    elif blind:
        status = Status.INCONCLUSIVE
        statistic += f"; {len(blind)} schema(s) could not be compared ({blind[0].rule} at {blind[0].location})"
    else:
        status = Status.PASS
    what = "breaking changes (ERR or WARN)" if threshold is Level.WARN else "breaking changes (ERR)"
    figure = Figure(kind="count", value=float(len(failing)), k=len(failing), test="OpenAPI diff rules", what=what)
    return [Claim(claim_id, section, statement, status, statistic, required, evidence, details, figure)]


# --------------------------------------------------------------------------- the section


@dataclass(frozen=True)
class WsComparison:
    changes: tuple[Change, ...] | None
    baseline_events: int
    candidate_events: int
    baseline_schema: dict[str, dict[str, list[str]]]
    candidate_schema: dict[str, dict[str, list[str]]]
    collected: bool = True  # False: the caller gathered no events at all (no scenario, no baseline)
    note: str = ""  # why a side has no events, when the caller knows (its golden runs failed)


@dataclass(frozen=True)
class DbComparison:
    changes: tuple[Change, ...] | None
    tables_compared: int
    baseline_source: str
    candidate_source: str
    error: str | None = None


@dataclass(frozen=True)
class ContractResult:
    """What the contract section established, with everything needed to check it."""

    fail_on: Level
    baseline: LoadedSpec
    candidate: LoadedSpec
    changes: tuple[Change, ...] | None
    operations_compared: int
    diff_error: str | None = None
    ws: WsComparison | None = None
    db: DbComparison | None = None
    today: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def _api_reason(self) -> str:
        missing = [
            f"{side} spec ({spec.origin}): {spec.error}"
            for side, spec in (("baseline", self.baseline), ("candidate", self.candidate))
            if not spec.ok
        ]
        return "; ".join(missing) or (self.diff_error or "")

    def claims(self) -> list[Claim]:
        from .db_schema import db_schema_claims
        from .ws_messages import ws_contract_claims

        out = contract_claims(
            self.changes,
            fail_on=self.fail_on,
            operations_compared=self.operations_compared if self.changes is not None else None,
            reason=self._api_reason(),
        )
        if self.ws is not None:
            out += ws_contract_claims(
                list(self.ws.changes) if self.ws.changes is not None else None,
                baseline_events=self.ws.baseline_events,
                candidate_events=self.ws.candidate_events,
                reason=(self.ws.note if self.ws.collected else "no WebSocket events were collected from both targets"),
            )
        if self.db is not None:
            out += db_schema_claims(
                self.db.changes,
                tables_compared=self.db.tables_compared,
                fail_on_warn=self.fail_on is Level.WARN,
                reason=self.db.error or "",
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        def listing(changes: Iterable[Change] | None) -> dict[str, Any]:
            if changes is None:
                return {"ran": False, "counts": None, "changes": []}
            changes = list(changes)
            return {
                "ran": True,
                "counts": count_levels(changes),
                "changes": [c.serialize() for c in changes[:MAX_CHANGES_IN_EVIDENCE]],
                "changes_truncated": max(0, len(changes) - MAX_CHANGES_IN_EVIDENCE),
            }

        out: dict[str, Any] = {
            "fail_on": self.fail_on.value,
            "fail_on_warn": self.fail_on is Level.WARN,  # read by reports written before fail_on
            "today": self.today,
            "openapi": {
                "baseline": self.baseline.serialize(),
                "candidate": self.candidate.serialize(),
                "operations_compared": self.operations_compared,
                "error": self.diff_error,
                **listing(self.changes),
            },
        }
        if self.ws is not None:
            out["ws"] = {
                "collected": self.ws.collected,
                "baseline_events": self.ws.baseline_events,
                "candidate_events": self.ws.candidate_events,
                "baseline_schema": self.ws.baseline_schema,
                "candidate_schema": self.ws.candidate_schema,
                **listing(self.ws.changes),
            }
        out.update(self.extra)
        if self.db is not None:
            out["database"] = {
                "baseline": self.db.baseline_source,
                "candidate": self.db.candidate_source,
                "tables_compared": self.db.tables_compared,
                "error": self.db.error,
                **listing(self.db.changes),
            }
        return out


def _compare_ws(
    cfg: ContractConfig, baseline_events: Iterable[Any] | None, candidate_events: Iterable[Any] | None
) -> WsComparison:
    from .ws_messages import diff_event_schemas, infer_event_schema

    old_list = list(baseline_events or [])
    new_list = list(candidate_events or [])
    old = infer_event_schema(old_list, key_field=cfg.ws_event_key)
    new = infer_event_schema(new_list, key_field=cfg.ws_event_key)
    ran = bool(old_list) and bool(new_list)
    return WsComparison(
        changes=tuple(diff_event_schemas(old, new)) if ran else None,
        baseline_events=len(old_list),
        candidate_events=len(new_list),
        baseline_schema={k: {f: sorted(t) for f, t in v.items()} for k, v in old.items()},
        candidate_schema={k: {f: sorted(t) for f, t in v.items()} for k, v in new.items()},
        collected=baseline_events is not None and candidate_events is not None,
    )


def _compare_db(db: DbCompareConfig, base_dir: Path) -> DbComparison:
    from .db_schema import diff_schemas, read_schema, redact_url, to_sqlalchemy_url

    old_url = to_sqlalchemy_url(db.baseline, base_dir)
    new_url = to_sqlalchemy_url(db.candidate, base_dir)
    sources = (redact_url(old_url), redact_url(new_url))
    try:
        old = read_schema(old_url)
        new = read_schema(new_url)
    except StabilityError as exc:
        return DbComparison(None, 0, *sources, error=str(exc))
    return DbComparison(tuple(diff_schemas(old, new)), len(old.tables), *sources)


def run_contract(
    cfg: ContractConfig,
    *,
    baseline_url: str | None,
    candidate_url: str | None,
    base_dir: Path,
    baseline_events: Iterable[Any] | None = None,
    candidate_events: Iterable[Any] | None = None,
    today: date | None = None,
    baseline_auth: tuple[Mapping[str, str], Mapping[str, str]] = ({}, {}),
    candidate_auth: tuple[Mapping[str, str], Mapping[str, str]] = ({}, {}),
    ws_note: str = "",
) -> ContractResult:
    """Load both specs, diff them, and compare WebSocket events and databases when configured.

    ``*_auth``: the (headers, query) of each target's auth, sent with spec fetches from a URL. ``ws_note``: why
    a side has no events, said when there is no comparison."""
    day = today or date.today()
    baseline = load_spec(
        cfg.baseline_spec,
        default_url=_join_url(baseline_url, cfg.openapi_path) if baseline_url else None,
        base_dir=base_dir,
        headers=baseline_auth[0],
        query=baseline_auth[1],
    )
    candidate = load_spec(
        cfg.candidate_spec,
        default_url=_join_url(candidate_url, cfg.openapi_path) if candidate_url else None,
        base_dir=base_dir,
        headers=candidate_auth[0],
        query=candidate_auth[1],
    )
    changes: tuple[Change, ...] | None = None
    diff_error: str | None = None
    operations = 0
    if baseline.spec is not None and candidate.spec is not None:
        try:
            changes = tuple(diff_openapi(baseline.spec, candidate.spec, today=day))
            operations = count_operations(baseline.spec)
        except (SpecError, RecursionError) as exc:
            diff_error = f"diff failed: {exc}"
    ws = _compare_ws(cfg, baseline_events, candidate_events) if cfg.compare_ws_events else None
    if ws is not None and ws_note:
        ws = dataclasses.replace(ws, note=ws_note)
    extra: dict[str, Any] = {}
    nothing_collected = baseline_events is None and candidate_events is None
    if ws is not None and nothing_collected and "compare_ws_events" not in cfg.model_fields_set:
        # Not asked for, and impossible here: no claim rather than an INCONCLUSIVE one nobody can fix.
        ws = None
        extra["ws_not_compared"] = (
            "no WebSocket events were collected (that needs a live baseline target and a scenario); "
            "set compare_ws_events: true to require the comparison"
        )
    db = _compare_db(cfg.database, base_dir) if cfg.database is not None else None
    return ContractResult(
        fail_on=Level(cfg.fail_on),
        baseline=baseline,
        candidate=candidate,
        changes=changes,
        operations_compared=operations,
        diff_error=diff_error,
        ws=ws,
        db=db,
        today=day.isoformat(),
        extra=extra,
    )
