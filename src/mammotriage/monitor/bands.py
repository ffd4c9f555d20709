"""The policy's reading bands: consecutive categories that get the same reading.

The packaged policy gives 1-5 (single reading), 6-9 (double reading) and 10 (double
reading, read first). Reader and outcome figures are given per band, since a band is what a
programme decides on.
"""

from __future__ import annotations

from dataclasses import dataclass

from mammotriage.category import CATEGORIES
from mammotriage.triage import TriagePolicy


@dataclass(frozen=True)
class Band:
    first: int
    last: int
    reading: str

    @property
    def label(self) -> str:
        span = str(self.first) if self.first == self.last else f"{self.first}-{self.last}"
        return f"{span} ({self.reading})"


def _reading(policy: TriagePolicy, category: int) -> str:
    rule_out = policy.rule_out
    if rule_out.enabled and rule_out.max_category is not None and category <= rule_out.max_category:
        return "rule-out"
    mode = "single reading" if category <= policy.single_reading_max_category else "double reading"
    if category >= policy.priority_min_category:
        return f"{mode}, read first"
    return mode


def policy_bands(policy: TriagePolicy) -> tuple[Band, ...]:
    """The bands of ``policy``, lowest categories first."""
    bands: list[Band] = []
    for category in CATEGORIES:
        reading = _reading(policy, category)
        if bands and bands[-1].reading == reading:
            bands[-1] = Band(bands[-1].first, category, reading)
        else:
            bands.append(Band(category, category, reading))
    return tuple(bands)


__all__ = ["Band", "policy_bands"]
