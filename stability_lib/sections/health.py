"""The health section: probe or run, judge, write evidence."""

from __future__ import annotations

from ..core.models import SectionResult
from ..execution.section import Section
from ..probes.health import health_claims, run_health


def health(sec: Section) -> SectionResult:
    if not sec.enabled:
        return sec.skip("switched off in params")
    data = run_health(sec.params.target, sec.config)
    return sec.finish(health_claims(sec.config, data), data)
