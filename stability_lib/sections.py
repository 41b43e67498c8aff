"""One function per report section: probe or run, judge, write evidence.

Section notebooks call these (``result = sl.sections.suites(sec)``) and then
show the result; all the work stays in the library.
"""

from __future__ import annotations

from ._health import health_claims, run_health
from ._models import SectionResult
from ._section import Section

__all__ = ["health", "suites"]


def health(sec: Section) -> SectionResult:
    if not sec.enabled:
        return sec.skip("switched off in params")
    data = run_health(sec.params.target, sec.config)
    return sec.finish(health_claims(sec.config, data), data)


def suites(sec: Section) -> SectionResult:
    from ._suites import category_claims, run_suites

    if not sec.enabled:
        return sec.skip("switched off in params")
    results = run_suites(
        sec.config, base_dir=sec.base_dir, out_dir=sec.run_dir / "suites", target_url=sec.params.target.base_url
    )
    data = {
        "categories": [r.to_dict() for r in results],
        "commands": [f"(cd {r.run.cwd} && {' '.join(r.run.argv)})" for r in results],
    }
    return sec.finish(category_claims(results), data)
