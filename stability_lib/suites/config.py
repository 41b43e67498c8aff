"""Test-suite section configuration (validated by pydantic), the command it builds, and the run record.

``CategoryRun`` is what crosses from the process shell (``suites.process``) to the judgement.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "SECTION",
    "TARGET_URL_ENV",
    "MAX_TIMEOUT_S",
    "MAX_RERUNS",
    "MAX_CONCURRENCY",
    "CategoryConfig",
    "SuitesConfig",
    "is_pytest_command",
    "build_command",
    "CategoryRun",
]


SECTION = "suites"


TARGET_URL_ENV = "STABILITY_TARGET_URL"


MAX_TIMEOUT_S = 3600.0


MAX_RERUNS = 5


MAX_CONCURRENCY = 8  # categories at once: each is a process tree on the same machine as the run


class CategoryConfig(BaseModel):
    """One category of a team's tests (e.g. "auth"), run by one command, or an existing JUnit
    report read as it is (``junit_xml`` without ``command``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    # None: ``python -m pytest [-m marker] [paths...]`` with the running interpreter.
    command: list[str] | None = None
    marker: str | None = None  # pytest -m expression (default command only)
    paths: list[str] = Field(default_factory=list)  # pytest paths, relative to cwd
    cwd: str = "."  # relative to the params file's folder
    env: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=300.0, gt=0, le=MAX_TIMEOUT_S)
    junit_xml: str | None = Field(
        default=None,
        description=(
            "The JUnit XML file a custom command writes, relative to cwd; it must stay inside "
            "cwd unless allow_paths_outside_cwd is true. Omit it for pytest: the runner adds "
            "--junitxml pointing into the output folder. With a command, only a file this run "
            "wrote is read. Without a command, the file is an existing report (another CI step "
            "wrote it): it is read as it is, and a missing file is ERROR. Never deleted."
        ),
    )
    coverage_xml: str | None = Field(
        default=None,
        description=(
            "The Cobertura coverage file the command writes, relative to cwd; it must stay inside "
            "cwd unless allow_paths_outside_cwd is true. Only a file this run wrote is read; the "
            "file is never deleted."
        ),
    )
    allow_paths_outside_cwd: bool = Field(
        default=False,
        description=(
            "Explicit opt-in: let junit_xml and coverage_xml be absolute or lead out of cwd "
            "(with '..' or a symbolic link). The runner still only reads them, never deletes them."
        ),
    )
    required: bool = True

    @field_validator("command")
    @classmethod
    def _command_not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or not value[0].strip()):
            raise ValueError("command must name a program (or be omitted to run pytest)")
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not key or "=" in key or "\0" in key:
                raise ValueError(f"invalid environment variable name {key!r}")
        return value

    @model_validator(mode="after")
    def _junit_source_known(self) -> CategoryConfig:
        if self.command is not None:
            if self.marker is not None or self.paths:
                raise ValueError(
                    f"category {self.name!r}: marker/paths apply only to the default pytest "
                    "command; put them in command instead"
                )
            if self.junit_xml is None and not is_pytest_command(self.command):
                raise ValueError(
                    f"category {self.name!r}: command is not pytest, so set junit_xml to the "
                    "JUnit XML file it writes (relative to cwd)"
                )
        elif self.junit_xml is not None and (self.marker is not None or self.paths or self.env):
            raise ValueError(
                f"category {self.name!r}: junit_xml without a command reads an existing report; "
                "marker, paths and env apply only to a command that runs"
            )
        return self

    @model_validator(mode="after")
    def _paths_confined(self) -> CategoryConfig:
        for field_name in ("junit_xml", "coverage_xml"):
            value: str | None = getattr(self, field_name)
            if value is None:
                continue
            if not value.strip() or "\0" in value:
                raise ValueError(f"category {self.name!r}: {field_name} must name a file")
            if self.allow_paths_outside_cwd:
                continue
            if os.path.isabs(value):
                raise ValueError(
                    f"category {self.name!r}: {field_name} {value!r} is an absolute path; give it "
                    "relative to the category's cwd (or set allow_paths_outside_cwd: true)"
                )
            if os.path.normpath(value).split(os.sep)[0] == os.pardir:
                raise ValueError(
                    f"category {self.name!r}: {field_name} {value!r} leads out of the category's "
                    "cwd (or set allow_paths_outside_cwd: true)"
                )
        return self

    @property
    def uses_default_command(self) -> bool:
        return self.command is None and self.junit_xml is None

    @property
    def reads_existing_report(self) -> bool:
        """No command: ``junit_xml`` names a report that something else already wrote."""
        return self.command is None and self.junit_xml is not None


