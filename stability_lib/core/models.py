"""Value types that cross module boundaries: statuses, claims, section evidence.

Pure: no I/O here. ``to_dict``/``from_dict`` are the JSON (de)serialisation used
by the evidence files and summary.json.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Status", "EvidenceRef", "Figure", "Claim", "SectionResult", "EVIDENCE_SCHEMA_VERSION"]

EVIDENCE_SCHEMA_VERSION = 1


class Status(str, enum.Enum):
    """Outcome of one check, of a section, or of the whole run."""

    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    ERROR = "ERROR"

    def __str__(self) -> str:  # f-strings show "PASS", not "Status.PASS"
        return self.value


@dataclass(frozen=True)
class EvidenceRef:
    """Where the data behind a claim lives: section, file and record ids in it."""

    section: str
    file: str
    records: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> EvidenceRef:
        return cls(section=raw["section"], file=raw["file"], records=tuple(raw.get("records", ())))

    def serialize(self) -> dict[str, Any]:
        return {"section": self.section, "file": self.file, "records": list(self.records)}


@dataclass(frozen=True)
class Figure:
    """The one number that decided a claim, structured so the report composes its own sentence.

    ``kind`` says how to read ``value``: "rate" (a proportion ``k`` of ``n``, 0..1), "ratio"
    (candidate / baseline, 1.0 = same), "count" (``k`` events, e.g. leaks or failed tests, of ``n``).
    ``low``/``high`` is the interval at ``confidence`` (for a rate with k == 0 only ``high``, the
    one-sided upper bound, matters); ``tolerance`` is the limit the check judged against (a rate,
    or the allowed slowdown: 0.1 = 10%). ``baseline_k``/``baseline_n`` carry the baseline's count
    when the claim compares the two sides (the fix works). Every field but ``kind`` is optional.
    """

    kind: str
    value: float | None = None
    unit: str = ""
    low: float | None = None
    high: float | None = None
    confidence: float | None = None
    k: int | None = None
    n: int | None = None
    test: str = ""
    tolerance: float | None = None
    baseline_k: int | None = None
    baseline_n: int | None = None
    what: str = ""

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Figure:
        known = {f: raw[f] for f in cls.__dataclass_fields__ if f in raw}
        return cls(**known)

    def serialize(self) -> dict[str, Any]:
        # Absent fields stay absent: summary.json holds what was measured, nothing padded.
        return {k: v for k, v in asdict(self).items() if v not in (None, "") or k == "kind"}


@dataclass(frozen=True)
class Claim:
    """One check that could have failed, with the statistic behind its status.

    ``statement`` is plain language for a stakeholder ("No session closed with
    1011"); ``statistic`` is the figure that decided it ("0 of 500 sessions,
    95% upper bound 0.60%"); ``evidence`` says where the raw data is.
    """

    id: str
    section: str
    statement: str
    status: Status
    statistic: str = ""
    required: bool = True
    evidence: tuple[EvidenceRef, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    # Structured form of ``statistic`` (evidence written before it existed has none).
    figure: Figure | None = None

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Claim:
        return cls(
            id=raw["id"],
            section=raw["section"],
            statement=raw["statement"],
            status=Status(raw["status"]),
            statistic=raw.get("statistic", ""),
            required=bool(raw.get("required", True)),
            evidence=tuple(EvidenceRef.parse(e) for e in raw.get("evidence", ())),
            details=dict(raw.get("details", {})),
            figure=Figure.parse(raw["figure"]) if isinstance(raw.get("figure"), dict) else None,
        )

    def serialize(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "section": self.section,
            "statement": self.statement,
            "status": self.status.value,
            "statistic": self.statistic,
            "required": self.required,
            "evidence": [e.serialize() for e in self.evidence],
            "details": self.details,
        }
        if self.figure is not None:
            out["figure"] = self.figure.serialize()
        return out


@dataclass(frozen=True)
class SectionResult:
    """What one section notebook established: its claims and its raw data.

    ``status`` is ERROR when the section itself crashed (``error`` says why);
    otherwise it is derived from the claims by ``verdict.section_status``.
    """

    section: str
    status: Status
    claims: tuple[Claim, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    started_at: str = ""
    finished_at: str = ""
    duration_s: float | None = None
    schema_version: int = EVIDENCE_SCHEMA_VERSION

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> SectionResult:
        return cls(
            section=raw["section"],
            status=Status(raw["status"]),
            claims=tuple(Claim.parse(c) for c in raw.get("claims", ())),
            data=dict(raw.get("data", {})),
            error=raw.get("error"),
            started_at=raw.get("started_at", ""),
            finished_at=raw.get("finished_at", ""),
            duration_s=raw.get("duration_s"),
            schema_version=int(raw.get("schema_version", 0)),
        )

    def serialize(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status.value
        out["claims"] = [c.serialize() for c in self.claims]
        return out
