"""The screening decisions a site's readers choose from: each a code and label with its
outcome (no recall, recall for assessment, technical recall) and the reasons one may give,
each a code and label (``decision_categories`` in the service's settings).

Screening decides whether the woman is called back, and why; it does not assess BI-RADS
(6, biopsy-proven malignancy, is never a screening decision). The form offers exactly the
configured categories and reasons, and the API refuses any other (422).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mammotriage.worklist.decisions import CODE_LENGTH, ScreeningOutcome

_CODE = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", min_length=1, max_length=CODE_LENGTH)
_LABEL = Field(min_length=1, max_length=120)


class DecisionReason(BaseModel):
    """One reason a reader may give, e.g. ``mass`` "Mass"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = _CODE
    label: str = _LABEL


class DecisionCategory(BaseModel):
    """One decision a reader may choose: ``outcome`` is what it means for the woman."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = _CODE
    label: str = _LABEL
    outcome: ScreeningOutcome
    reasons: tuple[DecisionReason, ...] = Field(default=(), max_length=30)
    #: Whether a reason must be given (only for a category that has reasons).
    reason_required: bool = False

    @model_validator(mode="after")
    def _check(self) -> DecisionCategory:
        codes = [r.code for r in self.reasons]
        if len(set(codes)) != len(codes):
            raise ValueError(f"decision category {self.code!r}: reason codes repeat")
        if self.reason_required and not self.reasons:
            raise ValueError(f"decision category {self.code!r}: reason_required without reasons")
        return self

    def reason_label(self, code: str) -> str:
        return next((r.label for r in self.reasons if r.code == code), code)


_RECALL_REASONS = (
    DecisionReason(code="mass", label="Mass"),
    DecisionReason(code="calcifications", label="Calcifications"),
    DecisionReason(code="architectural-distortion", label="Architectural distortion"),
    DecisionReason(code="asymmetry", label="Asymmetry"),
    DecisionReason(code="other", label="Other (see note)"),
)

#: The default: a screening programme's recall / no recall with the usual reasons.
DEFAULT_DECISION_CATEGORIES: tuple[DecisionCategory, ...] = (
    DecisionCategory(
        code="no-recall", label="Normal / benign: no recall", outcome=ScreeningOutcome.NO_RECALL
    ),
    DecisionCategory(
        code="recall",
        label="Recall for assessment",
        outcome=ScreeningOutcome.RECALL,
        reasons=_RECALL_REASONS,
        reason_required=True,
    ),
    DecisionCategory(
        code="technical-recall",
        label="Technical recall: repeat images",
        outcome=ScreeningOutcome.TECHNICAL_RECALL,
        reasons=(
            DecisionReason(code="positioning", label="Positioning"),
            DecisionReason(code="motion", label="Motion blur"),
            DecisionReason(code="exposure", label="Exposure / compression"),
        ),
    ),
)


def check_categories(categories: Sequence[DecisionCategory]) -> tuple[DecisionCategory, ...]:
    """``categories`` if usable: at least one, codes unique, some no-recall and some recall
    category (a reader must be able to say either). Raises ValueError naming the fault."""
    codes = [c.code for c in categories]
    if len(set(codes)) != len(codes):
        raise ValueError(f"decision_categories: codes repeat ({', '.join(codes)})")
    outcomes = {c.outcome.recall for c in categories}
    if outcomes != {True, False}:
        raise ValueError("decision_categories needs at least one no-recall and one recall category")
    return tuple(categories)


@dataclass(frozen=True)
class Choice:
    """A decision resolved against the site's categories."""

    recall: bool
    outcome: ScreeningOutcome | None
    category: str | None
    reasons: tuple[str, ...]


def resolve(
    categories: Sequence[DecisionCategory],
    *,
    category: str | None,
    reasons: Sequence[str],
    recall: bool | None,
) -> Choice:
    """The decision a reader sent, checked against ``categories``.

    ``category`` names one of them (with reasons only from its own); without it, ``recall``
    alone (the API's plain form) is kept as it is, without a category.

    Raises
    ------
    RequestValidationError
        (422, shaped as any invalid body) an unknown category or reason, a missing
        required reason, ``recall`` that contradicts the category, or neither given.
    """
    if category is None:
        if recall is None:
            _refuse("choose a decision category (or, in the API, recall true/false)")
        if reasons:
            _refuse("reasons need a decision category")
        return Choice(bool(recall), None, None, ())
    chosen = next((c for c in categories if c.code == category), None)
    if chosen is None:
        offered = ", ".join(c.code for c in categories)
        _refuse(f"unknown decision category {category!r} (this site offers: {offered})")
    allowed = {r.code for r in chosen.reasons}
    unknown = [r for r in reasons if r not in allowed]
    if unknown:
        offered = ", ".join(sorted(allowed)) or "none"
        _refuse(f"{category}: unknown reason {unknown[0]!r} (offered: {offered})")
    if chosen.reason_required and not reasons:
        _refuse(f"{category}: give at least one reason")
    if recall is not None and recall != chosen.outcome.recall:
        _refuse(f"recall={recall} contradicts decision category {category!r}")
    return Choice(chosen.outcome.recall, chosen.outcome, chosen.code, tuple(dict.fromkeys(reasons)))


def _refuse(detail: str) -> NoReturn:
    raise RequestValidationError(
        [{"loc": ("body", "category"), "msg": detail, "type": "value_error"}]
    )


__all__ = [
    "DEFAULT_DECISION_CATEGORIES",
    "Choice",
    "DecisionCategory",
    "DecisionReason",
    "check_categories",
    "resolve",
]
