"""Synthetic history: copies of a stored run whose decisive figures vary by seeded noise, and in
which one check slows down from a chosen run on (tests/test_history.py, benchmarks/bench_history.py)."""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

PASS_RUN = Path(__file__).parent / "fixtures" / "runs" / "pass"


def make_history_runs(
    root: Path,
    source: Path = PASS_RUN,
    *,
    n: int = 12,
    slow_from: int | None = 8,
    factor: float = 1.3,
    slowed: str = "performance.step:agent_session",
    drop: Mapping[str, Sequence[int]] | None = None,
    whole: bool = False,
    seed: int = 7,
) -> list[Path]:
    """``n`` run directories r001..r<n> under ``root``, an hour apart, oldest first. Every ratio
    figure is 1.0 with 2% seeded noise (interval ±5%, limit 1.1); ``slowed`` is ``factor`` times slower from
    run ``slow_from`` on (FAIL once its interval clears the limit). ``drop`` removes a claim from
    the given runs (1-based). ``whole`` copies the evidence too (a full-size history)."""
    rng = random.Random(seed)
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    made = []
    for i in range(1, n + 1):
        run_id = f"r{i:03d}"
        run_dir = root / run_id
        if whole:
            shutil.copytree(source, run_dir)
        else:
            run_dir.mkdir(parents=True)
            shutil.copy(source / "fingerprint.json", run_dir / "fingerprint.json")
        summary = json.loads((source / "summary.json").read_text(encoding="utf-8"))
        meta = json.loads((source / "run.json").read_text(encoding="utf-8"))
        when = (start + dt.timedelta(hours=i)).isoformat()
        summary["run_id"] = meta["run_id"] = run_id
        summary["started_at"] = meta["started_at"] = when
        dropped = {claim_id for claim_id, runs in (drop or {}).items() if i in runs}
        summary["claims"] = [c for c in summary["claims"] if c["id"] not in dropped]
        for claim in summary["claims"]:
            fig = claim.get("figure")
            if not fig or fig.get("kind") != "ratio":
                continue
            value = 1.0 + rng.gauss(0, 0.02)
            if claim["id"] == slowed and slow_from is not None and i >= slow_from:
                value *= factor
            # The demo's 10% limit (the stored run was made with a wider one).
            fig.update(value=value, low=value * 0.95, high=value * 1.05, tolerance=0.1)
            claim["statement"] = claim["statement"].replace("100% slower", "10% slower")
            limit = 1.1
            claim["status"] = "FAIL" if fig["low"] > limit else "PASS"
        failed = any(c["status"] == "FAIL" and c.get("required", True) for c in summary["claims"])
        summary["verdict"], summary["exit_code"] = ("FAIL", 1) if failed else ("PASS", 0)
        (run_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
        (run_dir / "run.json").write_text(json.dumps(meta), encoding="utf-8")
        made.append(run_dir)
    return made
