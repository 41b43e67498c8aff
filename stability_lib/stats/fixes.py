""" "The fix works": one-sided Fisher exact test and the candidate's upper bound (FIX_RULE_TEXT)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.models import Figure
from ._validate import (
    _check_confidence,
    _check_k_n,
    _check_probability,
    _json_float,
    _p_text,
    _pct,
    _scipy_stats,
    _Verdict,
)
from .rates import RateEstimate, rate_estimate, sessions_needed

__all__ = [
    "FIX_RULE_TEXT",
    "FixStatus",
    "FixVerdict",
    "compare_failure_rates",
]


FIX_RULE_TEXT = (
    "Fix verdict rule. A fix is declared to work (FIXED) only when both hold: the candidate's "
    "failure rate is lower than the baseline's by a one-sided Fisher exact test at the 5% level "
    "(one minus the confidence), and the candidate's exact one-sided upper bound on its failure "
    "rate is at or below the tolerated rate. It is NOT FIXED when the candidate's rate is "
    "significantly higher than the baseline's (the same test in the other direction), or when "
    "even the lower end of the candidate's exact two-sided interval is above the tolerated rate. "
    "Anything else is INCONCLUSIVE. Fisher's test is used rather than Boschloo's: it conditions "
    "on the total number of failures, which makes it conservative (it can only understate the "
    "evidence for a fix), deterministic and fast for any sample size; Boschloo's test is more "
    "powerful but needs a numerical search over a nuisance parameter."
)


class FixStatus(_Verdict):
    """Does the candidate fix a failure the baseline showed?"""

    FIXED = "FIXED"
    NOT_FIXED = "NOT_FIXED"
    INCONCLUSIVE = "INCONCLUSIVE"


@dataclass(frozen=True)
class FixVerdict:
    """Baseline vs candidate failure counts and whether the fix is shown to work.

    ``p_candidate_lower``: one-sided Fisher exact p-value for "the candidate fails
    less often than the baseline"; ``p_candidate_higher``: the other direction.
    """

    status: FixStatus
    baseline: RateEstimate
    candidate: RateEstimate
    tolerated_rate: float
    confidence: float
    p_candidate_lower: float
    p_candidate_higher: float
    reason: str

    def describe(self) -> str:
        return (
            f"{self.status.label}: baseline {self.baseline.k} of {self.baseline.n} "
            f"({_pct(self.baseline.rate) if self.baseline.n else 'no data'}), candidate "
            f"{self.candidate.describe()}; Fisher exact one-sided "
            f"{_p_text(self.p_candidate_lower)} that the candidate fails less often; "
            f"tolerated {_pct(self.tolerated_rate)}; {self.reason}"
        )

    def figure(self, what: str = "1011/1006 closes") -> Figure:
        """Candidate rate against the baseline's count (for "the fix works")."""
        c = self.candidate
        return Figure(
            kind="rate",
            value=_json_float(c.rate),
            low=c.ci_low,
            high=c.upper,
            confidence=self.confidence,
            k=c.k,
            n=c.n,
            baseline_k=self.baseline.k,
            baseline_n=self.baseline.n,
            test="Fisher exact one-sided",
            tolerance=self.tolerated_rate,
            what=what,
        )

    def serialize(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "baseline": self.baseline.serialize(),
            "candidate": self.candidate.serialize(),
            "tolerated_rate": self.tolerated_rate,
            "confidence": self.confidence,
            "p_candidate_lower": self.p_candidate_lower,
            "p_candidate_higher": self.p_candidate_higher,
            "reason": self.reason,
        }


def compare_failure_rates(
    k_base: int,
    n_base: int,
    k_cand: int,
    n_cand: int,
    tolerated_rate: float,
    confidence: float = 0.95,
) -> FixVerdict:
    """Did the candidate fix the failure the baseline showed? See ``FIX_RULE_TEXT``."""
    k_base, n_base = _check_k_n(k_base, n_base)
    k_cand, n_cand = _check_k_n(k_cand, n_cand)
    tolerated = _check_probability("tolerated_rate", tolerated_rate, open_low=False, open_high=False)
    confidence = _check_confidence(confidence)
    alpha = 1.0 - confidence
    base = rate_estimate(k_base, n_base, confidence)
    cand = rate_estimate(k_cand, n_cand, confidence)
    if n_base == 0 or n_cand == 0:
        side = "baseline" if n_base == 0 else "candidate"
        return FixVerdict(
            FixStatus.INCONCLUSIVE,
            base,
            cand,
            tolerated,
            confidence,
            1.0,
            1.0,
            f"no sessions on the {side} side",
        )
    table = np.array([[k_base, n_base - k_base], [k_cand, n_cand - k_cand]])
    # "greater": the baseline's odds of failing exceed the candidate's.
    p_lower = float(_scipy_stats().fisher_exact(table, alternative="greater").pvalue)
    p_higher = float(_scipy_stats().fisher_exact(table, alternative="less").pvalue)
    lower_shown = p_lower < alpha
    within_tolerance = cand.upper <= tolerated
    if p_higher < alpha:
        status = FixStatus.NOT_FIXED
        reason = "the candidate fails significantly more often than the baseline"
    elif cand.ci_low > tolerated:
        status = FixStatus.NOT_FIXED
        reason = "the candidate's failure rate is clearly above the tolerated rate"
    elif lower_shown and within_tolerance:
        status = FixStatus.FIXED
        reason = "the candidate fails significantly less often and its upper bound is within tolerance"
    else:
        status = FixStatus.INCONCLUSIVE
        missing = []
        if not lower_shown:
            missing.append(
                "the baseline never failed, so no improvement can be shown"
                if k_base == 0
                else "the drop in failures is not significant"
            )
        if not within_tolerance:
            missing.append(
                f"the candidate's upper bound {_pct(cand.upper)} exceeds the tolerated rate"
                + (
                    f" ({sessions_needed(tolerated, confidence)} failure-free sessions would bound it)"
                    if k_cand == 0 and tolerated > 0
                    else ""
                )
            )
        reason = "; ".join(missing)
    return FixVerdict(status, base, cand, tolerated, confidence, p_lower, p_higher, reason)
