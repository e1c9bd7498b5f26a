"""The statistics of the review: intervals, uplift, CUPED, sample sizes and the sample-ratio check.

Methods (docs/data-team.md states them too):
- a rate's interval is Wilson's score interval;
- the uplift of a cure rate (a difference of two proportions) has Newcombe's
  hybrid score interval (his method 10, built from the two Wilson intervals),
  which keeps its 95% coverage with small arms and rates near 0;
- a recovery rate is a ratio of sums (recovered over due): each account's share
  recovered is in [0, 1], so its variance is at most p(1 - p), and its interval is
  Wilson's at the effective sample size of the amounts due (Kish's (Σd)² / Σd²);
  the uplift of two is Newcombe's hybrid built from those. Like the cure rate's,
  it stays valid at the boundary (a holdout that recovered nothing has an interval
  of some width, not 0.0% to 0.0%), and it is never narrower than the cure rate's
  would be with as many accounts;
- CUPED (Deng et al., 2013) removes from each account's outcome the part its
  pre-assignment payments predict, with one θ pooled over both arms: same
  expectation, variance smaller by the factor 1 - ρ² (ρ: the correlation of
  outcome and covariate). Its interval is the raw uplift's interval, centred on the
  adjusted uplift, each side narrowed by √(1 - ρ²): never narrower than the raw one
  without that measured reason. With no pre-period variance (no account paid
  before assignment, or all alike), CUPED does not apply, and the review says so;
- the sample needed per arm is the two-sided z-test's at α = 0.05 and power 0.8;
- the sample-ratio check is Pearson's chi-square of the arm sizes against the
  configured shares; p below 0.001 flags the experiment (as GrowthBook does);
- an **always-valid** interval (a confidence sequence) stays valid however often
  it is read: Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas's asymptotic
  confidence sequence (2024, "Time-uniform central limit theory and asymptotic
  confidence sequences", Annals of Statistics), the Gaussian-mixture boundary
  around the mean of each unit's inverse-propensity-weighted contribution
  (``ipw_cure``, ``ipw_recovery``): mean ± σ̂ √(2(tρ² + 1)/(t²ρ²) · log(√(tρ² + 1)/α)),
  with ρ² tuned to be narrowest at ``t_opt`` units (their exact optimum, through
  Lambert's W₋₁). Its p-value is 1 over the same mixture martingale under no
  difference, so it is as valid at any look as the interval;
- with several comparisons in a stage, p-values are corrected by Holm's step-down
  (family-wise error) or Benjamini and Hochberg's step-up (false discovery rate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

Z95 = 1.959963984540054
Z_POWER80 = 0.8416212335729143
SRM_P_VALUE = 0.001


def wilson(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of a proportion (nan, nan for an empty arm)."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Effect:
    """A difference between an arm and its baseline, with its 95% interval."""

    baseline: float
    variant: float
    uplift: float
    ci_low: float
    ci_high: float
    n_variant: int
    n_baseline: int

    @property
    def significant(self) -> bool:
        return not math.isnan(self.ci_low) and (self.ci_low > 0 or self.ci_high < 0)


def proportion_uplift(x1: float, n1: int, x0: float, n0: int) -> Effect:
    """Newcombe's hybrid score interval of p1 - p0."""
    if n1 <= 0 or n0 <= 0:
        return Effect(math.nan, math.nan, math.nan, math.nan, math.nan, int(n1), int(n0))
    p1, p0 = x1 / n1, x0 / n0
    l1, u1 = wilson(x1, n1)
    l0, u0 = wilson(x0, n0)
    d = p1 - p0
    low = d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    return Effect(p0, p1, d, low, high, int(n1), int(n0))


def ratio_of_sums(numerator: np.ndarray, denominator: np.ndarray) -> tuple[float, float]:
    """sum(numerator) / sum(denominator), and the effective sample size of the denominators (Kish's
    (Σd)² / Σd²); (nan, nan) with fewer than two units or nothing in the denominator."""
    n = len(numerator)
    if n < 2 or denominator.sum() <= 0:
        return (math.nan, math.nan)
    ratio = float(numerator.sum() / denominator.sum())
    effective = float(denominator.sum() ** 2 / np.square(denominator).sum())
    return min(max(ratio, 0.0), 1.0), effective


def ratio_interval(numerator: np.ndarray, denominator: np.ndarray) -> tuple[float, float, float]:
    """A recovery rate and its 95% interval: Wilson's score interval at the effective sample size (each unit's
    share recovered lies in [0, 1], so its variance is at most p(1 - p)); nan with fewer than two units."""
    ratio, effective = ratio_of_sums(numerator, denominator)
    if math.isnan(effective):
        return (math.nan, math.nan, math.nan)
    low, high = wilson(ratio * effective, effective)
    return ratio, low, high


