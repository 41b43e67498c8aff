"""The small API a section notebook uses: open, make claims, finish.

A notebook receives two papermill parameters, ``run_dir`` and ``params_path``
(the run's copy of the params with ``${NAME}`` references unresolved), and
resolves them from its own environment. Nothing secret is ever a parameter.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..core.models import Claim, EvidenceRef, SectionResult, Status
from ..core.verdict import section_status
from .evidence import encodable, evidence_path, write_evidence
from .params import Params, load_params
from .secrets import redact_obj, secret_values

__all__ = ["Section", "open_section", "utc_now"]


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class Section:
    name: str
    run_dir: Path
    params: Params
    base_dir: Path
    invocation_dir: Path = field(default_factory=Path.cwd)
    secrets: frozenset[str] = frozenset()
    started_at: str = field(default_factory=utc_now)
    _t0: float = field(default_factory=time.monotonic)

    @property
    def config(self) -> Any:
        return self.params.sections[self.name]

    @property
    def enabled(self) -> bool:
        return bool(getattr(self.config, "enabled", False))

    @property
    def evidence_file(self) -> str:
        return evidence_path(self.run_dir, self.name).relative_to(self.run_dir).as_posix()

    def ref(self, *records: str) -> EvidenceRef:
        return EvidenceRef(section=self.name, file=self.evidence_file, records=tuple(records))

    def claim(
        self,
        check: str,
        statement: str,
        status: Status,
        statistic: str = "",
        *,
        records: tuple[str, ...] = (),
        details: dict[str, Any] | None = None,
    ) -> Claim:
        claim_id = f"{self.name}.{check}"
        return Claim(
            id=claim_id,
            section=self.name,
            statement=statement,
            status=status,
            statistic=statistic,
            required=self.params.is_required(claim_id),
            evidence=(self.ref(*records),),
            details=details or {},
        )

    def adopt(self, claims: list[Claim]) -> list[Claim]:
        """Claims built by a section module: set required from params and point them at this evidence file."""
        out = []
        for c in claims:
            evidence = c.evidence or (self.ref(),)
            # A ref without a file points into this section's evidence; one to another
            # file of the run (a JUnit XML, say) keeps it.
            evidence = tuple(e if e.file else EvidenceRef(self.name, self.evidence_file, e.records) for e in evidence)
            required = c.required and self.params.is_required(c.id)
            # replace(), not a new Claim: every field the claim carries (its figure too) survives.
            out.append(replace(c, section=self.name, required=required, evidence=evidence))
        return out

    def finish(self, claims: list[Claim], data: dict[str, Any] | None = None) -> SectionResult:
        """Write the evidence (secret values scrubbed from every string) and return what was written."""
        claims = self.adopt(list(claims))
        result = SectionResult(
            section=self.name,
            status=section_status(claims),
            claims=tuple(claims),
            data=data or {},
            started_at=self.started_at,
            finished_at=utc_now(),
            duration_s=round(time.monotonic() - self._t0, 3),
        )
        result = SectionResult.parse(encodable(redact_obj(result.serialize(), self.secrets)))
        write_evidence(self.run_dir, result)
        return result

    def finish_stopped(self, stopped_by: BaseException, write: Callable[[], object]) -> None:
        """Stopped before its end (Ctrl-C, SIGTERM, a failure of ours): ``write`` judges what was done and
        calls ``finish``. A failure of ours in it is said in the evidence, as an INCONCLUSIVE
        ``runs_finished`` naming it, and never raised: the interrupt, not that failure, is what goes on.
        For the first write of a stopped section only: a failure here replaces what was written before."""
        try:
            write()
        except Exception as err:  # noqa: BLE001 - said in the evidence, below
            why = f"{type(err).__name__}: {err}"[:200]
            with contextlib.suppress(Exception):  # nothing more can be said if even this cannot be written
                stopped = self.claim(
                    "runs_finished",
                    "The section ran to its end",
                    Status.INCONCLUSIVE,
                    f"stopped by {type(stopped_by).__name__}; what it had done could not be judged ({why})",
                    details={"stopped_by": type(stopped_by).__name__, "judging_failed": why},
                )
                self.finish([stopped])

    def skip(self, reason: str) -> SectionResult:
        """A switched-off section: recorded, so the report can say what was not checked."""
        return self.finish([], {"skipped": True, "reason": reason})


def open_section(name: str, run_dir: str | Path = "", params_path: str | Path = "") -> Section:
    """Open a section for a notebook. With empty arguments (a notebook run by hand in
    JupyterLab), start the bundled sample service and use ``params/demo.yaml``."""
    if not params_path:
        from .sample_service import sample_service_hook

        run_dir, params_path = sample_service_hook("interactive")()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    params, raw = load_params(params_path)
    meta_file = run_dir / "run.json"
    base_dir = Path(params_path).resolve().parent
    invocation_dir = Path.cwd()
    if meta_file.exists():
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        base_dir = Path(meta.get("base_dir", base_dir))
        invocation_dir = Path(meta.get("invocation_dir", invocation_dir))
    return Section(
        name=name,
        run_dir=run_dir,
        params=params,
        base_dir=base_dir,
        invocation_dir=invocation_dir,
        secrets=secret_values(raw, os.environ),
    )
