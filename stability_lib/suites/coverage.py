"""Cobertura XML coverage reader (pure), parsed safely.

Cobertura is what coverage.py (``coverage xml``, pytest-cov ``--cov-report=xml``),
JaCoCo converters, istanbul/nyc (``cobertura`` reporter) and gcovr write. As
with JUnit, the ``line`` elements are the truth: the root's ``lines-covered``/
``lines-valid`` are used only when the file has no line elements, and a
disagreement becomes a warning.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import defusedxml

from ..core.errors import EvidenceError
from .junit import stream_elements

__all__ = [
    "CoverageParseError",
    "FileCoverage",
    "CoverageReport",
    "parse_cobertura",
    "MAX_COVERAGE_BYTES",
]

MAX_COVERAGE_BYTES = 64 * 1024 * 1024
MAX_FILES_KEPT = 2000
_CONDITION = re.compile(r"\((\d+)\s*/\s*(\d+)\)")


class CoverageParseError(EvidenceError):
    """A coverage XML file is malformed, too large, or uses forbidden XML features."""


@dataclass(frozen=True)
class FileCoverage:
    filename: str
    lines_covered: int
    lines_valid: int

    @property
    def line_rate(self) -> float | None:
        return self.lines_covered / self.lines_valid if self.lines_valid else None


@dataclass(frozen=True)
class CoverageReport:
    """Line (and, where recorded, branch) coverage of one Cobertura file."""

    line_rate: float | None  # None: no measurable lines at all
    branch_rate: float | None  # None: branch coverage not recorded
    lines_covered: int
    lines_valid: int
    branches_covered: int | None = None
    branches_valid: int | None = None
    files: tuple[FileCoverage, ...] = ()
    warnings: tuple[str, ...] = ()
    source: str = ""

    @property
    def statistic(self) -> str:
        if self.line_rate is None:
            return "no measurable lines"
        text = f"{self.line_rate:.1%} of lines ({self.lines_covered}/{self.lines_valid})"
        if self.branch_rate is not None and self.branches_valid:
            text += f", {self.branch_rate:.1%} of branches ({self.branches_covered}/{self.branches_valid})"
        return text

    def to_dict(self) -> dict[str, object]:
        return {
            "line_rate": self.line_rate,
            "branch_rate": self.branch_rate,
            "lines_covered": self.lines_covered,
            "lines_valid": self.lines_valid,
            "branches_covered": self.branches_covered,
            "branches_valid": self.branches_valid,
            "files": len(self.files),
            "warnings": list(self.warnings),
            "statistic": self.statistic,
        }


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _int_attr(elem: ET.Element, name: str) -> int | None:
    raw = elem.get(name)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _rate_attr(elem: ET.Element, name: str) -> float | None:
    raw = elem.get(name)
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    if value is None or not math.isfinite(value) or not 0.0 <= value <= 1.0:
        return None
    return value


def _read_lines(
    data: bytes,
    where: str,
    hits_by_line: dict[tuple[str, int], int],
    branches: dict[tuple[str, int], tuple[int, int]],
) -> ET.Element:
    """Stream the document into the two maps; the root element (attributes only) is returned."""
    filenames: list[str] = []  # of the enclosing class elements
    root: ET.Element | None = None
    events = stream_elements(data, what="coverage XML", where=where, error=CoverageParseError)
    for event, elem, tag, _ in events:
        if event == "start":
            if root is None:
                if tag != "coverage":
                    raise CoverageParseError(
                        f"coverage XML{where} has root element <{tag}>, expected Cobertura <coverage>"
                    )
                root = elem
            if tag == "class":
                filenames.append(elem.get("filename") or elem.get("name") or "")
            continue
        if tag == "class":
            filenames.pop()
        elif tag == "line" and filenames:
            _count_line(elem, filenames[-1], hits_by_line, branches)
    assert root is not None  # iterparse raises on an empty document
    return root


def _count_line(
    line: ET.Element,
    filename: str,
    hits_by_line: dict[tuple[str, int], int],
    branches: dict[tuple[str, int], tuple[int, int]],
) -> None:
    number = _int_attr(line, "number")
    hits = _int_attr(line, "hits")
    if number is None or hits is None:
        return
    key = (filename, number)
    hits_by_line[key] = max(hits_by_line.get(key, 0), hits)
    if (line.get("branch") or "").lower() == "true":
        match = _CONDITION.search(line.get("condition-coverage") or "")
        if match:
            branches[key] = (int(match.group(1)), int(match.group(2)))


def parse_cobertura(data: bytes, *, source: str = "") -> CoverageReport:
    """Read one Cobertura XML document. Raises ``CoverageParseError`` if unreadable."""
    where = f" in {source}" if source else ""
    if len(data) > MAX_COVERAGE_BYTES:
        raise CoverageParseError(f"coverage XML{where} is {len(data)} bytes, above the {MAX_COVERAGE_BYTES}-byte limit")
    warnings: list[str] = []
    # (filename, line number) -> hits; the same file may appear in several classes.
    hits_by_line: dict[tuple[str, int], int] = {}
    branches: dict[tuple[str, int], tuple[int, int]] = {}
    try:
        root = _read_lines(data, where, hits_by_line, branches)
    except defusedxml.DefusedXmlException as exc:
        raise CoverageParseError(
            f"coverage XML{where} uses a forbidden XML feature (DTD/entity/external reference): {exc}"
        ) from None
    except ET.ParseError as exc:
        line, column = exc.position
        raise CoverageParseError(
            f"malformed coverage XML{where} at line {line}, column {column}: {str(exc).split(':', 1)[0]}"
        ) from None

    attr_covered = _int_attr(root, "lines-covered")
    attr_valid = _int_attr(root, "lines-valid")
    if hits_by_line:
        lines_valid = len(hits_by_line)
        lines_covered = sum(1 for h in hits_by_line.values() if h > 0)
        if (
            attr_valid is not None
            and attr_covered is not None
            and (attr_valid != lines_valid or attr_covered != lines_covered)
        ):
            warnings.append(
                f"root attributes say {attr_covered}/{attr_valid} lines covered but the line "
                f"elements say {lines_covered}/{lines_valid}; the line elements are used"
            )
        line_rate: float | None = lines_covered / lines_valid
    elif attr_valid is not None and attr_covered is not None:
        if attr_covered < 0 or attr_valid < 0 or attr_covered > attr_valid:
            # A rate above 100% (or below 0%) is no measurement; refuse it rather than report it.
            raise CoverageParseError(
                f"coverage XML{where} says lines-covered={attr_covered} of lines-valid={attr_valid}: impossible counts"
            )
        lines_valid, lines_covered = attr_valid, attr_covered
        line_rate = lines_covered / lines_valid if lines_valid else None
    else:
        lines_valid = lines_covered = 0
        line_rate = _rate_attr(root, "line-rate")
        if line_rate is not None:
            warnings.append("only the root line-rate is recorded (no line elements, no counts)")

    branches_covered: int | None
    branches_valid: int | None
    if branches:
        branches_covered = sum(c for c, _ in branches.values())
        branches_valid = sum(v for _, v in branches.values())
    else:
        branches_covered = _int_attr(root, "branches-covered")
        branches_valid = _int_attr(root, "branches-valid")
    if branches_valid:
        branch_rate: float | None = (branches_covered or 0) / branches_valid
    else:
        branch_rate = None

    per_file: dict[str, list[int]] = {}
    for (filename, _), hits in hits_by_line.items():
        counts = per_file.setdefault(filename, [0, 0])
        counts[1] += 1
        counts[0] += 1 if hits > 0 else 0
    files = tuple(
        FileCoverage(filename=name[:512], lines_covered=c, lines_valid=v)
        for name, (c, v) in sorted(per_file.items())[:MAX_FILES_KEPT]
    )
    return CoverageReport(
        line_rate=line_rate,
        branch_rate=branch_rate,
        lines_covered=lines_covered,
        lines_valid=lines_valid,
        branches_covered=branches_covered,
        branches_valid=branches_valid,
        files=files,
        warnings=tuple(warnings),
        source=source,
    )
