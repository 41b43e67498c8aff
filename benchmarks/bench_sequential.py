"""Power and samples-to-decision of the sequential performance rule, beside today's fixed-n rule.

Run: ``python benchmarks/bench_sequential.py [--trials 200] [--budget 2000] [--markdown]``

Simulated A/B latencies (the latency models of ``tests/test_sequential.py``: lognormal with
sigma 0.1, 0.5, 1.0, and a noisy machine (sigma 0.1 and 0.5): per-round AR(1) drift hitting both sides, 3% of
samples slowed 3-20x), baseline median 10 ms, tolerance 10%, 95%. For each model and true ratio
(1.00: no difference; 1.25: a 25% slowdown) and each rule, the share of trials that end in each
verdict and the mean samples per side used:
  * ``sequential paired``: ``stats.sequential`` as shipped (rounds of 10 per side, budget per side);
  * ``sequential unpaired``: the same sequence on each side's median (``paired=False``);
  * ``fixed n=N``: ``stats.performance.compare_samples`` (today's rule: bootstrap CI of the ratio of
    medians) on N samples per side, one look.
Target: no cell declares the wrong verdict in more than 5% of trials. Prints one JSON line (see
_meta.envelope); ``--markdown`` also prints the table for BENCHMARKS.md on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import REPO, envelope  # also puts this checkout on sys.path

sys.path.insert(0, str(REPO / "tests"))
# One latency model for the tests' promises and for this table.
from test_sequential import NOISY, TIGHT, VERY_WIDE, WIDE, LatencyModel, Machine

from stability_lib.stats.performance import PerfVerdict, compare_samples
from stability_lib.stats.sequential import run
from stability_lib.stats.sequential.performance import PerfSequentialConfig, start_performance

BENCHMARK = "sequential.verdicts"  # stable key of the results file
QUICK_ARGS = ("--trials", "20", "--budget", "400")  # smallest run, for run_all.py --quick
NOISY_TIGHT = LatencyModel("noisy machine, sigma=0.1", 0.1, noisy=True)
MODELS: tuple[LatencyModel, ...] = (TIGHT, NOISY_TIGHT, WIDE, NOISY, VERY_WIDE)
RATIOS = (1.0, 1.25)
FIXED_N = (60, 200)  # 60: the demo's samples_per_side today
PER_ROUND = 10
WRONG_LIMIT = 0.05


def _correct(ratio: float) -> PerfVerdict:
    return PerfVerdict.NO_REGRESSION if ratio < 1.10 else PerfVerdict.REGRESSION


def _wrong(ratio: float) -> PerfVerdict:
    return PerfVerdict.REGRESSION if ratio < 1.10 else PerfVerdict.NO_REGRESSION


def _cell(
    model: LatencyModel, ratio: float, rule: str, outcomes: list[tuple[PerfVerdict, int]], seconds: float
) -> dict[str, Any]:
    trials = len(outcomes)
    verdicts = Counter(v for v, _ in outcomes)
    decided = [n for v, n in outcomes if v is not PerfVerdict.INCONCLUSIVE]
    return {
        "model": model.name,
        "ratio": ratio,
        "rule": rule,
        "trials": trials,
        "correct": verdicts[_correct(ratio)] / trials,
        "wrong": verdicts[_wrong(ratio)] / trials,
        "inconclusive": verdicts[PerfVerdict.INCONCLUSIVE] / trials,
        "mean_samples_per_side": round(float(np.mean([n for _, n in outcomes])), 1),
        "mean_samples_when_decided": round(float(np.mean(decided)), 1) if decided else None,
        "seconds": round(seconds, 2),
    }


def simulate(model: LatencyModel, ratio: float, trials: int, budget: int, seed: int) -> list[dict[str, Any]]:
    """Every rule sees the same trials: the same rounds, cut at its own sample size."""
    rng = np.random.default_rng(seed)
    rounds_needed = max(budget, max(FIXED_N)) // PER_ROUND
    outcomes: dict[str, list[tuple[PerfVerdict, int]]] = {}
    timing: Counter = Counter()
    for _ in range(trials):
        machine = Machine(model, ratio, rng, PER_ROUND)
        rounds = [machine.next_round() for _ in range(rounds_needed)]
        for rule, paired in (("sequential paired", True), ("sequential unpaired", False)):
            start = time.perf_counter()
            config = PerfSequentialConfig(max_samples_per_side=budget, paired=paired)
            result = run(start_performance(config), lambda i: rounds[i] if i < len(rounds) else None).result
            timing[rule] += time.perf_counter() - start
            outcomes.setdefault(rule, []).append((result.verdict, result.looks[-1].n_candidate))
        for n in FIXED_N:
            rule = f"fixed n={n}"
            base = np.concatenate([r.baseline for r in rounds[: n // PER_ROUND]])
            cand = np.concatenate([r.candidate for r in rounds[: n // PER_ROUND]])
            start = time.perf_counter()
            verdict = compare_samples(base, cand, tolerance=0.10, seed=0).verdict
            timing[rule] += time.perf_counter() - start
            outcomes.setdefault(rule, []).append((verdict, n))
    return [_cell(model, ratio, rule, pairs, timing[rule]) for rule, pairs in outcomes.items()]


def markdown(cells: list[dict[str, Any]], budget: int, trials: int) -> str:
    lines = [
        "| Latencies | True ratio | Rule | Right verdict | Wrong verdict | Inconclusive | Mean samples/side (when decided) |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        rule = c["rule"] + (f" (budget {budget})" if c["rule"].startswith("sequential") else "")
        decided = c["mean_samples_when_decided"]
        lines.append(
            f"| {c['model']} | {c['ratio']:.2f} | {rule} | {c['correct']:.0%} | {c['wrong']:.1%} | "
            f"{c['inconclusive']:.0%} | {c['mean_samples_per_side']:.0f} ({'-' if decided is None else f'{decided:.0f}'}) |"
        )
    lines.append(f"\n{trials} seeded trials per row; tolerance 10%, 95%, rounds of {PER_ROUND} per side.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--budget", type=int, default=2000, help="max samples per side of the sequential rule")
    parser.add_argument("--markdown", action="store_true", help="also print the table for BENCHMARKS.md on stderr")
    args = parser.parse_args()

    started = time.perf_counter()
    cells: list[dict[str, Any]] = []
    for m_index, model in enumerate(MODELS):
        for r_index, ratio in enumerate(RATIOS):
            cells.extend(simulate(model, ratio, args.trials, args.budget, seed=1000 + 10 * m_index + r_index))
    worst = max(cells, key=lambda c: c["wrong"])
    target_met = worst["wrong"] <= WRONG_LIMIT
    seq = [c for c in cells if c["rule"] == "sequential paired"]
    summary = (
        f"worst wrong-verdict rate {worst['wrong']:.1%} ({worst['rule']}, {worst['model']}, ratio {worst['ratio']}); "
        f"sequential paired: right verdict in "
        + ", ".join(f"{c['correct']:.0%}" for c in seq)
        + f" of trials ({args.trials} per cell, budget {args.budget}/side)"
    )
    results = {
        "summary": summary,
        "target": f"wrong verdict in at most {WRONG_LIMIT:.0%} of trials in every cell",
        "target_met": target_met,
        "params": {
            "trials": args.trials,
            "budget_per_side": args.budget,
            "per_round": PER_ROUND,
            "fixed_n": list(FIXED_N),
            "tolerance": 0.10,
            "confidence": 0.95,
        },
        "wall_s": round(time.perf_counter() - started, 1),
        "cells": cells,
    }
    if args.markdown:
        print(markdown(cells, args.budget, args.trials), file=sys.stderr)
    print(json.dumps(envelope(BENCHMARK, results)))


if __name__ == "__main__":
    main()
