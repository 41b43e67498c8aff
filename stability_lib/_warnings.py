"""Evidence warnings: an honesty check over all evidence (pure).

Each warning names the evidence it comes from. Filled in by the section modules'
data shapes; see ``evidence_warnings``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._models import EvidenceRef, SectionResult

__all__ = ["EvidenceWarning", "evidence_warnings"]


@dataclass(frozen=True)
class EvidenceWarning:
    kind: str
    message: str
    evidence: EvidenceRef

    def serialize(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "evidence": self.evidence.serialize()}


def evidence_warnings(params: Any, evidence: dict[str, SectionResult]) -> list[EvidenceWarning]:
    return []
