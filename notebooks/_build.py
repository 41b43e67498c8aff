"""Writes the section notebooks from the cell sources below (run: python notebooks/_build.py).

Notebooks stay thin: open the section, call the library, show the result. Each
also runs by hand in JupyterLab with its default (empty) parameters: then it
starts the bundled sample service and probes it.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

PARAMETERS = (
    "# Parameters (papermill injects run_dir and params_path).\n"
    "# Left empty, the notebook starts the bundled sample service and uses params/demo.yaml.\n"
    'run_dir = ""\n'
    'params_path = ""'
)


def section_notebook(name: str, title: str, intro: str, body: str) -> nbformat.NotebookNode:
    return new_notebook(
        cells=[
            new_markdown_cell(f"# {title}\n\n{intro}"),
            new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
            new_code_cell(f'import stability_lib as sl\n\nsec = sl.open_section("{name}", run_dir, params_path)'),
            new_code_cell(body),
            new_code_cell("sl.show_section(result)"),
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )


SECTIONS: dict[str, tuple[str, str, str]] = {
    "health": (
        "Service health",
        "Each endpoint in params is requested `samples` times; a WebSocket echo is sent once. "
        "Every check is PASS or FAIL from what was observed; an unreachable service is a FAIL.",
        "result = sl.sections.health(sec)",
    ),
    "suites": (
        "Test suites by category",
        "Each category's command runs against the target (its URL in `STABILITY_TARGET_URL`); "
        "results are read from JUnit XML. Zero executed tests is never a PASS.",
        "result = sl.sections.suites(sec)",
    ),
    "websocket": (
        "WebSocket sessions and close codes",
        "Many sessions at bounded concurrency (params `scenario.soak`); each ends in one outcome. "
        "The crash check passes only when the one-sided 95% upper bound of 1011/1006 closes is within "
        "the tolerated rate. With `expect_fix`, the baseline is soaked too and the fix is tested.",
        "result = sl.sections.websocket(sec)",
    ),
    "golden_path": (
        "Golden path",
        "Every test user runs the scenario's steps, several times, at once. Each step's duration is kept "
        "as a distribution; success is a rate with exact bounds.",
        "result = sl.sections.golden_path(sec)",
    ),
    "isolation": (
        "Multi-user isolation",
        "Each user's message carries a unique nonce; a nonce seen by another user, anywhere, fails the check.",
        "result = sl.sections.isolation(sec)",
    ),
    "performance": (
        "Performance against the baseline",
        "Golden-path runs on baseline and candidate, interleaved; per operation the median ratio with a "
        "bootstrap 95% interval decides against the tolerance.",
        "result = sl.sections.performance(sec)",
    ),
    "contract": (
        "Breaking changes (API contract)",
        "The OpenAPI specs of baseline and candidate are diffed rule by rule (ERR breaking, WARN possibly "
        "breaking, INFO); WebSocket event shapes observed on both sides are compared; optionally the databases.",
        "result = sl.sections.contract(sec)",
    ),
}

REPORT = new_notebook(
    cells=[
        new_code_cell(
            "# Parameters (papermill injects run_dir; left empty, the newest run under runs/ is shown).\n"
            'run_dir = ""\nparams_path = ""',
            metadata={"tags": ["parameters"]},
        ),
        # Page 1 (the executive summary) comes from _frontpage; the report object only loads the run.
        new_code_cell(
            "import stability_lib as sl\nfrom stability_lib._frontpage import show_front_page\n\n"
            "report = sl.open_report(run_dir or sl.latest_run())\nshow_front_page(report)"
        ),
        *[
            new_code_cell(f'report.show_section("{name}")')
            for name in ("health", "suites", "websocket", "golden_path", "isolation", "performance", "contract")
        ],
        new_code_cell("report.show_findings()"),
        new_code_cell("report.show_appendix()"),
    ],
    metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "title": "Stability proof report",
    },
)


def _write(nb: nbformat.NotebookNode, name: str) -> None:
    for i, cell in enumerate(nb.cells):
        cell.id = f"{name}-{i}"  # stable ids: rebuilding does not churn the diff
    nbformat.write(nb, HERE / f"{name}.ipynb")


def main() -> None:
    for name, (title, intro, body) in SECTIONS.items():
        _write(section_notebook(name, title, intro, body), name)
    _write(REPORT, "report")


if __name__ == "__main__":
    main()