class SuitesConfig(BaseModel):
    """The ``suites`` section of the params file."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    categories: list[CategoryConfig] = Field(default_factory=list)
    # Rerun failing tests up to N times (default pytest command only) to tell
    # flaky from broken.
    rerun_failures: int = Field(default=0, ge=0, le=MAX_RERUNS)
    # A folder of ``<category>.junit.xml`` files from an earlier run (a previous
    # run's suites output folder works as is), relative to the params file.
    baseline_junit_dir: str | None = None
    concurrency: int = Field(
        default=1,
        ge=1,
        le=MAX_CONCURRENCY,
        description=(
            "How many categories run at the same time (1: one after the other). Only for "
            "categories that do not interfere: they share the target and run side by side. Each "
            "keeps its own timeout, output, JUnit file and verdict; results are listed in the "
            "categories' order either way, and Ctrl-C or SIGTERM stops every running one."
        ),
    )

    @model_validator(mode="after")
    def _unique_names(self) -> SuitesConfig:
        seen: set[str] = set()
        for category in self.categories:
            if category.name in seen:
                raise ValueError(f"duplicate category name {category.name!r}")
            seen.add(category.name)
        return self

    @model_validator(mode="after")
    def _concurrent_categories_write_apart(self) -> SuitesConfig:
        """Categories run at once must not write the same report file: one would take the
        other's (or a half-written) file as its own."""
        if self.concurrency == 1:
            return self
        writers: dict[str, str] = {}
        for category in self.categories:
            if category.reads_existing_report:
                continue  # runs nothing, writes nothing (our own pytest command's JUnit has a fresh name)
            for value in (category.junit_xml, category.coverage_xml):
                if value is None:
                    continue
                path = os.path.normpath(os.path.join(category.cwd, value))
                if path in writers:
                    raise ValueError(
                        f"categories {writers[path]!r} and {category.name!r} both write {value!r}: with "
                        f"concurrency {self.concurrency} they would run at once; give each its own file"
                    )
                writers[path] = category.name
        return self


def is_pytest_command(command: Sequence[str]) -> bool:
    """``pytest ...``, ``py.test ...`` or ``<python> -m pytest ...``."""
    if not command:
        return False
    program = Path(command[0]).name
    if program.startswith(("pytest", "py.test")):
        return True
    return len(command) >= 3 and command[1] == "-m" and command[2] == "pytest"


def build_command(cfg: CategoryConfig, junit_out: Path, *, select: Sequence[str] | None = None) -> list[str]:
    """The argv to run (pure). ``select``: explicit pytest node ids (reruns)."""
    # xunit1 adds file/line to each testcase: reruns need them to rebuild node ids.
    pytest_flags = ["-p", "no:cacheprovider", "-o", "junit_family=xunit1", f"--junitxml={junit_out}"]
    if cfg.reads_existing_report:
        return []
    if cfg.command is None:
        # --tb=short: pytest's long tracebacks print the failing test's arguments
        # (fixture values: tokens, passwords), and failure text becomes evidence.
        argv = [sys.executable, "-m", "pytest", "-q", "--tb=short", *pytest_flags]
        if select is not None:
            return argv + list(select)
        if cfg.marker is not None:
            argv += ["-m", cfg.marker]
        return argv + list(cfg.paths)
    argv = list(cfg.command)
    if cfg.junit_xml is None:  # validated: this is pytest
        argv += pytest_flags
    return argv


@dataclass(frozen=True)
class CategoryRun:
    """What running one category's command produced (no judgement yet)."""

    name: str
    argv: tuple[str, ...]  # with env secret values redacted
    cwd: str
    exit_code: int | None  # None: never started; negative: killed by that signal
    duration_s: float
    output_tail: tuple[str, ...]
    junit_path: Path | None  # our copy in the output folder, if the command wrote one
    coverage_path: Path | None = None
    log_path: Path | None = None
    timed_out: bool = False
    timeout_s: float = 0.0
    start_error: str | None = None
    junit_expected_at: str = ""  # where we looked for the JUnit file
    junit_problem: str | None = None  # why a JUnit file that is there was not taken
    warnings: tuple[str, ...] = ()
    attempt: int = 0  # 0: the first run; n: the n-th rerun
    ran_command: bool = True  # False: an existing report was read; no exit code to compare
