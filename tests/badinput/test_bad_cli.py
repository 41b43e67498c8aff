"""Bad params files and command lines, through the real ``stability`` command (issue 11, items 3, 8, 10).

Almost all fail at load, before any kernel starts: exit 3, one line on stderr, no traceback.
The commands run a few at a time in the background (they share the module's pool) and each
case waits only for its own: the table costs about its slowest members, not their sum.
"""

from __future__ import annotations

import json
import os
import queue
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from _corpus import (
    EXIT_COULD_NOT_RUN,
    EXIT_FAIL,
    EXIT_INCONCLUSIVE,
    Outcome,
    Zygote,
    assert_bad_input_outcome,
    run_stability,
)

SECRET = 's3cr3t"Pl4nted\\XYZ&<>'  # a backslash, a quote and markup: every encoding differs
PASSWORD = "hunter2-Corpus-Pw"

# Valid and cheap: only health, against a port where nothing listens. A case whose fault is not
# caught at load runs this whole thing and gets exit 1, which its assertion then reports.
BASE: dict[str, Any] = {
    "title": "bad input",
    "environment": "local",
    "target": {"name": "candidate", "base_url": "http://127.0.0.1:9"},
    "sections": {"health": {"samples": 1, "timeout_s": 1, "endpoints": [{"path": "/health"}]}},
}


def doc(**changes: Any) -> str:
    """BASE with top-level keys replaced (None removes one)."""
    data = {**BASE, **changes}
    return yaml.safe_dump({k: v for k, v in data.items() if v is not None}, sort_keys=False)


def with_target(**target: Any) -> str:
    return doc(target={**BASE["target"], **target})


def with_section(name: str, value: Any) -> str:
    return doc(sections={**BASE["sections"], name: value})


SCENARIO = {
    "users": {"password": "pw", "count": 1},
    "golden_path": {"steps": [{"kind": "http", "name": "h", "method": "GET", "path": "/", "expect_status": 200}]},
}


def alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    # every string is scanned by the ${NAME} resolver: 9^9 of them once expanded
    return "\n".join(lines) + "\n" + doc(description="${A}") + f"extra: *a{levels - 1}\n"


@dataclass(frozen=True)
class CliCase:
    id: str
    args: tuple[str, ...]  # "{params}" is the case's params file, "{dir}" its folder
    params: str | bytes | None = None
    expect: int | frozenset[int] = EXIT_COULD_NOT_RUN
    env: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None  # makes files the case needs
    must_not_print: tuple[str, ...] = ()  # secrets: never on the terminal
    max_rss_mb: int | None = None
    memory_cap_mb: int | None = None  # RLIMIT_AS, so a regression fails the case instead of the machine
    timeout_s: float = 120
    issue_item: str = ""
    gone_after: tuple[str, ...] = ()  # files (in the case's folder) that must not survive the failure


RUN = ("run", "{params}", "--out", "{dir}/run")


def fifo(name: str) -> Callable[[Path], None]:
    return lambda d: os.mkfifo(d / name)


def symlink(name: str, to: str) -> Callable[[Path], None]:
    return lambda d: os.symlink(to, d / name)


def run_dir(run_json: bytes | None, params: bytes | None = None) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        rd = d / "rd"
        rd.mkdir()
        if run_json is not None:
            (rd / "run.json").write_bytes(run_json)
        if params is not None:
            (rd / "params.yaml").write_bytes(params)

    return make


def out_is_a_file(d: Path) -> None:
    (d / "taken").write_text("a file, not a folder\n")


def deep_list(depth: int) -> str:
    return doc() + "extra: " + "[" * depth + "]" * depth + "\n"


def deep_block(depth: int) -> str:
    return doc() + "extra:\n" + "".join(" " * i + "-\n" for i in range(1, depth))


VALID_RUN_JSON = json.dumps(
    {"run_id": "x", "params_file": "params.yaml", "started_at": "2026-01-01T00:00:00Z"}
).encode()

