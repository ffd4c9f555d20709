"""The triage policy: which exams get one reader, which get two, which are read first.

The default policy is the one the Capital Region of Denmark put into screening (Radiology
2024): the AI's calibrated category 1-10 splits a reference screening population into ten
bands of about 10 % each; categories 1-5 get single reading, 6-10 keep double reading and
category 10 is also read first. Published result: reading workload -33 %, cancer detection
0.70 % -> 0.82 %, false positives 2.39 % -> 1.63 %.

Two optional rules sit on top of the category cut-off. The *safety net* sends an exam to
double reading whatever its category when one finding scores above a threshold, so that a
single very suspicious region is never left to one reader because the exam-level score was
diluted by three normal views. *Rule-out* (off by default; not part of the Danish policy)
takes the lowest categories away from human readers altogether.

Every decision records the rule that produced it and the policy version, so that an audit can
say why an exam was read the way it was, under which policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mammotriage.category import HIGHEST, LOWEST, is_category
from mammotriage.errors import ConfigError
from mammotriage.timeutil import require_aware


class ReadingMode(str, Enum):
    """How many radiologists read an exam."""

    SINGLE = "single"
    DOUBLE = "double"
    #: No human reader: the exam is reported normal on the AI's word alone.
    RULE_OUT = "rule-out"

    @property
    def reads(self) -> int:
        """Human reads the mode costs: the unit of reading workload."""
        return _READS[self]


_READS = {ReadingMode.SINGLE: 1, ReadingMode.DOUBLE: 2, ReadingMode.RULE_OUT: 0}


class ConsensusMode(str, Enum):
    """Who decides a double-read exam whose two readers disagreed on recall.

    Danish double reading records the consensus decision with both readers' names (the two
    first readers agree it together), or with an arbitrator's where the programme uses one;
    a consensus closed by one of the disagreeing readers alone is allowed only as an option.
    """

    #: Either first reader records the consensus decision alone; no one else may.
    EITHER_READER = "either-reader"
    #: Both first readers record it: the exam is read when both have, and they agree.
    BOTH_READERS = "both-readers"
    #: An arbitrator, a radiologist who was neither first reader, records it alone.
    THIRD_READER = "third-reader"

    @property
    def reads(self) -> int:
        """Human reads one consensus costs (on top of the double reading's two)."""
        return 2 if self is ConsensusMode.BOTH_READERS else 1


#: What a Danish double-reading programme does; the default of :class:`TriagePolicy`.
DEFAULT_CONSENSUS = ConsensusMode.BOTH_READERS


class TriageRule(str, Enum):
    """Coded form of the rule that decided an exam's reading mode (for audit and counts)."""

    CATEGORY_SINGLE = "category-single"
    CATEGORY_DOUBLE = "category-double"
    SAFETY_NET = "safety-net"
    RULE_OUT = "rule-out"
    #: Rule-out applied by score and category, but the exam lacks views: one reader instead.
    PARTIAL_NOT_RULED_OUT = "partial-not-ruled-out"
    #: No image of the exam could be scored: read as without AI.
    NOT_SCORED = "not-scored"


class _PolicyModel(BaseModel):
    """Strict, frozen, no unknown keys: a typo in a policy file is an error, not a default.

    Construction raises :class:`ConfigError` naming the field by its path in the policy file
    (pydantic runs this ``__init__`` for nested blocks too, so each block knows its path).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    _section: ClassVar[str] = ""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(f"{_PREFIX}{_describe(exc, type(self))}") from exc


class RuleOutPolicy(_PolicyModel):
    """Exams with no human reader. Off by default: the Danish policy keeps a reader on every exam.

    An exam is ruled out when its category is at most ``max_category`` *and* its score is at
    most ``max_score``; a limit left ``None`` is not checked, and at least one must be set.
    """

    _section: ClassVar[str] = "rule_out"

    enabled: bool = False
    max_category: int | None = Field(default=1, ge=LOWEST, le=HIGHEST)
    max_score: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)

    @model_validator(mode="after")
    def _has_a_limit(self) -> RuleOutPolicy:
        if self.enabled and self.max_category is None and self.max_score is None:
            raise ValueError(
                "rule_out.enabled is true but rule_out.max_category and rule_out.max_score "
                "are both null: set at least one"
            )
        return self


class SafetyNetPolicy(_PolicyModel):
    """Double reading for any exam with one finding scored above ``finding_score_threshold``."""

    _section: ClassVar[str] = "safety_net"

    enabled: bool = True
    finding_score_threshold: float = Field(default=90, ge=0, le=100, allow_inf_nan=False)


class TriagePolicy(_PolicyModel):
    """A whole triage policy, as read from YAML (the packaged one: ``defaults/triage.yaml``).

    ``single_reading_max_category`` 0 means double reading of every exam (the programme
    before AI); 10 means single reading of every exam. ``consensus`` says who decides a
    double reading whose readers disagreed (:class:`ConsensusMode`; default both readers).
    """

    version: str = Field(min_length=1)
    single_reading_max_category: int = Field(default=5, ge=LOWEST - 1, le=HIGHEST)
    priority_min_category: int = Field(default=HIGHEST, ge=LOWEST, le=HIGHEST)
    rule_out: RuleOutPolicy = Field(default_factory=RuleOutPolicy)
    safety_net: SafetyNetPolicy = Field(default_factory=SafetyNetPolicy)
    max_wait_days: float = Field(default=5, gt=0, allow_inf_nan=False)
    #: Who decides after a disagreement; the YAML spells it ``either-reader`` etc. (strict
    #: mode would take only the enum itself, hence ``strict=False`` on this one field).
    consensus: ConsensusMode = Field(default=DEFAULT_CONSENSUS, strict=False)

    @model_validator(mode="after")
    def _rule_out_below_single_reading(self) -> TriagePolicy:
        # Ruling out an exam the cut-off would double-read would skip single reading
        # entirely for that band: almost certainly a mistyped number, so refuse it.
        limit = self.rule_out.max_category
        if self.rule_out.enabled and limit is not None and limit > self.single_reading_max_category:
            raise ValueError(
                f"rule_out.max_category ({limit}) must not exceed single_reading_max_category "
                f"({self.single_reading_max_category}): an exam is ruled out only from the "
                "single-reading band"
            )
        return self


_PREFIX = "triage policy: "


def _describe(exc: ValidationError, model: type[_PolicyModel]) -> str:
    """One line naming the field, the bad value and what is allowed."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in (model._section, *first["loc"]) if p != "")
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        return f"{where}: unknown key (allowed: {', '.join(model.model_fields)})"
    if first["type"] == "value_error":  # a cross-field rule: its message names the fields
        return message
    if first["type"] == "missing":
        return f"{where}: {message}"
    return f"{where}: {message} (got {first['input']!r})"


def policy_from_dict(raw: Any, *, source: str = "triage policy") -> TriagePolicy:
    """Build a policy from a parsed mapping (e.g. YAML).

    Raises
    ------
    ConfigError
        If ``raw`` is not a mapping or any value is invalid; the message names the field.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source} must be a mapping, got {type(raw).__name__}")
    try:
        return TriagePolicy.model_validate(raw)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {str(exc).removeprefix(_PREFIX)}") from exc


def load_policy(path: Path) -> TriagePolicy:
    """Read a triage policy from YAML (the packaged one: ``mammotriage/defaults/triage.yaml``).

    Raises
    ------
    ConfigError
        If the file is missing, not YAML, or any value is invalid (the message names it).
    """
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"triage policy {path} not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"triage policy {path} is not valid YAML: {exc}") from exc
    return policy_from_dict(raw, source=f"triage policy {path}")


def validate_exam_values(
    exam_id: str, score: float, category: int, max_finding_score: float | None
) -> None:
    """Check the values triage trusts; shared by :class:`ExamForTriage` and simulation inputs.

    Raises
    ------
    ConfigError
        Naming the exam, the field, the bad value and the allowed range.
    """
    if not isinstance(exam_id, str) or not exam_id:
        raise ConfigError(f"exam_id must be a non-empty string, got {exam_id!r}")
    if not is_category(category):
        raise ConfigError(
            f"exam {exam_id}: category must be an integer {LOWEST}-{HIGHEST}, got {category!r}"
        )
    if not _in_range(score, 0, 100):
        raise ConfigError(f"exam {exam_id}: score must be a number 0-100, got {score!r}")
    if max_finding_score is not None and not _in_range(max_finding_score, 0, 100):
        raise ConfigError(
            f"exam {exam_id}: max_finding_score must be a number 0-100 or None, "
            f"got {max_finding_score!r}"
        )


def _in_range(value: object, low: float, high: float) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and low <= value <= high
    )


@dataclass(frozen=True)
class ExamForTriage:
    """What triage needs to know of one scored exam; the caller builds it from its ``ExamScore``.

    Parameters
    ----------
    exam_id
        The caller's exam identifier (internal id, not a patient identifier).
    score
        Exam-level AI score, 0-100.
    category
        Calibrated category 1-10.
    max_finding_score
        Highest score (1-100) of the exam's finding regions; ``None`` when there are none.
    partial
        The exam lacks views (e.g. an unreadable image): the score saw less than a full exam.
    received_at
        When the exam arrived; timezone-aware, so that waiting times compare across sites.
    """

    exam_id: str
    score: float
    category: int
    max_finding_score: float | None
    partial: bool
    received_at: datetime

    def __post_init__(self) -> None:
        validate_exam_values(self.exam_id, self.score, self.category, self.max_finding_score)
        if not isinstance(self.partial, bool):
            raise ConfigError(f"exam {self.exam_id}: partial must be a bool, got {self.partial!r}")
        require_aware(f"exam {self.exam_id}: received_at", self.received_at)


@dataclass(frozen=True)
class TriageDecision:
    """The reading an exam gets, and why.

    ``rule`` is the sentence a radiologist or auditor reads (e.g. ``"category 3 <= 5: single
    reading"``); ``rule_code`` is the same rule as a code, for counting and storage.
    """

    exam_id: str
    mode: ReadingMode
    priority: bool
    rule: str
    policy_version: str
    rule_code: TriageRule


def decide(policy: TriagePolicy, exam: ExamForTriage) -> TriageDecision:
    """Decide the reading mode and priority of one exam.

    The rules, in the order they are tried (the first that applies decides the mode):

    1. category above ``single_reading_max_category``: double reading;
    2. safety net (if enabled): any finding scoring *above* the threshold: double reading;
    3. rule-out (if enabled): category and score within its limits: no human reader, except
       for a partial exam, which is never ruled out (the views it lacks were never scored)
       and gets single reading instead;
    4. otherwise single reading.

    A partial exam otherwise follows its category like any exam: it is not sent to double
    reading merely for being partial. Priority is independent of the mode: an exam whose
    category is at least ``priority_min_category`` is read first; the rule text says so.
    """
    cut = policy.single_reading_max_category
    net = policy.safety_net
    if exam.category > cut:
        mode, code = ReadingMode.DOUBLE, TriageRule.CATEGORY_DOUBLE
        rule = f"category {exam.category} > {cut}: double reading"
    elif (
        net.enabled
        and exam.max_finding_score is not None
        and exam.max_finding_score > net.finding_score_threshold
    ):
        mode, code = ReadingMode.DOUBLE, TriageRule.SAFETY_NET
        rule = (
            f"safety net: finding {exam.max_finding_score:g} > "
            f"{net.finding_score_threshold:g}: double reading"
        )
    elif (ruled_out := _rule_out_reason(policy.rule_out, exam)) is not None:
        if exam.partial:
            mode, code = ReadingMode.SINGLE, TriageRule.PARTIAL_NOT_RULED_OUT
            rule = f"partial exam, never ruled out ({ruled_out}): single reading"
        else:
            mode, code = ReadingMode.RULE_OUT, TriageRule.RULE_OUT
            rule = f"rule-out: {ruled_out}: no human reader"
    else:
        mode, code = ReadingMode.SINGLE, TriageRule.CATEGORY_SINGLE
        rule = f"category {exam.category} <= {cut}: single reading"
    priority = exam.category >= policy.priority_min_category
    if priority:
        rule += f"; category {exam.category} >= {policy.priority_min_category}: priority"
    return TriageDecision(
        exam_id=exam.exam_id,
        mode=mode,
        priority=priority,
        rule=rule,
        policy_version=policy.version,
        rule_code=code,
    )


def decide_unscored(policy: TriagePolicy, exam_id: str, reason: str) -> TriageDecision:
    """The reading of an exam the AI could not score: double reading, as without AI.

    The AI knows nothing of such an exam, so it must not take a reader away from it; it is
    not made priority either (the AI has no evidence for that). ``reason`` says why it was
    not scored (e.g. "no usable mammography image") and goes into the rule text.
    """
    return TriageDecision(
        exam_id=exam_id,
        mode=ReadingMode.DOUBLE,
        priority=False,
        rule=f"not scored ({reason}): double reading, as without AI",
        policy_version=policy.version,
        rule_code=TriageRule.NOT_SCORED,
    )


class _HasReason(Protocol):
    @property
    def reason(self) -> str | None: ...


class ScoredExam(Protocol):
    """What :func:`decide_scored` reads of a scored exam: an ``ExamScore`` is one (triage
    imports nothing of the scoring engine, so it names only the fields it needs)."""

    @property
    def exam_id(self) -> str: ...
    @property
    def score(self) -> float | None: ...
    @property
    def category(self) -> int | None: ...
    @property
    def partial(self) -> bool: ...
    @property
    def max_finding_score(self) -> int | None: ...
    @property
    def images(self) -> Sequence[_HasReason]: ...


def not_scored_reason(exam: ScoredExam) -> str:
    """Why an exam has no score, in one line: the first of its images' reasons."""
    reasons = sorted({im.reason for im in exam.images if im.reason})
    return "no image could be scored" + (f": {reasons[0]}" if reasons else "")


def decide_scored(
    policy: TriagePolicy, exam: ScoredExam, received_at: datetime
) -> TriageDecision:
    """The reading of a scored exam: :func:`decide` on its values, or :func:`decide_unscored`
    (with the first image's reason) when no image of it could be scored."""
    if exam.score is None or exam.category is None:
        return decide_unscored(policy, exam.exam_id, not_scored_reason(exam))
    return decide(
        policy,
        ExamForTriage(
            exam_id=exam.exam_id,
            score=exam.score,
            category=exam.category,
            max_finding_score=exam.max_finding_score,
            partial=exam.partial,
            received_at=received_at,
        ),
    )


def _rule_out_reason(rule_out: RuleOutPolicy, exam: ExamForTriage) -> str | None:
    """The limits an exam met, as text, or ``None`` when rule-out does not apply."""
    if not rule_out.enabled:
        return None
    met = []
    if rule_out.max_category is not None:
        if exam.category > rule_out.max_category:
            return None
        met.append(f"category {exam.category} <= {rule_out.max_category}")
    if rule_out.max_score is not None:
        if exam.score > rule_out.max_score:
            return None
        met.append(f"score {exam.score:g} <= {rule_out.max_score:g}")
    return " and ".join(met)
