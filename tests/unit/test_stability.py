"""PSI and the chi-square test of :mod:`mammotriage.stability` against worked values and
scipy (a dev dependency only: the monitor itself runs without it)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from mammotriage.stability import chi2_sf, chi_square, psi


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 8, 9, 10, 17])
@pytest.mark.parametrize("statistic", [0.0, 0.3, 1.0, 4.5, 9.0, 16.92, 40.0, 120.0])
def test_chi2_survival_function_matches_scipy(statistic: float, dof: int) -> None:
    assert chi2_sf(statistic, dof) == pytest.approx(
        stats.chi2.sf(statistic, dof), rel=1e-9, abs=1e-15
    )


def test_chi2_known_critical_value() -> None:
    # 16.919 is the 5 % critical value of chi-square on 9 degrees of freedom (tables).
    assert chi2_sf(16.919, 9) == pytest.approx(0.05, abs=1e-4)


def test_chi_square_matches_scipy_and_skips_categories_without_a_reference_share() -> None:
    counts = np.array([12, 8, 5, 5, 10, 10, 10, 10, 15, 15])
    statistic, dof, p = chi_square(counts, np.full(10, 0.1))
    expected = stats.chisquare(counts)
    assert (statistic, p) == pytest.approx((expected.statistic, expected.pvalue))
    assert dof == 9
    _, dof, _ = chi_square(counts[:4], np.array([0.5, 0.5, 0.0, 0.0]))
    assert dof == 1


def test_chi_square_of_nothing_is_undefined() -> None:
    statistic, _, p = chi_square(np.zeros(10), np.full(10, 0.1))
    assert math.isnan(statistic) and math.isnan(p)


def test_psi_by_hand() -> None:
    # (0.2 - 0.1) ln 2 + (0.0 - 0.1) ln(1e-4 / 0.1), the empty share floored at 1e-4.
    shares = np.array([0.2, 0.0] + [0.1] * 8)
    expected = 0.1 * math.log(2) + (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    assert float(psi(shares, 0.1)) == pytest.approx(expected)
    assert float(psi(np.full(10, 0.1), 0.1)) == 0.0


@pytest.mark.parametrize("bad", [(-1.0, 3), (math.inf, 3), (1.0, 0)])
def test_chi2_sf_refuses_what_is_not_a_statistic(bad: tuple[float, int]) -> None:
    with pytest.raises(ValueError):
        chi2_sf(*bad)