CASES: list[CliCase] = [
    # --- the params file itself
    CliCase("params-missing", ("run", "{dir}/nope.yaml", "--out", "{dir}/run")),
    CliCase("params-is-a-directory", ("run", "{dir}", "--out", "{dir}/run")),
    CliCase("params-dev-null", ("run", "/dev/null", "--out", "{dir}/run")),
    CliCase(
        "params-dev-zero",
        ("run", "/dev/zero", "--out", "{dir}/run"),
        max_rss_mb=400,
        memory_cap_mb=2048,
        timeout_s=60,
        issue_item="3",
    ),
    CliCase(
        "params-fifo", ("run", "{dir}/p.fifo", "--out", "{dir}/run"), setup=fifo("p.fifo"), timeout_s=60, issue_item="3"
    ),
    CliCase(
        "params-symlink-to-dev-zero",
        RUN,
        setup=symlink("params.yaml", "/dev/zero"),
        max_rss_mb=400,
        memory_cap_mb=2048,
        timeout_s=60,
        issue_item="3",
    ),
    CliCase("params-not-utf8", RUN, params=b"title: caf\xe9\n" + doc().encode(), issue_item="8"),
    CliCase("params-utf16", RUN, params=doc().encode("utf-16")),
    CliCase("params-nul-bytes", RUN, params=b"title: a\x00b\n"),
    CliCase("params-invalid-yaml", RUN, params="title: [unclosed\n"),
    CliCase("params-tab-indent", RUN, params="title: x\ntarget:\n\tbase_url: http://127.0.0.1:9\n"),
    CliCase("params-top-level-list", RUN, params="- title\n- x\n"),
    CliCase("params-top-level-scalar", RUN, params="just words\n"),
    CliCase("params-empty-mapping", RUN, params="{}\n"),
    CliCase("params-python-tag", RUN, params="title: !!python/object/apply:os.system ['true']\n"),
    CliCase("params-duplicate-top-key", RUN, params=doc() + "title: again\n", issue_item="10"),
    CliCase(
        "params-duplicate-nested-key",
        RUN,
        params=doc().replace("  name: candidate\n", "  name: candidate\n  name: other\n"),
        issue_item="10",
    ),
    CliCase(
        "params-alias-bomb",
        RUN,
        params=alias_bomb(),
        env={"A": "a"},
        max_rss_mb=600,
        memory_cap_mb=2048,
        timeout_s=90,
        issue_item="3",
    ),
    CliCase("params-recursive-alias", RUN, params=doc() + "extra: &x [*x]\n"),
    CliCase("params-100k-deep-flow-list", RUN, params=deep_list(100_000), max_rss_mb=600, issue_item="8"),
    CliCase("params-5k-deep-block-list", RUN, params=deep_block(5_000), issue_item="8"),
    CliCase(
        "params-huge-title",
        RUN,
        params="title: " + "T" * (40 * 1024 * 1024) + "\n" + doc(title=None),
        max_rss_mb=1500,
        timeout_s=120,
        issue_item="3",
    ),
    # --- top-level fields
    CliCase("unknown-top-key", RUN, params=doc(colour="blue")),
    CliCase("missing-title", RUN, params=doc(title=None)),
    CliCase("title-is-a-list", RUN, params=doc(title=["a", "b"])),
    CliCase("missing-target", RUN, params=doc(target=None)),
    CliCase("target-is-a-string", RUN, params=doc(target="http://127.0.0.1:9")),
    CliCase("missing-base-url", RUN, params=doc(target={"name": "x"})),
    CliCase("environment-unknown", RUN, params=doc(environment="moon")),
    CliCase("base-url-unclosed-ipv6", RUN, params=with_target(base_url="http://[::1"), issue_item="8"),
    CliCase(
        "base-url-env-with-bracket",
        RUN,
        params=with_target(base_url="${TARGET_URL}"),
        env={"TARGET_URL": "http://[oops"},
        issue_item="8",
    ),
    CliCase("base-url-ftp-scheme", RUN, params=with_target(base_url="ftp://127.0.0.1/"), issue_item="10"),
    CliCase("base-url-javascript", RUN, params=with_target(base_url="javascript:alert(1)"), issue_item="10"),
    CliCase("base-url-no-scheme", RUN, params=with_target(base_url="127.0.0.1:9"), issue_item="10"),
    CliCase("base-url-empty", RUN, params=with_target(base_url=""), issue_item="10"),
    CliCase("base-url-bad-port", RUN, params=with_target(base_url="http://127.0.0.1:99999"), issue_item="8"),
    CliCase("ws-base-url-http-scheme", RUN, params=with_target(ws_base_url="http://127.0.0.1:9"), issue_item="10"),
    CliCase("ws-base-url-file-scheme", RUN, params=with_target(ws_base_url="file:///etc/passwd"), issue_item="10"),
    CliCase(
        "baseline-base-url-gopher", RUN, params=doc(baseline={"base_url": "gopher://127.0.0.1:9"}), issue_item="10"
    ),
    CliCase("env-var-missing", RUN, params=with_target(base_url="${NO_SUCH_VAR_4821}")),
    CliCase(
        "secret-in-bad-base-url-not-printed",
        RUN,
        params=with_target(base_url="http://user:${PW}@[::1"),
        env={"PW": SECRET},
        must_not_print=(SECRET, SECRET.replace("\\", "\\\\")),
        issue_item="2b",
    ),
    CliCase(
        "secret-in-query-of-bad-url-not-printed",
        RUN,
        params=with_target(base_url="ftp://127.0.0.1/?token=${PW}"),
        env={"PW": PASSWORD},
        must_not_print=(PASSWORD,),
        issue_item="2b",
    ),
    CliCase(
        "secret-in-title-with-a-later-error",
        RUN,
        params=doc(title="${PW}", colour="blue"),
        env={"PW": PASSWORD},
        must_not_print=(PASSWORD,),
        issue_item="2c",
    ),
    # --- sections
    CliCase("sections-is-a-list", RUN, params=doc(sections=["health"])),
    CliCase("section-unknown", RUN, params=with_section("vibes", {})),
    CliCase("health-samples-zero", RUN, params=with_section("health", {"samples": 0})),
    CliCase("health-samples-billion", RUN, params=with_section("health", {"samples": 10**9})),
    CliCase("health-timeout-negative", RUN, params=with_section("health", {"timeout_s": -1})),
    CliCase("health-timeout-nan", RUN, params=doc().replace("timeout_s: 1", "timeout_s: .nan")),
    CliCase("health-timeout-inf", RUN, params=doc().replace("timeout_s: 1", "timeout_s: .inf")),
    CliCase("health-method-post", RUN, params=with_section("health", {"endpoints": [{"path": "/", "method": "POST"}]})),
    CliCase("health-endpoints-not-a-list", RUN, params=with_section("health", {"endpoints": "/health"})),
    CliCase("probe-section-without-scenario", RUN, params=with_section("golden_path", {})),
    CliCase(
        "suites-junit-outside-cwd",
        RUN,
        params=with_section("suites", {"categories": [{"name": "x", "command": ["true"], "junit_xml": "/etc/passwd"}]}),
        issue_item="4",
    ),
    CliCase(
        "suites-coverage-dotdot",
        RUN,
        params=with_section(
            "suites",
            {"categories": [{"name": "x", "command": ["true"], "junit_xml": "j.xml", "coverage_xml": "../../c.xml"}]},
        ),
        issue_item="4",
    ),
    CliCase(
        "suites-duplicate-names",
        RUN,
        params=with_section(
            "suites",
            {
                "categories": [
                    {"name": "x", "command": ["true"], "junit_xml": "a.xml"},
                    {"name": "x", "command": ["true"], "junit_xml": "b.xml"},
                ]
            },
        ),
    ),
    CliCase(
        "suites-empty-command",
        RUN,
        params=with_section("suites", {"categories": [{"name": "x", "command": [], "junit_xml": "a.xml"}]}),
    ),
    CliCase(
        "contract-two-sources",
        RUN,
        params=with_section("contract", {"baseline_spec": {"file": "a.json", "url": "http://127.0.0.1:9/"}}),
    ),
    CliCase("runner-workers-zero", RUN, params=doc(runner={"workers": 0})),
    CliCase("runner-timeout-zero", RUN, params=doc(runner={"section_timeout_s": 0})),
    # a report that says what went wrong (INCONCLUSIVE) is as good as a refusal at load
    CliCase(
        "runner-notebooks-dir-missing",
        RUN,
        params=doc(runner={"notebooks_dir": "no-such-notebooks"}),
        expect=frozenset({EXIT_COULD_NOT_RUN, EXIT_INCONCLUSIVE}),
    ),
    CliCase("warnings-floor-over-one", RUN, params=doc(warnings={"coverage_floor": 2})),
    CliCase(
        "users-count-million-even-over-caps",
        RUN,
        params=doc(
            scenario={**SCENARIO, "users": {"password": "pw", "count": 1_000_000, "allow_over_caps": True}},
            sections={"golden_path": {}},
        ),
        issue_item="3",
    ),
    CliCase(
        "soak-sessions-billion-even-over-caps",
        RUN,
        params=doc(
            scenario={**SCENARIO, "soak": {"sessions": 10**9, "allow_over_caps": True}}, sections={"websocket": {}}
        ),
    ),
    CliCase(
        "scenario-step-kind-unknown",
        RUN,
        params=doc(scenario={**SCENARIO, "golden_path": {"steps": [{"kind": "ftp", "name": "x"}]}}),
    ),
    CliCase("scenario-is-a-string", RUN, params=doc(scenario="log in", sections={"golden_path": {}})),
    # --- --set
    CliCase("set-without-equals", (*RUN, "--set", "title"), params=doc()),
    CliCase("set-empty-key", (*RUN, "--set", "=x"), params=doc()),
    CliCase("set-through-a-scalar", (*RUN, "--set", "title.x=1"), params=doc()),
    CliCase("set-invalid-yaml-value", (*RUN, "--set", "title=[unclosed"), params=doc()),
    CliCase("set-unknown-key", (*RUN, "--set", "sections.health.bogus=1"), params=doc()),
    CliCase("set-wrong-type", (*RUN, "--set", "sections.health.samples=lots"), params=doc()),
    CliCase("set-alias-value", (*RUN, "--set", "title=*a"), params=doc()),
    # --- --out, --workers and other flags
    CliCase(
        "out-is-a-file", ("run", "{params}", "--out", "{dir}/taken"), params=doc(), setup=out_is_a_file, issue_item="8"
    ),
    CliCase(
        "out-under-a-file",
        ("run", "{params}", "--out", "{dir}/taken/run"),
        params=doc(),
        setup=out_is_a_file,
        issue_item="8",
    ),
    CliCase("out-under-dev-null", ("run", "{params}", "--out", "/dev/null/run"), params=doc(), issue_item="8"),
    CliCase("out-under-proc", ("run", "{params}", "--out", "/proc/stability-run"), params=doc(), issue_item="8"),
    CliCase("out-under-sys", ("run", "{params}", "--out", "/sys/stability-run"), params=doc(), issue_item="8"),
    CliCase("workers-zero", (*RUN, "--workers", "0"), params=doc(), issue_item="8"),
    CliCase("workers-not-a-number", (*RUN, "--workers", "many"), params=doc(), issue_item="8"),
    CliCase("workers-hundred", (*RUN, "--workers", "100"), params=doc(), issue_item="8"),
    CliCase("no-command", (), issue_item="8"),
    CliCase("unknown-command", ("launch",), issue_item="8"),
    CliCase("unknown-flag", (*RUN, "--turbo"), params=doc(), issue_item="8"),
    CliCase("run-without-params", ("run",), issue_item="8"),
    CliCase("baseline-name-is-an-option", (*RUN, "--baseline", "--help"), params=doc(), issue_item="8"),
    CliCase(
        "baseline-unknown-name",
        (*RUN, "--baseline", "no-such-baseline-4821"),
        params=doc(),
        expect=frozenset({EXIT_COULD_NOT_RUN, EXIT_FAIL, EXIT_INCONCLUSIVE}),
    ),
    # --- report
    CliCase("report-missing-folder", ("report", "{dir}/nope"), issue_item="8"),
    CliCase("report-on-a-file", ("report", "{dir}/taken"), setup=out_is_a_file, issue_item="8"),
    CliCase("report-no-run-json", ("report", "{dir}/rd"), setup=run_dir(None), issue_item="8"),
    CliCase(
        "report-corrupt-run-json", ("report", "{dir}/rd"), setup=run_dir(b"{not json", doc().encode()), issue_item="8"
    ),
    CliCase(
        "report-failed-leaves-no-old-pass",
        ("report", "{dir}/rd"),
        setup=lambda d: (
            run_dir(b"{not json", doc().encode())(d),
            (d / "rd" / "summary.json").write_text('{"verdict": "PASS"}'),
        ),
        gone_after=("rd/summary.json",),
        issue_item="10",
    ),
    CliCase("report-run-json-a-list", ("report", "{dir}/rd"), setup=run_dir(b"[1, 2]", doc().encode()), issue_item="8"),
    CliCase(
        "report-non-utf8-params",
        ("report", "{dir}/rd"),
        setup=run_dir(VALID_RUN_JSON, b"title: caf\xe9\n"),
        issue_item="8",
    ),
    CliCase("report-params-missing", ("report", "{dir}/rd"), setup=run_dir(VALID_RUN_JSON), issue_item="8"),
    CliCase(
        "report-params-fifo",
        ("report", "{dir}/rd"),
        setup=lambda d: (run_dir(VALID_RUN_JSON)(d), os.mkfifo(d / "rd" / "params.yaml")),
        timeout_s=60,
        issue_item="3",
    ),
    # --- baseline save
    CliCase("baseline-save-missing-run", ("baseline", "save", "{dir}/nope", "--name", "b1", "--store", "{dir}/store")),
    CliCase(
        "baseline-save-name-escapes-store",
        ("baseline", "save", "{dir}/rd", "--name", "../../evil", "--store", "{dir}/store"),
        setup=run_dir(VALID_RUN_JSON, doc().encode()),
    ),
    CliCase("baseline-save-without-name", ("baseline", "save", "{dir}/rd"), issue_item="8"),
    # --- demo (refused before any service starts)
    CliCase("demo-variant-bogus", ("demo", "--variant", "bogus", "--out", "{dir}/run"), issue_item="8"),
    CliCase(
        "demo-baseline-variant-bogus", ("demo", "--baseline-variant", "bogus", "--out", "{dir}/run"), issue_item="8"
    ),
    CliCase("demo-fault-banana", ("demo", "--fault", "banana", "--out", "{dir}/run"), issue_item="8"),
    CliCase("demo-fault-bad-number", ("demo", "--fault", "slow=login:lots", "--out", "{dir}/run"), issue_item="8"),
    CliCase("demo-params-missing", ("demo", "--params", "{dir}/nope.yaml", "--out", "{dir}/run")),
]

