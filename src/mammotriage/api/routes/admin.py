"""What the people running the service look at: queue statistics, readers, the policy."""

from __future__ import annotations

from fastapi import APIRouter

from mammotriage.api.deps import AdminUser, NowDep, PolicyDep, StoreDep
from mammotriage.api.schemas import QueueStatsOut, UserOut
from mammotriage.triage import TriagePolicy

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/stats", response_model=QueueStatsOut, summary="Queue sizes, waiting, throughput")
def stats(_: AdminUser, store: StoreDep, policy: PolicyDep, now: NowDep) -> QueueStatsOut:
    return QueueStatsOut.of(store.readings.queue_stats(now, policy))


@router.get("/readers", response_model=list[UserOut], summary="Users of the service")
def readers(_: AdminUser, store: StoreDep) -> list[UserOut]:
    return [UserOut.of(user) for user in store.users.all()]


@router.get("/policy", response_model=TriagePolicy, summary="The triage policy in force")
def policy(_: AdminUser, policy: PolicyDep) -> TriagePolicy:
    return policy
