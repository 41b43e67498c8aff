"""The report notebook's API: load a run directory, show each part of the report."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from ..core.models import SectionResult
from ..execution.evidence import read_all_evidence
from ..execution.params import SECTION_ORDER, redact
from .render import (
    appendix_html,
    not_checked_html,
    recommendations_html,
    warnings_html,
)

__all__ = ["RunReport", "open_report", "latest_run"]

_PACKAGES = (
    "stability-proof",
    "papermill",
    "nbconvert",
    "jupyterlab",
    "pandas",
    "matplotlib",
    "numpy",
    "scipy",
    "httpx",
    "websockets",
    "pydantic",
    "PyYAML",
    "defusedxml",
    "fastapi",
    "uvicorn",
)

VERDICT_RULE = (
    "FAIL if any required check fails; PASS only if every required check passes (and there is at least one); "
    "otherwise INCONCLUSIVE. A section that crashed adds an ERROR check, which counts as not passed. "
    "Informative checks are shown but never decide. No overall confidence figure is given."
)


def _rules() -> list[tuple[str, str]]:
    # Imported by name: a rule text that moves fails loudly here instead of vanishing from the report.
    from ..stats.fixes import FIX_RULE_TEXT
    from ..stats.performance import PERFORMANCE_RULE_TEXT
    from ..stats.rates import FAILURE_RATE_RULE_TEXT
    from ..stats.sequential import (
        FIX_SEQUENTIAL_RULE_TEXT,
        PERFORMANCE_SEQUENTIAL_RULE_TEXT,
        RATE_SEQUENTIAL_RULE_TEXT,
    )

    # One row per rule: a cell is capped (MAX_CELL_CHARS) and shows no paragraph breaks, so the three
    # sequential rules in one cell ran together and the last was cut off.
    return [
        ("Overall verdict", VERDICT_RULE),
        ("Sequential sampling: performance", PERFORMANCE_SEQUENTIAL_RULE_TEXT),
        ("Sequential sampling: failure rates", RATE_SEQUENTIAL_RULE_TEXT),
        ("Sequential sampling: the fix", FIX_SEQUENTIAL_RULE_TEXT),
        ("Performance (median ratio)", PERFORMANCE_RULE_TEXT),
        (
            "Performance: several operations",
            "When m operations decide, each interval is computed at 1 - 0.05/m (Bonferroni), so that a false "
            "REGRESSION or NO REGRESSION anywhere in the family happens in at most 5% of runs. Operations whose "
            "baseline median is under performance.min_median_ms, or that performance.operations does not select, "
            "are shown at 95% as informative and do not decide. Samples are taken interleaved (A B, B A, ...) "
            "so that drift on the machine hits both sides alike.",
        ),
        ("Failure rates", FAILURE_RATE_RULE_TEXT),
        ('"The fix works"', FIX_RULE_TEXT),
        (
            "Test categories",
            "A category passes when its tests ran and none failed or errored; zero executed "
            "or only skipped tests is INCONCLUSIVE; flaky tests (passed on rerun) are not a clean pass; a JUnit "
            "file that declares failures or tests it does not list is INCONCLUSIVE.",
        ),
        (
            "API contract",
            "Fails on any change at or above params' fail_on level (WARN by default: 'breaking' as oasdiff means "
            "it; fail_on: ERR fails on certain breaks only). A change that could not be compared (an unresolved "
            "$ref, a schema nested past the depth limit) makes the check INCONCLUSIVE; it needs two real specs.",
        ),
    ]


@dataclass
class RunReport:
    run_dir: Path
    meta: dict[str, Any]
    summary: dict[str, Any]
    evidence: dict[str, SectionResult]
    raw_params: dict[str, Any]

    def _html(self, fragment: str) -> None:
        from IPython.display import HTML, display

        display(HTML(fragment))

    def show_front(self) -> None:
        from .frontpage import show_front_page

        show_front_page(self)

    def show_section(self, name: str) -> None:
        from .chart_cache import CHARTS_DIR_NAME
        from .views import show

        if name in self.evidence:  # the charts the section notebook drew from this evidence are reused
            show(self.evidence[name], charts_dir=self.run_dir / CHARTS_DIR_NAME)

    def show_findings(self) -> None:
        self._html(
            '<div class="sp-section">'
            + warnings_html(self.summary.get("warnings", []))
            + not_checked_html(self.summary.get("not_checked", []))
            + recommendations_html(self.summary)
            + "</div>"
        )

    def commands(self) -> list[str]:
        out = [f"stability run {self.meta.get('params_file', '')}"]
        for result in self.evidence.values():
            for item in result.data.get("commands", []) if isinstance(result.data, dict) else []:
                out.append(str(item))
        return out

    def show_appendix(self) -> None:
        versions = {}
        for name in _PACKAGES:
            try:
                versions[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
        self._html(appendix_html(redact(self.raw_params), versions, self.commands(), _rules()))


def open_report(run_dir: str | Path) -> RunReport:
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    raw = yaml.safe_load((run_dir / "params.yaml").read_text(encoding="utf-8")) or {}
    return RunReport(run_dir, meta, summary, read_all_evidence(run_dir, list(SECTION_ORDER)), raw)


def latest_run(*roots: str | Path) -> Path:
    """The newest run directory holding a summary.json (for the report notebook run by hand,
    from the repository or from notebooks/)."""
    roots = roots or ("runs", "../runs")
    candidates = sorted(
        (p for root in roots for p in Path(root).glob("*/summary.json")), key=lambda p: p.stat().st_mtime
    )
    if not candidates:
        raise FileNotFoundError(f"no run with a summary.json under {', '.join(map(str, roots))}; run `make demo` first")
    return candidates[-1].parent