# Through `python -m stability_lib.cli` itself (interpreter start and all); the rest go through
# pre-imported zygotes that fork one real process per case (see _zygote.py): same code, same
# process boundary, a fraction of the CPU.
FULL_START = {
    "params-missing",
    "params-dev-zero",
    "params-alias-bomb",
    "unknown-command",
    "report-corrupt-run-json",
    "demo-variant-bogus",
}
WORKERS = 2


def _launch(case: CliCase, folder: Path, zygotes: queue.Queue[Zygote]) -> tuple[Outcome, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    if case.params is not None:
        target = folder / "params.yaml"
        target.write_bytes(case.params if isinstance(case.params, bytes) else case.params.encode())
    if case.setup is not None:
        case.setup(folder)
    args = [a.replace("{params}", str(folder / "params.yaml")).replace("{dir}", str(folder)) for a in case.args]
    env = {**case.env, "PYTHONWARNINGS": "ignore"}
    cap = case.memory_cap_mb * 1024 * 1024 if case.memory_cap_mb else None
    if case.id in FULL_START:
        return run_stability(args, env=env, cwd=folder, timeout_s=case.timeout_s, memory_cap_bytes=cap), folder
    zygote = zygotes.get()
    try:
        return zygote.run(args, env=env, cwd=folder, timeout_s=case.timeout_s, memory_cap_bytes=cap), folder
    finally:
        zygotes.put(zygote)


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[tuple[Outcome, Path]]]]:
    root = tmp_path_factory.mktemp("badinput-cli")
    zygotes: queue.Queue[Zygote] = queue.Queue()
    owned = [Zygote() for _ in range(WORKERS)]
    for zygote in owned:
        zygotes.put(zygote)
    pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="badinput-cli")
    # All submitted at once: a few run at a time while the tests wait, each for its own.
    yield {case.id: pool.submit(_launch, case, root / case.id, zygotes) for case in CASES}
    pool.shutdown(wait=True, cancel_futures=True)
    left = [name for zygote in owned for name in zygote.close()]
    assert not left, f"zygote processes left behind: {left}"


def test_the_table_has_unique_ids() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.timeout(900)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_command_line_or_params(case: CliCase, launched: dict[str, Future[tuple[Outcome, Path]]]) -> None:
    outcome, folder = launched[case.id].result(timeout=900)
    assert_bad_input_outcome(outcome, case.expect, max_rss_mb=case.max_rss_mb)
    terminal = outcome.stdout + outcome.stderr
    for secret in case.must_not_print:
        assert secret not in terminal, f"a secret reached the terminal\n{outcome.describe()}"
    if outcome.returncode == EXIT_COULD_NOT_RUN and case.args[:1] == ("run",):
        # refused before anything ran: no section notebook was executed
        assert not list(folder.glob("run/notebooks/*.ipynb")), outcome.describe()
    assert not re.search(r"\bline \d+, in \w+", outcome.stderr), "a stack frame on stderr"
    for name in case.gone_after:
        assert not (folder / name).exists(), f"{name} survived a failed command: an old verdict looks current"
