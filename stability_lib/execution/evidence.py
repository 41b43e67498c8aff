"""Evidence files: one JSON document per section, written atomically.

A reader never sees half a file: we write to a temporary file in the same
folder, fsync it, then ``os.replace`` it over the target.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from ..core.errors import EvidenceError
from ..core.models import EVIDENCE_SCHEMA_VERSION, SectionResult

__all__ = [
    "write_json_atomic",
    "write_text_atomic",
    "write_evidence",
    "read_evidence",
    "read_all_evidence",
    "evidence_path",
    "encodable",
]


def _default(obj: Any) -> Any:
    if hasattr(obj, "serialize"):
        return obj.serialize()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "value"):  # enums
        return obj.value
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):  # numpy arrays
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _encodable_text(text: str) -> str:
    if text.isascii():  # nearly every string of an evidence file: no copy made to find out
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in a JSON body): U+FFFD, as a decoder would
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def encodable(obj: Any) -> Any:
    """Every string of a JSON-like object (keys included) writable as UTF-8: a lone surrogate, which a
    service puts in a JSON string as ``\ud800``, becomes U+FFFD. Left as it is, it broke every later
    writer (notebook display, HTML, the report) and the run ended with exit 3 and an empty report."""
    if isinstance(obj, str):
        return _encodable_text(obj)
    if isinstance(obj, dict):
        return {encodable(k): encodable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(encodable(v) for v in obj)
    return obj


def _clean(obj: Any) -> Any:
    # JSON has no NaN/Infinity; write null so every reader can parse the file. Strings: ``encodable``.
    if isinstance(obj, str):
        return _encodable_text(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {_encodable_text(str(k)): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_json_atomic(path: str | Path, document: Any) -> Path:
    text = json.dumps(_clean(json.loads(json.dumps(document, default=_default))), indent=1, allow_nan=False)
    return write_text_atomic(path, text)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """A reader never sees half a file: a temporary file beside it, fsync'd, then renamed over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def evidence_path(run_dir: str | Path, section: str) -> Path:
    return Path(run_dir) / "evidence" / f"{section}.json"


def write_evidence(run_dir: str | Path, result: SectionResult) -> Path:
    return write_json_atomic(evidence_path(run_dir, result.section), result.serialize())


def read_evidence(path: str | Path) -> SectionResult:
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise EvidenceError(f"no evidence file {path}") from exc
    except (OSError, ValueError) as exc:
        raise EvidenceError(f"unreadable evidence file {path}: {exc}") from exc
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != EVIDENCE_SCHEMA_VERSION:
        raise EvidenceError(f"{path}: schema_version {version!r}, expected {EVIDENCE_SCHEMA_VERSION}")
    try:
        return SectionResult.parse(encodable(raw))  # "\ud800" in a file of another writer
    except (KeyError, ValueError, TypeError) as exc:
        raise EvidenceError(f"{path}: malformed evidence: {exc}") from exc


def read_all_evidence(run_dir: str | Path, sections: list[str] | None = None) -> dict[str, SectionResult]:
    folder = Path(run_dir) / "evidence"
    names = sections if sections is not None else sorted(p.stem for p in folder.glob("*.json"))
    return {name: read_evidence(folder / f"{name}.json") for name in names if (folder / f"{name}.json").exists()}
