"""The calibrated triage category: the one home of the 1-10 scale and its thresholds.

An exam score (0-100) becomes a category 1-10 through nine ascending cut points, placed so
that each category holds about a tenth of a reference screening population. The sidecar
stores the cut points, inference applies them, triage, the SR report and the worklist read
the category. Pure Python (no numpy, no pydicom) so that every package, ``dicom`` included,
may import it.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise

#: The lowest and the highest category.
LOWEST = 1
HIGHEST = 10
#: Every category, lowest first.
CATEGORIES: range = range(LOWEST, HIGHEST + 1)
#: Cut points between consecutive categories: nine for ten categories.
THRESHOLD_COUNT = len(CATEGORIES) - 1


def is_category(value: object) -> bool:
    """Whether ``value`` is an integer category 1-10 (a ``bool`` is not)."""
    return not isinstance(value, bool) and isinstance(value, int) and value in CATEGORIES


def check_thresholds(thresholds: Iterable[float]) -> tuple[float, ...]:
    """The cut points as floats, checked: nine of them, non-decreasing (ties allowed).

    Raises
    ------
    ValueError
        ``"thresholds must be 9 ascending cut points, got [...]"``.
    """
    cuts = tuple(float(t) for t in thresholds)
    if len(cuts) != THRESHOLD_COUNT or any(b < a for a, b in pairwise(cuts)):
        raise ValueError(
            f"thresholds must be {THRESHOLD_COUNT} ascending cut points, got {list(cuts)}"
        )
    return cuts
