"""Writes the notebooks from the cell sources below (run: python notebooks/_build.py).

Section notebooks stay thin: open the section, call the library, show the result. Each
also runs by hand in JupyterLab with its default (empty) parameters: then it
starts the bundled sample service and probes it.

After the result comes a "Dig deeper" part: the run as pandas DataFrames (``sl.load_run``) and one
or two example questions answered in plain pandas/matplotlib, for a user to edit. Its cells are
tagged ``dig-deeper`` and ``skip-execution``: nbclient (under papermill) does not execute a cell
with the ``skip-execution`` tag, so a batch run neither spends time on them nor leaves their output
in the executed notebook (the report is built from report.ipynb alone; section notebooks are
evidence producers). JupyterLab ignores the tag and runs them; tests/test_notebooks.py executes
them as JupyterLab would.

history.ipynb draws the trends report over a folder of runs (``stability history``).
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


# Cells a batch run skips (nbclient's skip_cells_with_tag) and JupyterLab runs.
DIG_DEEPER_TAGS = ["dig-deeper", "skip-execution"]

DIG_DEEPER_INTRO = (
    "## Dig deeper\n\n"
    "Not part of the report: a batch run skips these cells (tag `skip-execution`); JupyterLab runs them. "
    "On a finished run, run the parameters cell and then these cells: nothing is probed again.\n\n"
    "`sl.load_run` reads the run directory into pandas DataFrames, one row per record: `claims`, "
    "`sections`, `sessions`, `latency`, `tests`, `contract_changes`, `warnings` "
    "(`print(run.describe())` lists every column with its meaning). Across runs: "
    '`sl.load_runs("runs")` stacks them, and `stability history runs` draws the trends report.'
)

LOAD_RUN = (
    "import matplotlib.pyplot as plt\n"
    "import pandas as pd\n\n"
    "run = sl.load_run(run_dir or sec.run_dir)\n"
    "print(run)\n"
    'run.claims.query("section == \'{name}\'")[["claim_id", "status", "figure_value", "figure_low", "figure_high", "statistic"]]'
)


def section_notebook(
    name: str, title: str, intro: str, body: str, questions: tuple[str, ...] = ()
) -> nbformat.NotebookNode:
    dig = {"tags": list(DIG_DEEPER_TAGS)}
    return new_notebook(
        cells=[
            new_markdown_cell(f"# {title}\n\n{intro}"),
            new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
            new_code_cell(f'import stability_lib as sl\n\nsec = sl.open_section("{name}", run_dir, params_path)'),
            new_code_cell(body),
            # The charts are kept in the run directory: the report shows them without drawing them again.
            new_code_cell('sl.show_section(result, charts_dir=sec.run_dir / "charts")'),
            new_markdown_cell(DIG_DEEPER_INTRO, metadata={"tags": ["dig-deeper"]}),
            new_code_cell(LOAD_RUN.replace("{name}", name), metadata=dig),
            *[new_code_cell(q, metadata=dig) for q in questions],
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )


# Example questions per section: plain pandas/matplotlib over the frames of sl.load_run.
QUESTIONS: dict[str, tuple[str, ...]] = {
    "health": (
        "# Which health checks did not see what they expected, and how often?\n"
        "health = run.claims.query(\"section == 'health'\")\n"
        'health[["claim_id", "status", "figure_k", "figure_n", "figure_what"]]',
    ),
    "suites": (
        "# Tests per category and outcome; then the slowest tests.\n"
        "tests = run.tests\n"
        "display(pd.crosstab(tests.category, tests.status))\n"
        'tests.nlargest(10, "duration_s")[["category", "test_id", "status", "duration_s"]]',
        "# Why did the failing tests fail?\n"
        'tests[tests.status.isin(["failed", "error", "flaky"])][["category", "test_id", "status", "message"]]',
    ),
    "websocket": (
        "# Which sessions did not end well: when, for which user, with which close code?\n"
        "soak = run.sessions.query(\"section == 'websocket'\")\n"
        "display(pd.crosstab(soak.side, soak.outcome_label))\n"
        'soak[soak.outcome != "ok"][["side", "session_id", "user", "started_at", "close_code", "outcome_label"]]',
        "# Session time across the soak, per side: does it drift, or only spike?\n"
        "fig, ax = plt.subplots(figsize=(8, 3))\n"
        'for side, rows in soak.groupby("side"):\n'
        '    ax.plot(rows.start_offset_s, rows.total_s * 1000, ".", ms=3, label=side)\n'
        'ax.set_xlabel("seconds into the soak")\n'
        'ax.set_ylabel("session time (ms)")\n'
        "ax.legend();",
    ),
    "golden_path": (
        "# How long did each step take (ms), and was any user slower than the others?\n"
        "steps = run.latency.query(\"section == 'golden_path'\")\n"
        'display(steps.groupby("operation").ms.describe()[["count", "50%", "max"]])\n'
        "sessions = run.sessions.query(\"section == 'golden_path'\")\n"
        'sessions.groupby("user").agg(sessions=("session_id", "count"), median_s=("total_s", "median"), not_ok=("outcome", lambda o: (o != "ok").sum()))',
    ),
    "isolation": (
        "# What the isolation check traced: users, runs, and any message seen by the wrong user.\n"
        "import json\n\n"
        'data = json.loads((run.path / "evidence" / "isolation.json").read_text())["data"]\n'
        'users = [u.get("username") for u in data.get("users", [])]\n'
        'print("users:", users, "| runs:", data.get("runs"), "| messages traced:", data.get("sightings_count"))\n'
        'pd.DataFrame(data.get("isolation", {}).get("leaks", []))',
    ),
    "performance": (
        "# Median per operation and side, and the ratio candidate / baseline.\n"
        "lat = run.latency.query(\"section == 'performance'\")\n"
        'medians = lat.pivot_table(index="operation", columns="side", values="ms", aggfunc="median")\n'
        'if {"baseline", "candidate"} <= set(medians.columns):\n'
        '    medians["ratio"] = medians.candidate / medians.baseline\n'
        "medians",
        "# Is the slowdown in every A/B round, or only in some? (edit the operation)\n"
        'operation = "step:agent_session"\n'
        "one = lat[lat.operation == operation]\n"
        'by = "round" if one["round"].notna().any() else "index"\n'
        'per_round = one.pivot_table(index=by, columns="side", values="ms", aggfunc="median")\n'
        'if {"baseline", "candidate"} <= set(per_round.columns):\n'
        '    ax = (per_round.candidate / per_round.baseline).plot(style=".-", figsize=(8, 3), title=operation)\n'
        '    ax.axhline(1.0, color="grey", lw=0.8)\n'
        '    ax.set_ylabel("candidate / baseline")',
    ),
    "contract": (
        "# Changes by kind and level; then every breaking (ERR) change.\n"
        "changes = run.contract_changes\n"
        'display(changes.groupby(["kind", "level"]).size().rename("changes").to_frame())\n'
        'changes[changes.level == "ERR"][["kind", "rule", "method", "path", "message"]]',
    ),
}

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

HISTORY = new_notebook(
    cells=[
        new_code_cell(
            '# Parameters (stability history injects runs_dir; left empty: runs/ or ../runs).\nruns_dir = ""',
            metadata={"tags": ["parameters"]},
        ),
        new_code_cell(
            "from stability_lib.report.history import default_runs_dir, show_history\n\n"
            "history = show_history(runs_dir or default_runs_dir())"
        ),
        new_markdown_cell(
            "## Dig deeper\n\nEvery run's claims as one DataFrame: one row per check per run "
            "(`sl.load_runs`). Batch runs skip these cells (tag `skip-execution`).",
            metadata={"tags": ["dig-deeper"]},
        ),
        new_code_cell(
            "import stability_lib as sl\n\n"
            'runs = sl.load_runs(runs_dir or default_runs_dir(), frames=("claims",))\n'
            "# The decisive figure of every check, one column per run (edit the section).\n"
            'figures = runs.claims.query("section == \'performance\'").pivot(index="run_id", columns="claim_id", values="figure_value")\n'
            'figures.join(runs.runs.set_index("run_id")[["started_at", "target_version", "verdict"]])',
            metadata={"tags": list(DIG_DEEPER_TAGS)},
        ),
    ],
    metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "title": "Stability trends",
    },
)

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


def built() -> dict[str, str]:
    """Every notebook's file text by name, as main() writes it (tests compare it with the files)."""
    notebooks = {
        name: section_notebook(name, title, intro, body, QUESTIONS.get(name, ()))
        for name, (title, intro, body) in SECTIONS.items()
    }
    notebooks.update(report=REPORT, history=HISTORY)
    for name, nb in notebooks.items():
        for i, cell in enumerate(nb.cells):
            cell.id = f"{name}-{i}"  # stable ids: rebuilding does not churn the diff
    return {name: nbformat.writes(nb) + "\n" for name, nb in notebooks.items()}


def main() -> None:
    for name, text in built().items():
        (HERE / f"{name}.ipynb").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
