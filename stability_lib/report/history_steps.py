"""Step detection for the trends page (pure: numbers in, steps out): :func:`detect_steps` finds the
statistically real steps in one check's per-run figures, with the :class:`Step` it returns, the
constants of the rule and ``STEP_RULE_TEXT``, the rule in words for the page. ``report.history``
builds the trends from it.

Which change is real (``STEP_RULE_TEXT``)
    The series is a check's decisive figure (``figure_value``: the median ratio of a performance
    check, the failure rate of a soak, a count), one value per run, oldest first; runs without the
    check or without a figure are left out of that series. The step is found and tested as in
    Pettitt's change-point test (the rank form of asv's step detection): for each split point the
    Mann-Whitney statistic of the values before against the values after; the split with the largest
    one is the candidate step. It is real when (1) a permutation test gives p < ``ALPHA``: the same
    maximum over every split point, on ``PERMUTATIONS`` seeded shuffles of the series, is at least as
    large in fewer than 1% of them (no distribution is assumed, ties count half); and (2) the median
    after the step differs from the median before by at least ``MIN_RELATIVE_CHANGE`` of it (any
    change from 0). Each side of a real step is searched again (binary segmentation), up to
    ``MAX_STEPS`` per check. A step needs runs on both sides: with 12 runs, 3 runs after a change
    cannot reach p < 0.01 however large the change, and a single odd run is never a step.
    Each check is tested at 1%: over 25 checks of pure noise, about one history in four shows a
    false step somewhere; the run-by-run figures are printed beside it to judge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ALPHA",
    "PERMUTATIONS",
    "MIN_RELATIVE_CHANGE",
    "MAX_STEPS",
    "MIN_SERIES",
    "SEED",
    "STEP_RULE_TEXT",
    "Step",
    "detect_steps",
]

ALPHA = 0.01
PERMUTATIONS = 1999
MIN_RELATIVE_CHANGE = 0.05
MAX_STEPS = 3
MIN_SERIES = 4  # fewer runs with a figure: no test at all
SEED = 20261201

STEP_RULE_TEXT = (
    "A change in a check's figure is marked when it is statistically real: Pettitt's rank change-point "
    f"test over the per-run figures, p < {ALPHA:g} by {PERMUTATIONS} seeded permutations, and the median "
    f"after the step at least {MIN_RELATIVE_CHANGE:.0%} away from the median before. The run where the "
    "new level starts is named. Each check is tested on its own at 1%; a step needs runs on both sides "
    "(with 12 runs, 3 runs after a change cannot reach 1%), and a single odd run is never a step."
)


@dataclass(frozen=True)
class Step:
    """A real change in a series: the new level starts at ``position`` (0-based, in the series)."""

    position: int
    before: float  # median of the segment before
    after: float  # median of the segment after
    p_value: float


def _pettitt(ranks: Any) -> tuple[Any, Any]:
    """max_k |U_k| and its argmax for each row of ``ranks`` (shape (m, n)); U_k = 2 W_k - k (n + 1),
    W_k the rank sum of the first k values: Pettitt's statistic, Mann-Whitney's U centred."""
    import numpy as np

    n = ranks.shape[1]
    k = np.arange(1, n)
    u = np.abs(2.0 * np.cumsum(ranks, axis=1)[:, :-1] - k * (n + 1))
    return u.max(axis=1), u.argmax(axis=1) + 1


def _midranks(x: Any) -> Any:
    """Ranks 1..n, tied values sharing their mean rank (scipy's rankdata 'average', without scipy)."""
    import numpy as np

    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


def _one_step(values: Sequence[float], rng: Any) -> Step | None:
    import numpy as np

    n = len(values)
    if n < MIN_SERIES:
        return None
    ranks = _midranks(np.asarray(values, dtype=float))  # ties count half
    observed, split = _pettitt(ranks[None, :])
    if observed[0] == 0:
        return None
    shuffled = np.argsort(rng.random((PERMUTATIONS, n)), axis=1)
    null, _ = _pettitt(ranks[shuffled])
    p = (1 + int((null >= observed[0] - 1e-9).sum())) / (PERMUTATIONS + 1)
    position = int(split[0])
    before, after = float(np.median(values[:position])), float(np.median(values[position:]))
    big_enough = abs(after - before) >= MIN_RELATIVE_CHANGE * abs(before) if before else after != before
    if p >= ALPHA or not big_enough:
        return None
    return Step(position=position, before=before, after=after, p_value=p)


def detect_steps(values: Sequence[float], *, seed: int = SEED) -> list[Step]:
    """The real steps of a series, by position (see the module docstring). Deterministic: seeded."""
    import numpy as np

    rng = np.random.default_rng(seed)
    found: list[Step] = []
    segments = [(0, len(values))]
    while segments and len(found) < MAX_STEPS:
        start, stop = segments.pop(0)
        step = _one_step(list(values[start:stop]), rng)
        if step is None:
            continue
        found.append(Step(start + step.position, step.before, step.after, step.p_value))
        segments += [(start, start + step.position), (start + step.position, stop)]
    return sorted(found, key=lambda s: s.position)