def ratio_uplift(r1: np.ndarray, d1: np.ndarray, r0: np.ndarray, d0: np.ndarray) -> Effect:
    """The difference of two ratios of sums (recovered over due), with Newcombe's hybrid interval built from the
    two score intervals (``ratio_interval``)."""
    (p1, l1, u1), (p0, l0, u0) = ratio_interval(r1, d1), ratio_interval(r0, d0)
    if math.isnan(p1) or math.isnan(p0):
        return Effect(math.nan, math.nan, math.nan, math.nan, math.nan, len(r1), len(r0))
    d = p1 - p0
    low = d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    return Effect(p0, p1, d, low, high, len(r1), len(r0))


@dataclass(frozen=True)
class Adjusted:
    """A CUPED-adjusted uplift, or why there is none (``note``)."""

    effect: Effect | None
    note: str


def cuped_uplift(y1: np.ndarray, x1: np.ndarray, y0: np.ndarray, x0: np.ndarray, raw: Effect) -> Adjusted:
    """The uplift of the mean of y after removing what the covariate x (pre-assignment) predicts, with the raw
    uplift's interval narrowed by the variance CUPED removes (√(1 - ρ²)). No variance in x: CUPED does not
    apply."""
    y = np.concatenate([y1, y0]).astype(float)
    x = np.concatenate([x1, x0]).astype(float)
    if len(x) < 3 or float(np.var(x, ddof=1)) == 0:
        return Adjusted(None, "does not apply: no payments before assignment to adjust by")
    if math.isnan(raw.ci_low):
        return Adjusted(None, "does not apply: the raw uplift has no interval")
    theta = float(np.cov(y, x, ddof=1)[0, 1] / np.var(x, ddof=1))
    rho = float(np.corrcoef(y, x)[0, 1]) if float(np.var(y, ddof=1)) > 0 else 0.0
    narrowing = math.sqrt(max(0.0, 1.0 - rho * rho))
    mean_x = float(np.mean(x))
    adjusted = float(np.mean(y1 - theta * (x1 - mean_x)) - np.mean(y0 - theta * (x0 - mean_x)))
    low = adjusted - (raw.uplift - raw.ci_low) * narrowing
    high = adjusted + (raw.ci_high - raw.uplift) * narrowing
    return Adjusted(Effect(raw.baseline, raw.variant, adjusted, low, high, raw.n_variant, raw.n_baseline),
                    f"ρ = {rho:.2f}: the interval is {(1 - narrowing) * 100:.0f}% narrower than the raw one")


def needed_per_arm(p0: float, effect: float) -> int | None:
    """Accounts each arm needs to detect ``effect`` (an absolute change of the rate p0) at α 0.05, power 0.8."""
    p1 = min(max(p0 + effect, 0.0), 1.0)
    if effect <= 0 or math.isnan(p0) or p1 == p0:
        return None
    variance = p0 * (1 - p0) + p1 * (1 - p1)
    if variance == 0:
        return None
    return math.ceil((Z95 + Z_POWER80) ** 2 * variance / (p1 - p0) ** 2)


@dataclass(frozen=True)
class SampleRatio:
    observed: dict[str, int]
    expected_share: dict[str, float]
    chi_square: float
    p_value: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < SRM_P_VALUE


def sample_ratio(observed: dict[str, int], shares: dict[str, float]) -> SampleRatio:
    """Pearson's chi-square of the arm sizes against the configured shares (arms with no share are ignored)."""
    names = [n for n in shares if shares[n] > 0]
    counts = np.array([observed.get(n, 0) for n in names], dtype=float)
    total = counts.sum()
    if total == 0 or len(names) < 2:
        return SampleRatio(dict(observed), dict(shares), 0.0, 1.0)
    expected = np.array([shares[n] for n in names]) / sum(shares[n] for n in names) * total
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    return SampleRatio({n: int(c) for n, c in zip(names, counts)}, {n: shares[n] for n in names}, chi2,
                       float(stats.chi2.sf(chi2, len(names) - 1)))


def best_rho2(t_opt: float, alpha: float = 0.05) -> float:
    """The ρ² that makes the mixture margin narrowest at ``t_opt`` units (Waudby-Smith et al.'s exact optimum):
    (−W₋₁(−α² e^(α² − 1)) − 1) / t_opt."""
    if t_opt <= 0 or not 0 < alpha < 1:
        raise ValueError("t_opt is positive and alpha in (0, 1)")
    w = float(np.real(special.lambertw(-alpha * alpha * math.exp(alpha * alpha - 1), k=-1)))
    return (-w - 1) / t_opt


def mixture_margin(t: float, rho2: float, alpha: float = 0.05) -> float:
    """The half-width, in standard deviations of one unit, of the two-sided (1 − α) asymptotic confidence sequence
    after ``t`` units: √(2(tρ² + 1)/(t²ρ²) · log(√(tρ² + 1)/α))."""
    return math.sqrt(2 * (t * rho2 + 1) / (t * t * rho2) * math.log(math.sqrt(t * rho2 + 1) / alpha))


@dataclass(frozen=True)
class AlwaysValid:
    """A difference with its always-valid interval and p-value, and its fixed-horizon z-test p-value."""

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float  # always valid: 1 / the mixture martingale under no difference
    fixed_p_value: float  # the usual two-sided z-test's, for one look


