"""The suites section: probe or run, judge, write evidence."""

from __future__ import annotations

from dataclasses import replace

from ..core.models import SectionResult
from ..execution.secrets import redact_tree
from ..execution.section import Section


def suites(sec: Section) -> SectionResult:
    from ..suites.judgement import category_claims
    from ..suites.runner import run_suites

    if not sec.enabled:
        return sec.skip("switched off in params")
    out_dir = sec.run_dir / "suites"
    results = run_suites(sec.config, base_dir=sec.base_dir, out_dir=out_dir, target_url=sec.params.target.base_url)
    redact_tree(out_dir, sec.secrets)  # copied JUnit XML and output logs are kept in the run
    data = {
        "categories": [r.to_dict() for r in results],
        "commands": [
            f"(cd {r.run.cwd} && {' '.join(r.run.argv)})"
            if r.run.argv
            else f"read {r.run.junit_expected_at} (no command)"
            for r in results
        ],
    }
    claims = [
        replace(
            c,
            evidence=(sec.ref(c.id.split(".", 1)[1]),)
            + tuple(replace(e, file=f"suites/{e.file}") for e in c.evidence if e.file),
        )
        for c in category_claims(results)
    ]
    return sec.finish(claims, data)
