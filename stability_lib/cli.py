"""The ``stability`` command: run, demo, report, baseline, diff, junit, history.

Exit codes: 0 PASS, 1 FAIL, 2 INCONCLUSIVE, 3 the run could not be made (one line on stderr).
A usage error is 3 too (argparse's own 2 would read as INCONCLUSIVE), and so is a run stopped
by SIGINT, SIGTERM or SIGHUP (the terminal closed): it could not be completed, and every process
it started is stopped. Its run directory stays, and ``stability report`` renders it as
INCONCLUSIVE ("interrupted"). Never a traceback: an unexpected failure is one line here, its
traceback in the run's run.log.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from .core.errors import StabilityError
from .core.verdict import EXIT_COULD_NOT_RUN
from .execution.notebooks import interrupt_signal, signals_interrupt

__all__ = ["console", "main"]


def _workers(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 8:
        raise argparse.ArgumentTypeError("must be between 1 and 8")
    return value


def _count(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError("must be between 0 and 1000")
    return value


_ENGINE_SECTIONS = ("websocket", "golden_path", "isolation")  # the sections the Locust engine can drive


def _add_format_options(command: argparse.ArgumentParser) -> None:
    """``--format pdf|html`` and ``--no-pdf``: what the report is exported to (HTML only needs no Chromium)."""
    command.add_argument(
        "--format",
        dest="report_format",
        default="pdf",
        choices=["pdf", "html"],
        help="pdf (default): HTML and PDF; html: HTML only, no Chromium needed",
    )
    command.add_argument(
        "--no-pdf", dest="report_format", action="store_const", const="html", help="same as --format html"
    )


def _engine_overrides(args: argparse.Namespace, enabled: Sequence[str] = _ENGINE_SECTIONS) -> list[str]:
    """``--engine`` and the Locust options as params overrides of each ``enabled`` section it can drive."""
    out: list[str] = []
    for option, key in (
        ("engine", "engine"),
        ("locust_workers", "locust_workers"),
        ("locust_master_bind", "locust_master_bind"),
        ("expect_workers", "expect_workers"),
    ):
        value = getattr(args, option)
        if value is not None:
            out.extend(f"sections.{section}.{key}={json.dumps(value)}" for section in enabled)
    return out


def _engine_sections(params: Path, overrides: list[str]) -> list[str]:
    """The sections the engine options drive: the websocket soak, the golden path and the isolation check,
    where enabled. The options must not switch on a section the params do not ask for: none enabled is refused."""
    from .core.errors import ParamsError
    from .execution.params import apply_overrides, read_raw

    sections = apply_overrides(read_raw(params), overrides).get("sections") or {}
    enabled = [
        name
        for name in _ENGINE_SECTIONS
        if isinstance(sections, dict)
        and (section := sections.get(name)) is not None
        and not (isinstance(section, dict) and section.get("enabled") is False)
    ]
    if not enabled:
        raise ParamsError(
            "--engine and the --locust options drive the websocket soak, the golden path and the isolation "
            "check: none of them is enabled in the params"
        )
    return enabled


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 3 ("could not run"), not 2 (INCONCLUSIVE)."""

    def error(self, message: str) -> NoReturn:
        # One line, like every other refusal; the usage is one --help away.
        self.exit(EXIT_COULD_NOT_RUN, f"{self.prog}: could not run: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    # Subparsers inherit the class: every usage error goes through _Parser.error.
    parser = _Parser(prog="stability", description="Prove that a change to a web service is safe.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run every enabled section and export the report")
    run.add_argument("params", type=Path, help="params YAML file")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a params value, e.g. --set sections.websocket.enabled=false",
    )
    run.add_argument("--out", type=Path, default=None, help="run directory (default runs/<UTC time>-<params name>)")
    run.add_argument("--baseline", default=None, help="stored baseline NAME or RUN_DIR to compare with")
    run.add_argument(
        "--workers", type=_workers, default=None, help="notebooks executed at once, 1-8 (default from params: 2)"
    )
    _add_format_options(run)
    run.add_argument(
        "--engine",
        choices=["own", "locust"],
        default=None,
        help="who drives the WebSocket soak and the golden path: own (default) or locust (a headless Locust master "
        "and local workers)",
    )
    run.add_argument(
        "--locust-workers", type=_count, default=None, metavar="N", help="local Locust workers (default 2)"
    )
    run.add_argument(
        "--locust-master-bind",
        default=None,
        metavar="HOST:PORT",
        help="where the Locust master listens (default 127.0.0.1 on a free port); remote workers connect here",
    )
    run.add_argument(
        "--expect-workers",
        type=_count,
        default=None,
        metavar="N",
        help="workers the Locust master waits for, local ones included (more than --locust-workers: remote ones)",
    )

    demo = sub.add_parser("demo", help="start the bundled sample service and run the report against it")
    demo.add_argument(
        "--variant", default="candidate", help="sample-service variant under test (candidate, regressed, ...)"
    )
    demo.add_argument("--baseline-variant", default="baseline", help="variant serving as the live baseline")
    demo.add_argument("--fault", action="append", default=[], help="extra fault on the candidate, e.g. slow=login:50")
    demo.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    demo.add_argument("--out", type=Path, default=None)
    demo.add_argument("--params", type=Path, default=None, help="params file (default params/demo.yaml)")
    _add_format_options(demo)

    report = sub.add_parser("report", help="re-render the report of a stored run (touches no target)")
    report.add_argument("run_dir", type=Path)

    diff = sub.add_parser("diff", help="breaking changes between two OpenAPI/Swagger specs (no target, no report)")
    diff.add_argument("base", help="the spec before: a file, an http(s) URL or a git REF:PATH")
    diff.add_argument("revision", help="the spec after: a file, an http(s) URL or a git REF:PATH")
    diff.add_argument(
        "--fail-on",
        default="WARN",
        choices=["ERR", "WARN", "INFO"],
        help="exit 1 when a change is at or above this level (default WARN: oasdiff's 'breaking')",
    )
    diff.add_argument("--format", dest="fmt", default="text", choices=["text", "json", "junit", "html"])
    diff.add_argument("--repo", type=Path, default=Path("."), help="git work tree for REF:PATH sources")
    diff.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="header for URL sources; write secrets as ${ENV_NAME}, e.g. 'Authorization=Bearer ${TOKEN}'",
    )

    junit = sub.add_parser("junit", help="count and judge existing JUnit XML files (no target, no report)")
    junit.add_argument("inputs", nargs="+", type=Path, metavar="FILE_OR_DIR")
    junit.add_argument("--baseline", type=Path, default=None, help="folder of the same files from a baseline run")

    history = sub.add_parser(
        "history", help="trends across stored runs: each check's status and figure, real changes marked (HTML + PDF)"
    )
    history.add_argument("runs_dir", type=Path, nargs="?", default=Path("runs"), metavar="RUNS_DIR")
    history.add_argument("--out", type=Path, default=None, help="folder for the report (default RUNS_DIR/history)")

    baseline = sub.add_parser("baseline", help="manage stored baselines")
    bsub = baseline.add_subparsers(dest="baseline_command", required=True)
    save = bsub.add_parser("save", help="store a run's evidence as a named baseline")
    save.add_argument("run_dir", type=Path)
    save.add_argument("--name", required=True)
    save.add_argument("--store", type=Path, default=Path("baselines"))
    return parser


