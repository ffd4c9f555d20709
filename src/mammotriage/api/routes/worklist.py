"""The caller's reading queue, in the policy's reading order."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from mammotriage.api.deps import NowDep, PolicyDep, SettingsDep, StoreDep, WorklistViewer
from mammotriage.api.schemas import WorklistOut
from mammotriage.worklist import ReadingQueue

router = APIRouter(tags=["worklist"])

#: The largest ``offset`` accepted (422 beyond).
MAX_OFFSET = 10_000_000


@router.get("/worklist", response_model=WorklistOut, summary="The caller's reading queue")
def worklist(
    user: WorklistViewer,
    store: StoreDep,
    policy: PolicyDep,
    settings: SettingsDep,
    now: NowDep,
    queue: Annotated[
        ReadingQueue, Query(description="Which queue; `mine`: the exams I hold")
    ] = ReadingQueue.ALL,
    # Bounded: past any real queue, and a huge one was a 500 (slicing past sys.maxsize).
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int | None, Query(ge=1, le=500, description="Default: page_size")] = None,
) -> WorklistOut:
    """A radiologist sees the exams they can read now; admins and services see every exam
    waiting (read-only). ``oldest_waiting_seconds`` is over the whole queue, not the page."""
    page = store.readings.reader_queue(
        user.reader, now, policy, queue=queue, offset=offset, limit=limit or settings.page_size
    )
    return WorklistOut.of(page)
