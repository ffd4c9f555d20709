"""What the people running the service look at: queue statistics, readers, the policy, the
monitoring report."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from mammotriage.api.deps import AdminUser, MonitorDep, NowDep, PolicyDep, StoreDep
from mammotriage.api.monitor_schemas import MonitorOut
from mammotriage.api.monitoring import STORED_ALERTS_SHOWN, stored_alert_json
from mammotriage.api.schemas import ErrorOut, QueueStatsOut, UserOut
from mammotriage.monitor import report_json
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


@router.get(
    "/monitor",
    response_model=MonitorOut,
    summary="Monitoring: drift per device, readers, outcomes per band, alerts",
    responses={
        status.HTTP_503_SERVICE_UNAVAILABLE: {
            "model": ErrorOut,
            "description": "No monitor: its model or policy cannot be read (the detail says why)",
        }
    },
)
def monitor(_: AdminUser, store: StoreDep, monitor: MonitorDep, now: NowDep) -> MonitorOut:
    """The report of the monitoring window (as ``mammotriage monitor --json``; computed
    again once ``refresh_seconds`` old) and the alerts stored so far, newest week first."""
    if monitor.cached is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=monitor.error)
    report = monitor.current(now).report
    stored = store.monitoring.alerts(limit=STORED_ALERTS_SHOWN)
    return MonitorOut.model_validate(
        {**report_json(report), "stored_alerts": [stored_alert_json(a) for a in stored]}
    )
