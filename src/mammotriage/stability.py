"""Whether a category distribution still matches its reference: the population stability
index and Pearson's chi-square goodness-of-fit test.

Shared by the go-live evaluation (a device against the site) and the monitoring after
go-live (a device's week against the model's calibration reference). numpy and the standard
library only: the monitor runs in the base install, without scipy.
"""

from __future__ import annotations

import math

import numpy as np

#: Shares below this are raised to it before the PSI's logarithm (an empty category would
#: otherwise make it infinite).
PSI_FLOOR = 1e-4


def psi(shares: np.ndarray, reference: np.ndarray | float) -> np.ndarray:
    """Population stability index over the last axis: sum of (p - q) ln(p / q), shares
    floored at :data:`PSI_FLOOR`. Below 0.1 is usually read as stable, 0.1-0.2 as a
    moderate shift, above 0.2 as a shift worth acting on."""
    p = np.maximum(np.asarray(shares, dtype=np.float64), PSI_FLOOR)
    q = np.maximum(np.broadcast_to(np.asarray(reference, dtype=np.float64), p.shape), PSI_FLOOR)
    return np.asarray(((p - q) * np.log(p / q)).sum(axis=-1))


def chi2_sf(statistic: float, dof: int) -> float:
    """P(X >= ``statistic``) for X chi-square distributed with ``dof`` degrees of freedom.

    Closed forms for integer degrees of freedom (Abramowitz and Stegun 26.4.4-26.4.5): a
    finite Poisson sum for even ``dof``, the normal tail plus a finite sum for odd.

    Raises
    ------
    ValueError
        If ``dof`` < 1 or ``statistic`` is negative or not finite.
    """
    if dof < 1:
        raise ValueError(f"dof must be >= 1, got {dof!r}")
    if not math.isfinite(statistic) or statistic < 0:
        raise ValueError(f"statistic must be finite and >= 0, got {statistic!r}")
    half = statistic / 2
    if dof % 2 == 0:
        term = total = math.exp(-half)
        for i in range(1, dof // 2):
            term *= half / i
            total += term
        return min(1.0, total)
    root = math.sqrt(statistic)
    total = math.erfc(root / math.sqrt(2))
    term = math.sqrt(2 / math.pi) * math.exp(-half) * root if dof > 1 else 0.0
    for i in range(1, (dof - 1) // 2 + 1):
        if i > 1:
            term *= statistic / (2 * i - 1)
        total += term
    return min(1.0, total)


def chi_square(counts: np.ndarray, reference: np.ndarray) -> tuple[float, int, float]:
    """Pearson's goodness-of-fit test of observed ``counts`` against ``reference`` shares:
    (statistic, degrees of freedom, p-value). Categories the reference gives no share are
    left out (they cannot be tested); ``nan`` p-value when no count or fewer than two
    categories remain.
    """
    observed = np.asarray(counts, dtype=np.float64)
    shares = np.asarray(reference, dtype=np.float64)
    keep = shares > 0
    n = observed.sum()
    dof = int(keep.sum()) - 1
    if n <= 0 or dof < 1:
        return math.nan, max(dof, 0), math.nan
    expected = n * shares[keep] / shares[keep].sum()
    statistic = float(((observed[keep] - expected) ** 2 / expected).sum())
    return statistic, dof, chi2_sf(statistic, dof)


__all__ = ["PSI_FLOOR", "chi2_sf", "chi_square", "psi"]
