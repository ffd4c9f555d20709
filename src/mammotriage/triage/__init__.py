"""Triage: from an exam's score to its reading mode, its place on the worklist, and the
simulated effect of a policy on a programme's workload and cancers.

Pure logic: imports nothing from the rest of mammotriage but :mod:`mammotriage.errors`; the
caller builds :class:`ExamForTriage` from its own ``ExamScore``, or hands the ``ExamScore``
itself to :func:`decide_scored` (which reads only the fields :class:`ScoredExam` names).
"""

from mammotriage.triage.policy import (
    ConsensusMode,
    ExamForTriage,
    ReadingMode,
    RuleOutPolicy,
    SafetyNetPolicy,
    ScoredExam,
    TriageDecision,
    TriagePolicy,
    TriageRule,
    decide,
    decide_scored,
    decide_unscored,
    load_policy,
    policy_from_dict,
)
from mammotriage.triage.queue import (
    OrderKey,
    QueueTier,
    WorklistItem,
    is_overdue,
    order_key,
    order_worklist,
    waiting_time,
)
from mammotriage.triage.simulate import (
    SimExam,
    WorkloadPoint,
    load_sim_inputs,
    plot_workload_curve,
    simulate,
    workload_curve,
)

__all__ = [
    "ConsensusMode",
    "ExamForTriage",
    "OrderKey",
    "QueueTier",
    "ReadingMode",
    "RuleOutPolicy",
    "SafetyNetPolicy",
    "SimExam",
    "TriageDecision",
    "TriagePolicy",
    "TriageRule",
    "WorklistItem",
    "WorkloadPoint",
    "ScoredExam",
    "decide",
    "decide_scored",
    "decide_unscored",
    "is_overdue",
    "load_policy",
    "load_sim_inputs",
    "order_key",
    "order_worklist",
    "plot_workload_curve",
    "policy_from_dict",
    "simulate",
    "waiting_time",
    "workload_curve",
]