def _one_line(text: object) -> str:
    lines = [line for line in str(text).splitlines() if line.strip()]
    return (lines[0] if lines else "").strip()[:500]


def _skip_slow_optional_imports() -> None:
    """jsonschema, which nbformat imports (papermill and nbconvert import nbformat), imports the
    optional ``rfc3987_syntax`` when it is installed (JupyterLab's jupyter_events brings it), and
    that module compiles three Earley grammars at import: 1.2 CPU-s, before the first notebook
    of every run can start (jsonschema#1428). It only checks the "iri" and "iri-reference"
    formats, which nbformat's schema does not use and nothing else in this process checks; with
    it marked missing, jsonschema skips those two formats, as it does where it is not installed.
    Kernels and the test suites' own processes are not affected."""
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]  # None: "not importable"


def main(argv: Sequence[str] | None = None) -> int:
    _skip_slow_optional_imports()
    args = _parser().parse_args(argv)
    try:
        with signals_interrupt():
            return _dispatch(args)
    except StabilityError as exc:
        print(f"stability: could not run: {_one_line(exc)}", file=sys.stderr)
    except KeyboardInterrupt as exc:
        run_dir = getattr(exc, "run_dir", None)
        where = f"; partial run in {run_dir} (`stability report {run_dir}` renders it)" if run_dir else ""
        print(f"stability: interrupted by {interrupt_signal(exc)}{where}", file=sys.stderr)
    except OSError as exc:  # a full disk, a folder we may not write: outside any run directory
        print(f"stability: could not run: {exc.strerror or type(exc).__name__}: {exc.filename or exc}", file=sys.stderr)
    except Exception as exc:  # a bug of ours: one line, never a traceback
        print(f"stability: could not run: internal error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
    return EXIT_COULD_NOT_RUN


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        from ._pipeline import run

        engine = _engine_overrides(args)
        if engine:
            engine = _engine_overrides(args, _engine_sections(args.params, args.overrides))
        overrides = [*args.overrides, *engine]
        if args.baseline:  # quoted: a name like 2024-01-01 or "yes" stays a string
            overrides.append(f"sections.performance.stored_baseline={json.dumps(args.baseline)}")
        outcome = run(
            args.params, overrides=overrides, out=args.out, workers=args.workers, pdf=args.report_format == "pdf"
        )
        return outcome.exit_code
    if args.command == "demo":
        from .execution.sample_service import sample_service_hook

        run_demo = sample_service_hook("run")  # the library never imports the demo: it registers itself

        return run_demo(
            variant=args.variant,
            baseline_variant=args.baseline_variant,
            faults=args.fault,
            overrides=args.overrides,
            out=args.out,
            params_file=args.params,
            pdf=args.report_format == "pdf",
        )
    if args.command == "report":
        from ._pipeline import render_report

        return render_report(args.run_dir).exit_code
    if args.command == "diff":
        from ._oneshot import diff_command

        return diff_command(
            args.base, args.revision, fail_on=args.fail_on, fmt=args.fmt, repo=args.repo, headers=args.header
        )
    if args.command == "junit":
        from ._oneshot import junit_command

        return junit_command(args.inputs, baseline_dir=args.baseline)
    if args.command == "history":
        from .report.history import write_history

        html, pdf = write_history(args.runs_dir, args.out)
        print(f"trends report: {html}\n               {pdf}")
        return 0
    if args.command == "baseline":
        from .execution.baseline import save_baseline

        path = save_baseline(args.run_dir, args.name, store=args.store)
        print(f"baseline {args.name} saved: {path}")
        return 0
    return EXIT_COULD_NOT_RUN


def console() -> NoReturn:
    """The ``stability`` command (and ``python -m stability_lib.cli``): ``main``, then exit.

    Before the interpreter's teardown, every object is moved out of the collector's reach
    (``gc.freeze``): the process is ending, and its last full collection would walk the whole
    heap (notebook, export and plotting libraries), 0.3-0.5 s of every run for nothing. The
    teardown is otherwise the usual one: atexit handlers and finalizers run."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    console()
