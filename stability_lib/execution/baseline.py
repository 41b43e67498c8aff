"""Stored baselines: a run's evidence, raw samples included, with a fingerprint of where it ran.

A baseline measured on another machine, another Python or against another
scenario still compares, but only with a warning in the report:
``fingerprint_differences`` says what differs.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from ..core.errors import EvidenceError
from ..core.models import SectionResult
from .evidence import read_all_evidence, write_json_atomic
from .secrets import display_url

__all__ = [
    "fingerprint",
    "fingerprint_differences",
    "save_baseline",
    "load_baseline",
    "StoredBaseline",
    "FINGERPRINT_FILE",
    "stored_samples",
]

FINGERPRINT_FILE = "fingerprint.json"
_VERSIONED = ("stability-proof", "httpx", "websockets", "numpy", "scipy", "uvicorn")
# Differences in these keys change what a latency means; others are informative.
_ENVIRONMENT_KEYS = ("host", "cpu_model", "cpu_count", "python", "packages", "scenario_hash", "target_host")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def scenario_hash(raw_params: dict[str, Any]) -> str:
    """Hash of what the performance samples measure (the scenario and how it is sampled), not of
    targets, titles, switched sections, or which baseline this run is compared with."""
    perf = dict(((raw_params.get("sections") or {}).get("performance")) or {})
    for key in ("stored_baseline", "enabled"):
        perf.pop(key, None)
    relevant = {"scenario": raw_params.get("scenario"), "performance": perf}
    canonical = json.dumps(relevant, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def fingerprint(raw_params: dict[str, Any], target_url: str, commit: str | None) -> dict[str, Any]:
    packages = {}
    for name in _VERSIONED:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "host": platform.node(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": packages,
        "target_url": display_url(target_url),  # no userinfo or query values: they may be credentials
        # The host, not the URL: a loopback service gets a new port every run.
        "target_host": urlsplit(target_url).hostname or "",
        "scenario_hash": scenario_hash(raw_params),
        "commit": commit,
    }


def fingerprint_differences(baseline: dict[str, Any], current: dict[str, Any]) -> list[str]:
    out = []
    for key in _ENVIRONMENT_KEYS:
        if baseline.get(key) != current.get(key):
            if key == "packages":
                changed = sorted(
                    n
                    for n in set(baseline.get(key) or {}) | set(current.get(key) or {})
                    if (baseline.get(key) or {}).get(n) != (current.get(key) or {}).get(n)
                )
                out.append(f"package versions differ: {', '.join(changed)}")
            else:
                out.append(f"{key}: baseline {baseline.get(key)!r}, now {current.get(key)!r}")
    return out


@dataclass(frozen=True)
class StoredBaseline:
    name: str
    path: Path
    fingerprint: dict[str, Any]
    evidence: dict[str, SectionResult]


def save_baseline(run_dir: str | Path, name: str, *, store: str | Path = "baselines") -> Path:
    run_dir, store = Path(run_dir), Path(store)
    if not (run_dir / "evidence").is_dir():
        raise EvidenceError(f"{run_dir} holds no evidence folder: not a run directory")
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise EvidenceError(f"baseline name {name!r}: use letters, digits, '-', '_' and '.' only")
    store.mkdir(parents=True, exist_ok=True)
    target = store / name
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=store))
    try:
        shutil.copytree(run_dir / "evidence", staging / "evidence")
        for extra in ("run.json", "params.yaml", FINGERPRINT_FILE, "summary.json"):
            if (run_dir / extra).exists():
                shutil.copy2(run_dir / extra, staging / extra)
        if not (staging / FINGERPRINT_FILE).exists():
            raw = yaml.safe_load((run_dir / "params.yaml").read_text(encoding="utf-8")) or {}
            write_json_atomic(staging / FINGERPRINT_FILE, fingerprint(raw, "", None))
        if target.exists():
            shutil.rmtree(target)  # a reader may briefly find no baseline, never half of one
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def load_baseline(ref: str | Path, *, store: str | Path = "baselines") -> StoredBaseline:
    """``ref`` is a baseline name in ``store`` or the path of a run directory."""
    candidates = [Path(store) / str(ref), Path(ref)]
    for path in candidates:
        if (path / "evidence").is_dir():
            fp_file = path / FINGERPRINT_FILE
            fp = json.loads(fp_file.read_text(encoding="utf-8")) if fp_file.exists() else {}
            return StoredBaseline(str(ref), path.resolve(), fp, read_all_evidence(path))
    raise EvidenceError(f"baseline {ref!r} not found (looked in {', '.join(str(c) for c in candidates)})")


def stored_samples(ref: str, run_dir: Path, invocation_dir: Path) -> tuple[dict[str, list[float]], str, list[str]]:
    """Candidate samples of a stored baseline run, where it came from, and how its environment differs."""
    import json

    ref_path = Path(ref) if Path(ref).is_absolute() else invocation_dir / ref
    stored = load_baseline(ref_path if ref_path.exists() else ref, store=invocation_dir / "baselines")
    perf = stored.evidence.get("performance")
    if perf is None or "samples" not in perf.data:
        raise EvidenceError(f"baseline {ref!r} holds no performance samples")
    current_fp_file = run_dir / FINGERPRINT_FILE
    current = json.loads(current_fp_file.read_text(encoding="utf-8")) if current_fp_file.exists() else {}
    return (
        perf.data["samples"]["candidate"],
        f"stored baseline {ref} ({stored.path})",
        fingerprint_differences(stored.fingerprint, current),
    )
