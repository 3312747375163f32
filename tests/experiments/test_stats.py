"""Golden numbers for every method: scipy/statsmodels on the same inputs, and published
worked examples (GrowthBook gbstats' own test expectations, Wikipedia's Welch example,
Kohavi's 16σ²/δ² rule)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from yunying.experiments.stats.bayesian import Prior, bayesian_test, expected_loss
from yunying.experiments.stats.correction import benjamini_hochberg, holm
from yunying.experiments.stats.cuped import CupedInput, adjust, pooled_theta
from yunying.experiments.stats.frequentist import two_proportion_z, welch_test, z_test
from yunying.experiments.stats.models import Proportion, Ratio, RegressionAdjusted, SampleMean
from yunying.experiments.stats.power import (
    mde_mean,
    power_mean,
    sample_size_mean,
    sample_size_proportion,
)
from yunying.experiments.stats.sequential import always_valid_p, sequential_test
from yunying.experiments.stats.srm import srm_check


def stat(x: np.ndarray) -> SampleMean:
    return SampleMean(len(x), float(x.sum()), float((x**2).sum()))


# -- frequentist ------------------------------------------------------------------------
def test_welch_matches_scipy_on_raw_data() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(10, 2, 400), rng.normal(10.4, 3, 350)
    r = welch_test(stat(a), stat(b), "absolute")
    ref = stats.ttest_ind(b, a, equal_var=False)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert r.df == pytest.approx(ref.df, rel=1e-9)
    lo, hi = ref.confidence_interval(0.95)
    assert (r.ci_low, r.ci_high) == pytest.approx((lo, hi), rel=1e-9)


def test_welch_wikipedia_example_1() -> None:
    # https://en.wikipedia.org/wiki/Welch%27s_t-test, Example 1: t = -2.46, p = 0.021.
    a1 = np.array([27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4])
    a2 = np.array([27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4])
    r = welch_test(stat(a2), stat(a1), "absolute")
    assert round(r.point / r.se, 2) == -2.46
    assert round(r.p_value, 3) == 0.021
    assert round(r.df) == 25


def test_gbstats_golden_relative_absolute_binomial() -> None:
    # Expectations copied from growthbook packages/stats/tests/frequentist/test_tests.py.
    a = SampleMean(3407, 1396.87, 52377.9767)
    b = SampleMean(3461, 2422.7, 134698.29)
    rel = welch_test(a, b, "relative")
    assert round(rel.point, 5) == 0.70732 and round(rel.se, 5) == 0.37879
    assert [round(rel.ci_low, 5), round(rel.ci_high, 5)] == [-0.03526, 1.44989]
    assert round(rel.p_value, 5) == 0.06191
    ab = welch_test(a, b, "absolute")
    assert [round(ab.ci_low, 5), round(ab.ci_high, 5)] == [0.04538, 0.53462]
    assert round(ab.se, 5) == 0.12478 and round(ab.p_value, 5) == 0.02016
    bi = welch_test(Proportion(28, 14), Proportion(30, 16), "relative")
    assert [round(bi.ci_low, 5), round(bi.ci_high, 5)] == [-0.47767, 0.61101]
    assert round(bi.se, 5) == 0.2717 and round(bi.p_value, 5) == 0.80707


def test_two_proportion_z_matches_statsmodels() -> None:
    r = two_proportion_z(200, 2000, 250, 2050)
    z, p = proportions_ztest([250, 200], [2050, 2000])
    assert r.z == pytest.approx(z, rel=1e-10) and r.p_value == pytest.approx(p, rel=1e-10)
    lo, hi = confint_proportions_2indep(250, 2050, 200, 2000, method="wald")
    assert (r.ci_low, r.ci_high) == pytest.approx((lo, hi), rel=1e-10)


def test_relative_delta_method_against_simulation() -> None:
    """The delta-method SE of a relative lift matches the spread of simulated lifts."""
    rng = np.random.default_rng(7)
    a = rng.exponential(5.0, size=(2000, 500))
    b = rng.exponential(5.5, size=(2000, 500))
    lifts = b.mean(1) / a.mean(1) - 1
    r = z_test(stat(a[0]), stat(b[0]), "relative")
    assert r.se == pytest.approx(lifts.std(), rel=0.1)


def test_ratio_delta_method_matches_simulation() -> None:
    rng = np.random.default_rng(3)
    ests = []
    for _ in range(400):
        d = rng.poisson(2.0, 1000) + 1
        m = d * rng.gamma(2.0, 30.0, 1000)
        ests.append(m.sum() / d.sum())
    d = rng.poisson(2.0, 1000) + 1
    m = d * rng.gamma(2.0, 30.0, 1000)
    r = Ratio(1000, m.sum(), (m**2).sum(), d.sum(), (d**2).sum(), (m * d).sum())
    assert math.sqrt(r.variance / r.n) == pytest.approx(np.std(ests), rel=0.12)


# -- sequential ---------------------------------------------------------------------------
def test_sequential_gbstats_golden() -> None:
    a = SampleMean(3000, 1396.87, 52377.9767)
    b = SampleMean(3461, 2422.7, 134698.29)
    r = sequential_test(a, b, "relative", tuning_n=1000)
    assert [round(r.ci_low, 5), round(r.ci_high, 5)] == [-0.55844, 1.56516]
    assert round(r.point, 5) == 0.50336 and round(r.se, 5) == 0.33341
    p = sequential_test(Proportion(3000, 1396), Proportion(3461, 2422), "relative")
    assert [round(p.ci_low, 5), round(p.ci_high, 5)] == [0.40098, 0.60675]
    pre_a, pre_b = SampleMean(3000, 16.87, 527.9767), SampleMean(3461, 22.7, 1348.29)
    ra = RegressionAdjusted(3000, a, pre_a, 12525, 0.5)
    rb = RegressionAdjusted(3461, b, pre_b, 3333, 0.5)
    r2 = sequential_test(ra, rb, "relative")
    assert round(r2.point, 5) == 0.50236 and round(r2.se, 5) == 0.3093
    assert [round(r2.ci_low, 5), round(r2.ci_high, 5)] == [-0.43745, 1.44217]


def test_sequential_p_value_agrees_with_its_interval() -> None:
    """p ≤ α exactly when the confidence sequence excludes 0."""
    for lift in (0.0, 0.02, 0.04, 0.06, 0.1):
        a, b = Proportion(5000, 500), Proportion(5000, int(500 * (1 + lift)))
        r = sequential_test(a, b, "absolute", alpha=0.05)
        assert (r.p_value <= 0.05) == (r.ci_low > 0 or r.ci_high < 0)
        assert r.ci_high - r.ci_low > 2 * 1.96 * r.se  # wider than the fixed-horizon CI


# -- A/A simulation ------------------------------------------------------------------------
def test_aa_false_positive_rates() -> None:
    """1,000 A/A experiments: fixed-horizon rate ≈ α; sequential ≤ α under peeking at every
    one of 100 looks, while naive peeking with the fixed test is far above α."""
    rng = np.random.default_rng(2026)
    sims, n, looks, alpha = 1000, 4000, 100, 0.05
    a = rng.binomial(1, 0.1, size=(sims, n)).astype(np.float64)
    b = rng.binomial(1, 0.1, size=(sims, n)).astype(np.float64)
    idx = np.linspace(n // looks, n, looks).astype(int) - 1
    ca, cb = np.cumsum(a, 1)[:, idx], np.cumsum(b, 1)[:, idx]
    m = (idx + 1).astype(float)
    pa, pb = ca / m, cb / m
    se = np.sqrt(np.maximum(pa * (1 - pa) + pb * (1 - pb), 1e-12) / m)
    z = (pb - pa) / se
    p_fixed_final = 2 * stats.norm.sf(np.abs(z[:, -1]))
    fixed_rate = float((p_fixed_final < alpha).mean())
    assert abs(fixed_rate - alpha) < 3 * math.sqrt(alpha * (1 - alpha) / sims)
    naive_peeking = float((2 * stats.norm.sf(np.abs(z)) < alpha).any(1).mean())
    assert naive_peeking > 2 * alpha
    p_seq = always_valid_p(z, 2 * m, alpha, tuning_n=2 * n)
    seq_rate = float((p_seq < alpha).any(1).mean())
    assert seq_rate <= alpha


# -- Bayesian ----------------------------------------------------------------------------
def test_bayesian_flat_prior_against_numerical_integration() -> None:
    a, b = Proportion(10_000, 1000), Proportion(10_000, 1060)
    r = bayesian_test(a, b, "absolute", prior=Prior())
    f = welch_test(a, b, "absolute")
    # Flat prior: the chance to win is 1 - one-sided p of the z statistic.
    assert r.chance_to_win == pytest.approx(stats.norm.cdf(f.point / f.se), rel=1e-9)
    dens = stats.norm(r.post_mean, r.post_sd)
    lo, hi = r.post_mean - 10 * r.post_sd, r.post_mean + 10 * r.post_sd
    ctw = integrate.quad(dens.pdf, 0, hi)[0]
    loss_b = integrate.quad(lambda d: max(0.0, -d) * dens.pdf(d), lo, hi, points=[0.0])[0]
    loss_a = integrate.quad(lambda d: max(0.0, d) * dens.pdf(d), lo, hi, points=[0.0])[0]
    assert r.chance_to_win == pytest.approx(ctw, rel=1e-7)
    assert r.risk_variant == pytest.approx(loss_b, rel=1e-6, abs=1e-12)
    assert r.risk_control == pytest.approx(loss_a, rel=1e-6)
    assert (r.ci_low, r.ci_high) == pytest.approx(dens.ppf([0.025, 0.975]), rel=1e-9)


def test_bayesian_informative_prior_shrinks() -> None:
    a, b = Proportion(500, 50), Proportion(500, 65)
    flat = bayesian_test(a, b, "relative")
    tight = bayesian_test(a, b, "relative", prior=Prior(0.0, 0.05, proper=True))
    assert 0 < tight.post_mean < flat.post_mean and tight.post_sd < flat.post_sd
    # Conjugate normal update, by hand.
    v = flat.post_sd**2
    exp_mean = (flat.post_mean / v) / (1 / v + 1 / 0.05**2)
    assert tight.post_mean == pytest.approx(exp_mean, rel=1e-12)
    assert expected_loss(0.0, 1.0)[0] == pytest.approx(stats.norm.pdf(0), rel=1e-12)


# -- CUPED ---------------------------------------------------------------------------------
def test_cuped_equals_ancova_coefficient() -> None:
    import statsmodels.api as sm

    rng = np.random.default_rng(11)
    n = 3000
    x = rng.gamma(2.0, 10.0, 2 * n)
    treat = np.repeat([0, 1], n)
    y = 5 + 0.8 * x + 1.5 * treat + rng.normal(0, 6, 2 * n)
    groups = [
        CupedInput(n, y[g].sum(), (y[g] ** 2).sum(), x[g].sum(), (x[g] ** 2).sum(), (x[g] * y[g]).sum())
        for g in (treat == 0, treat == 1)
    ]
    ra, rb = adjust(groups)
    r = welch_test(ra, rb, "absolute")
    ols = sm.OLS(y, sm.add_constant(np.column_stack([treat, x]))).fit()
    assert r.point == pytest.approx(ols.params[1], rel=1e-9)
    assert r.se == pytest.approx(ols.bse[1], rel=0.02)
    raw = welch_test(stat(y[treat == 0]), stat(y[treat == 1]), "absolute")
    rho2 = np.corrcoef(x, y)[0, 1] ** 2
    assert r.se**2 / raw.se**2 == pytest.approx(1 - rho2, rel=0.05)
    assert pooled_theta(groups) == pytest.approx(0.8, rel=0.05)


# -- SRM, corrections, power ---------------------------------------------------------------
def test_srm_flags_planted_49_51_split() -> None:
    r = srm_check([49_000, 51_000], [0.5, 0.5])
    ref = stats.chisquare([49_000, 51_000])
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9) and r.mismatch
    ok = srm_check([50_050, 49_950], [0.5, 0.5])
    assert not ok.mismatch
    three = srm_check([3300, 3350, 3350], [1, 1, 1])
    assert three.p_value == pytest.approx(stats.chisquare([3300, 3350, 3350]).pvalue)


def test_corrections_match_statsmodels() -> None:
    p = [0.001, 0.01, 0.02, 0.03, 0.04, 0.2, 0.5, 0.011, 0.049]
    assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]), rel=1e-12)
    assert benjamini_hochberg(p) == pytest.approx(
        list(multipletests(p, method="fdr_bh")[1]), rel=1e-12
    )


def test_power_and_sample_size() -> None:
    sd, delta = 12.0, 1.5
    n = sample_size_mean(sd, delta).per_variant
    ref = NormalIndPower().solve_power(effect_size=delta / sd, alpha=0.05, power=0.8)
    assert n == math.ceil(ref) or n == math.ceil(ref) + 1
    # Kohavi et al., "Trustworthy Online Controlled Experiments": n ≈ 16σ²/δ² per variant.
    assert n == pytest.approx(16 * sd**2 / delta**2, rel=0.03)
    assert power_mean(sd, delta, n) == pytest.approx(0.8, abs=0.002)
    assert mde_mean(sd, n) == pytest.approx(delta, rel=0.01)
    # 10% baseline, +1pp: the classic ~14,750 per arm (pooled-variance formula).
    pn = sample_size_proportion(0.10, 0.01).per_variant
    assert 14_700 <= pn <= 14_800