NOT_COMPUTABLE = AlwaysValid(math.nan, math.nan, math.nan, math.nan, math.nan)


def always_valid_difference(estimate: float, variance: float, n: int, t_opt: float,
                            alpha: float = 0.05) -> AlwaysValid:
    """The asymptotic confidence sequence of a difference estimated from ``n`` units with ``variance`` (of the
    estimate), at this look: one unit's standard deviation is √(n × variance)."""
    if n < 2 or math.isnan(estimate) or math.isnan(variance):
        return NOT_COMPUTABLE
    if variance <= 0:
        return AlwaysValid(estimate, estimate, estimate, 0.0 if estimate else 1.0, 0.0 if estimate else 1.0)
    sd = math.sqrt(n * variance)
    rho2 = best_rho2(t_opt, alpha)
    half = sd * mixture_margin(n, rho2, alpha)
    # The mixture martingale at no difference: (tρ² + 1)^(-1/2) exp(ρ² S² / (2σ²(tρ² + 1))), S = t × estimate.
    log_m = -0.5 * math.log(n * rho2 + 1) + rho2 * (n * estimate) ** 2 / (2 * sd * sd * (n * rho2 + 1))
    return AlwaysValid(estimate, estimate - half, estimate + half, min(1.0, math.exp(-log_m)),
                       float(2 * stats.norm.sf(abs(estimate) / math.sqrt(variance))))


def difference_of_means(y1: np.ndarray, y0: np.ndarray) -> tuple[float, float]:
    """mean(y1) − mean(y0) and its variance (each arm's sample variance over its size: Neyman's)."""
    y1, y0 = np.asarray(y1, float), np.asarray(y0, float)
    if len(y1) < 2 or len(y0) < 2:
        return math.nan, math.nan
    return float(y1.mean() - y0.mean()), float(y1.var(ddof=1) / len(y1) + y0.var(ddof=1) / len(y0))


def difference_of_ratios(r1: np.ndarray, d1: np.ndarray, r0: np.ndarray, d0: np.ndarray) -> tuple[float, float]:
    """Σr1/Σd1 − Σr0/Σd0 (recovered over due) and its variance by the delta method: each arm's
    n/(n − 1) × Σ(r − R d)² / (Σd)²."""
    out = []
    for r, d in ((np.asarray(r1, float), np.asarray(d1, float)), (np.asarray(r0, float), np.asarray(d0, float))):
        if len(r) < 2 or d.sum() <= 0:
            return math.nan, math.nan
        ratio = r.sum() / d.sum()
        out.append((float(ratio), float(len(r) / (len(r) - 1) * np.square(r - ratio * d).sum() / d.sum() ** 2)))
    return out[0][0] - out[1][0], out[0][1] + out[1][1]


def corrected(p_values: list[float], method: str) -> list[float]:
    """p-values adjusted for the comparisons made together: ``holm`` (step-down, family-wise error), ``bh``
    (Benjamini-Hochberg step-up, false discovery rate) or ``none``; nan stays nan and is not counted."""
    known = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    out = [math.nan] * len(p_values)
    m = len(known)
    if method == "none":
        return list(p_values)
    order = sorted(known)
    if method == "holm":
        running = 0.0
        for rank, (p, i) in enumerate(order):
            running = max(running, min(1.0, (m - rank) * p))
            out[i] = running
    elif method == "bh":
        running = 1.0
        for rank in range(m - 1, -1, -1):
            p, i = order[rank]
            running = min(running, min(1.0, p * m / (rank + 1)))
            out[i] = running
    else:
        raise ValueError(f"unknown correction {method!r}; holm, bh or none")
    return out


def daily_look_false_positives(experiments: int = 200, days: int = 30, per_arm_per_day: int = 100,
                               rate: float = 0.10, t_opt: float = 2000, alpha: float = 0.05,
                               seed: int = 20261205) -> tuple[float, float]:
    """How often reading a review every day declares a difference where there is none: ``experiments`` A/A
    experiments (both arms cure at ``rate``), each looked at after every one of ``days`` days, counted as a false
    positive if any look's interval excludes 0. Returns (fixed-horizon rate, always-valid rate)."""
    rng = np.random.default_rng(seed)
    fixed = valid = 0
    for _ in range(experiments):
        cured = rng.binomial(per_arm_per_day, rate, size=(2, days)).cumsum(axis=1)
        fixed_hit = valid_hit = False
        for day in range(days):
            n = per_arm_per_day * (day + 1)
            p1, p0 = cured[0, day] / n, cured[1, day] / n
            variance = (p1 * (1 - p1) + p0 * (1 - p0)) / (n - 1)
            result = always_valid_difference(p1 - p0, variance, 2 * n, t_opt, alpha)
            fixed_hit |= result.fixed_p_value < alpha
            valid_hit |= result.ci_low > 0 or result.ci_high < 0
        fixed += fixed_hit
        valid += valid_hit
    return float(fixed / experiments), float(valid / experiments)
